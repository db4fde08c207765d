//! Unit tests of the world's rules, each one a behaviour KB 954960 describes or a mistake the
//! simulator must punish.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::dispatch;
use super::scenario::Scenario;
use super::world::*;
use crate::core::inventory;

const INV: &str = "\
defaults: { username: LAB\\wsusfix, password: env:PW }
servers:
  hq: { role: upstream, address: 127.0.1.1, version: 3.0-rtm, clients: { pc-hq: { address: 127.0.2.1 } } }
  eu: { role: replica, upstream: hq, address: 127.0.1.2, version: 3.0-rtm, clients: { pc-eu: { address: 127.0.2.2 } } }
  sp: { role: upstream, address: 127.0.1.3, version: 3.0-sp1, arch: x64, clients: { pc-sp: { address: 127.0.2.3 } } }
  sp-r: { role: replica, upstream: hq, address: 127.0.1.4, version: 3.0-sp1, arch: x86 }
";
const U: &str = OFFICE_UPDATE_ID;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn world(scenario: &str) -> World {
    let inv = inventory::load(INV).inventory.unwrap();
    World::new(&inv, &Scenario::parse(scenario).unwrap(), now()).unwrap()
}

fn ok(o: OpOutcome) -> Vec<(String, String)> {
    o.result.unwrap_or_else(|e| panic!("{e:?}"))
}

fn err(o: OpOutcome) -> OpFailure {
    o.result.expect_err("expected a failure")
}

fn get<'a>(keys: &'a [(String, String)], k: &str) -> &'a str {
    keys.iter()
        .find(|(kk, _)| kk == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no key {k} in {keys:?}"))
}

/// The article's reset on an autonomous (or upstream) server.
fn reset(w: &mut World, host: &str) {
    ok(w.ensure_declined(host, U));
    ok(w.approve_unchanged(host, U, ALL_COMPUTERS));
    ok(w.decline(host, U));
}

fn hold_and_reset(w: &mut World, host: &str) {
    ok(w.set_replica(host, false, Duration::from_secs(60), now()));
    reset(w, host);
    ok(w.set_replica(host, true, Duration::from_secs(60), now()));
    ok(w.sync_now(host, now()));
}

#[test]
fn a_scenario_starts_broken_and_clients_already_failed() {
    let w = world("seed: 1");
    assert!(w.servers["hq"].broken());
    assert!(w.servers["eu"].broken());
    let c = &w.clients["pc-eu"];
    assert_eq!(c.last_detection, Some(DetectionResult::Failed));
    assert!(c.log.iter().any(|l| l.contains("0x8024400E")));
    // The server logged the duplicate key with the fault ID the client saw.
    let id_line = c.log.iter().find(|l| l.contains("WARNING: ID:")).unwrap();
    let id = id_line.rsplit("ID:").next().unwrap();
    assert!(
        w.servers["eu"]
            .softdist
            .iter()
            .any(|l| l.contains(&format!("ID={id}")))
    );
}

#[test]
fn a_replica_refuses_approvals_and_declines() {
    let mut w = world("seed: 1");
    for f in [
        err(w.ensure_declined("eu", U)),
        err(w.approve_unchanged("eu", U, ALL_COMPUTERS)),
        err(w.decline("eu", U)),
    ] {
        assert_eq!(f.kind, "replica-mode");
        assert_eq!(f.error_type, "System.InvalidOperationException");
        assert_eq!(
            f.message,
            "Cannot perform this action when the server is in replica mode"
        );
    }
}

#[test]
fn the_reset_in_the_articles_order_repairs_a_server() {
    let mut w = world("seed: 1\ndefaults: { declined: no }");
    assert!(w.servers["hq"].broken());
    let k = ok(w.ensure_declined("hq", U));
    assert_eq!(get(&k, "changed"), "true");
    assert!(
        w.servers["hq"].broken(),
        "declining alone is not the repair"
    );
    ok(w.approve_unchanged("hq", U, ALL_COMPUTERS));
    assert!(
        w.servers["hq"].broken(),
        "not until the update is declined again"
    );
    ok(w.decline("hq", U));
    assert!(!w.servers["hq"].broken());
    assert!(w.servers["hq"].update.declined);
}

#[test]
fn approving_before_declining_keeps_the_duplicates() {
    let mut w = world("seed: 1\ndefaults: { declined: no }");
    ok(w.approve_unchanged("hq", U, ALL_COMPUTERS));
    ok(w.decline("hq", U));
    assert!(
        w.servers["hq"].broken(),
        "skipping ensure-declined must not repair"
    );
    // Doing it right afterwards still works.
    reset(&mut w, "hq");
    assert!(!w.servers["hq"].broken());
}

#[test]
fn ensure_declined_is_idempotent() {
    let mut w = world("seed: 1\ndefaults: { declined: yes }");
    let k = ok(w.ensure_declined("hq", U));
    assert_eq!(get(&k, "changed"), "false");
    assert_eq!(w.servers["hq"].counters.declines, 0);
}

#[test]
fn a_replica_fixed_before_its_upstream_is_broken_again_by_its_sync() {
    // The wrong order: the replica first.
    let mut w = world("seed: 1");
    hold_and_reset(&mut w, "eu");
    assert!(
        w.servers["eu"].broken(),
        "its sync copied the upstream's corruption"
    );
    reset(&mut w, "hq");
    assert!(!w.servers["hq"].broken());
    assert!(
        w.servers["eu"].broken(),
        "and nothing fixes it until it syncs again"
    );
    // The right order: the upstream first.
    let mut w = world("seed: 1");
    reset(&mut w, "hq");
    hold_and_reset(&mut w, "eu");
    assert!(!w.servers["eu"].broken());
    assert!(w.servers["eu"].replica);
    assert_eq!(w.servers["eu"].counters.mode_switches, 2);
}

#[test]
fn a_forgotten_restore_leaves_the_replica_autonomous_and_visible() {
    let inv = inventory::load(INV).inventory.unwrap();
    let mut w = world("seed: 1");
    reset(&mut w, "hq");
    ok(w.set_replica("eu", false, Duration::from_secs(60), now()));
    reset(&mut w, "eu");
    let problems = w.repaired(&inv).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("eu: replica flag is false")),
        "{problems:?}"
    );
}

#[test]
fn set_replica_is_idempotent_and_waits_out_a_busy_configuration() {
    let mut w = world("seed: 1\nservers: { eu: { config_busy_polls: 3 } }");
    let o = w.set_replica("eu", false, Duration::from_secs(60), now());
    assert_eq!(
        o.duration,
        Duration::from_millis(60),
        "three compressed polls"
    );
    assert_eq!(get(&ok(o), "changed"), "true");
    let k = ok(w.set_replica("eu", false, Duration::from_secs(60), now()));
    assert_eq!(get(&k, "changed"), "false");
    assert_eq!(w.servers["eu"].counters.mode_switches, 1);
    let mut w = world("seed: 1\nservers: { eu: { config_busy_polls: 100 } }");
    assert_eq!(
        err(w.set_replica("eu", false, Duration::from_secs(10), now())).kind,
        "config-busy"
    );
    assert!(w.servers["eu"].replica, "nothing changed");
}

fn install(w: &mut World, host: &str) -> OpOutcome {
    let arch = w.servers[host].arch.as_str();
    let path = format!("\\\\fileserver\\wsusfix\\KB954960\\WSUS3SP1-KB954960-{arch}.exe");
    let sha = {
        use sha2::{Digest, Sha256};
        Sha256::digest(super::scenario::default_package_content(arch).as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    w.install_hotfix(host, 954960, &path, &sha, now())
}

#[test]
fn the_hotfix_repairs_an_sp1_server_when_the_locale_matches() {
    let mut w = world("seed: 1\ndefaults: { services: { W3SVC: running, SMTPSVC: running } }");
    assert!(w.servers["sp"].broken());
    let k = ok(install(&mut w, "sp"));
    assert_eq!(get(&k, "exit_code"), "0");
    let s = &w.servers["sp"];
    assert_eq!(s.dll_version, DLL_SP1_FIXED);
    assert!(!s.broken());
    assert_eq!(s.services["SMTPSVC"], ServiceState::Running, "restarted");
    assert_eq!(s.counters.hotfix_installs, 1);
}

#[test]
fn the_hotfix_installs_wrongly_under_another_culture_and_cannot_be_redone() {
    let mut w =
        world("seed: 1\nservers: { sp: { install_language: en-US, current_culture: de-CH } }");
    ok(install(&mut w, "sp"));
    let s = &w.servers["sp"];
    assert_eq!(
        s.dll_version, DLL_SP1_UNFIXED,
        ".65 means installed wrongly"
    );
    assert!(s.broken());
    assert_eq!(s.hotfixes, vec![954960]);
    // Switching the culture afterwards does not help: the update is installed and cannot be
    // uninstalled; running the installer again changes nothing.
    ok(w.set_culture("sp", "en-US"));
    ok(install(&mut w, "sp"));
    assert_eq!(w.servers["sp"].dll_version, DLL_SP1_UNFIXED);
    assert_eq!(w.servers["sp"].counters.hotfix_installs, 2);
    // The right way: switch first, then install.
    let mut w =
        world("seed: 1\nservers: { sp: { install_language: en-US, current_culture: de-CH } }");
    let k = ok(w.set_culture("sp", "en-US"));
    assert_eq!(get(&k, "previous"), "de-CH");
    ok(install(&mut w, "sp"));
    assert_eq!(w.servers["sp"].dll_version, DLL_SP1_FIXED);
}

#[test]
fn a_service_can_stay_down_after_the_hotfix() {
    let mut w = world("seed: 1\nservers: { sp: { service_stays_down: W3SVC } }");
    ok(install(&mut w, "sp"));
    let f = err(w.services(
        "sp",
        &["W3SVC".into()],
        &["W3SVC".into()],
        Duration::from_secs(120),
    ));
    assert_eq!(f.kind, "timeout");
    assert!(f.message.contains("W3SVC"));
}

#[test]
fn the_package_is_checked_before_it_runs() {
    let mut w = world("seed: 1");
    let f = err(w.install_hotfix(
        "sp",
        954960,
        "\\\\fileserver\\wsusfix\\KB954960\\WSUS3SP1-KB954960-x64.exe",
        &"0".repeat(64),
        now(),
    ));
    assert_eq!(f.kind, "hash-mismatch");
    assert!(f.extra.iter().any(|(k, _)| k == "actual_sha256"));
    let f = err(w.install_hotfix("sp", 954960, "\\\\nowhere\\x.exe", &"0".repeat(64), now()));
    assert_eq!(f.kind, "package-missing");
    assert_eq!(w.servers["sp"].counters.hotfix_installs, 0, "never ran");
}

#[test]
fn an_sp1_replica_with_the_hotfix_does_not_import_the_corruption() {
    let mut w = world("seed: 1");
    ok(install(&mut w, "sp-r"));
    assert!(!w.servers["sp-r"].broken());
    ok(w.sync_now("sp-r", now()));
    assert!(w.servers["hq"].broken());
    assert!(
        !w.servers["sp-r"].broken(),
        "the fixed client web service deduplicates"
    );
}

#[test]
fn detection_fails_while_broken_and_logs_the_fault_on_the_server() {
    let mut w = world("seed: 1");
    let k = ok(w.detect_now("pc-hq", now()));
    let lines: Vec<&str> = k
        .iter()
        .filter(|(k, _)| k == "line")
        .map(|(_, v)| v.as_str())
        .collect();
    let text = lines.join("\r\n");
    let s = crate::core::logs::detection::summarize_detection(&text);
    let crate::core::logs::detection::DetectionOutcome::FailedThisBug { fault_id: Some(id) } =
        s.outcome
    else {
        panic!("{:?}", s.outcome);
    };
    assert!(
        w.servers["hq"]
            .softdist
            .iter()
            .any(|l| l.contains(&format!("ID={id}")))
    );
    assert_eq!(
        w.clients["pc-hq"].last_detection,
        Some(DetectionResult::Failed)
    );
}

#[test]
fn the_first_detection_after_a_repair_may_fail_once() {
    let mut w = world("seed: 1\nclient_defaults: { first_detection_after_repair_fails: 1.0 }");
    reset(&mut w, "hq");
    ok(w.detect_now("pc-hq", now()));
    assert_eq!(
        w.clients["pc-hq"].last_detection,
        Some(DetectionResult::Failed)
    );
    ok(w.detect_now("pc-hq", now()));
    assert_eq!(
        w.clients["pc-hq"].last_detection,
        Some(DetectionResult::Succeeded)
    );
    let mut w = world("seed: 1\nclient_defaults: { first_detection_after_repair_fails: 0.0 }");
    reset(&mut w, "hq");
    ok(w.detect_now("pc-hq", now()));
    assert_eq!(
        w.clients["pc-hq"].last_detection,
        Some(DetectionResult::Succeeded)
    );
}

#[test]
fn facts_report_the_state_scripts_would_read() {
    let mut w = world("seed: 1\ndefaults: { declined: no }");
    let k = ok(w.facts("eu", U, None, &["W3SVC".into(), "SMTPSVC".into()]));
    assert_eq!(get(&k, "version_string"), "3.0.6000.273");
    assert_eq!(get(&k, "replica"), "true");
    assert_eq!(get(&k, "upstream_name"), "hq");
    assert_eq!(get(&k, "update_synced"), "true");
    let approvals: Vec<_> = k.iter().filter(|(k, _)| k == "update_approval").collect();
    assert_eq!(
        approvals.len(),
        2,
        "the duplicated state shows as the same group twice"
    );
    assert_eq!(get(&k, "service"), "W3SVC|Running");
    assert!(
        k.iter()
            .any(|(k, v)| k == "softdist_record" && v.contains("Item has already been added"))
    );
    // Since a later time: the old record is not repeated.
    let later = now() + chrono::Duration::minutes(5);
    let k = ok(w.facts("eu", U, Some(later), &[]));
    assert!(!k.iter().any(|(k, _)| k == "softdist_record"));
}

#[test]
fn never_synced_updates_are_not_found() {
    let mut w = world("seed: 1\nservers: { hq: { update_synced: false } }");
    assert!(!w.servers["hq"].broken());
    assert_eq!(err(w.ensure_declined("hq", U)).kind, "not-synced");
}

#[test]
fn dispatch_answers_per_the_contract() {
    let mut w = world("seed: 1");
    let a = dispatch::run(
        &mut w,
        "eu",
        &format!("# wsusfix-op: decline {{\"update\":\"{U}\"}}\r\n$u.Decline()\r\n"),
        now(),
    );
    assert_eq!(a.exit_code, 1);
    let out = String::from_utf8(a.stdout).unwrap();
    assert!(
        out.starts_with("wsusfix:error_kind=cmVwbGljYS1tb2Rl\r\n"),
        "{out}"
    ); // "replica-mode"
    let a = dispatch::run(&mut w, "hq", "Get-Date", now());
    assert_eq!(a.exit_code, 1);
    assert!(
        String::from_utf8(a.stderr)
            .unwrap()
            .starts_with("#< CLIXML")
    );
    let a = dispatch::run(&mut w, "hq", "# wsusfix-op: frobnicate {}", now());
    assert_eq!(a.exit_code, 1);
    let a = dispatch::run(
        &mut w,
        "pc-hq",
        &format!("# wsusfix-op: facts {{\"update\":\"{U}\"}}"),
        now(),
    );
    assert!(
        String::from_utf8(a.stdout)
            .unwrap()
            .contains("wsusfix:error_kind=")
    );
    let a = dispatch::run(
        &mut w,
        "pc-hq",
        "# wsusfix-op: detect_now {\"timeout\":60}",
        now(),
    );
    assert_eq!(a.exit_code, 0);
    assert!(a.mutated);
}

#[test]
fn the_world_is_deterministic_for_a_seed() {
    let a = world("seed: 42");
    let b = world("seed: 42");
    assert_eq!(
        serde_json::to_string(&a.view()).unwrap(),
        serde_json::to_string(&b.view()).unwrap()
    );
}

#[test]
fn keyed_timing_draws_what_the_pure_function_says_in_any_order() {
    use super::timing::{Ranges, keyed_op_ms};
    let scenario = "seed: 11\ntiming: keyed\ndefaults: { latency_ms: [30, 300], install_ms: [2000, 6000], sync_ms: [500, 2000] }\n";
    let ranges = Ranges {
        latency_ms: [30, 300],
        install_ms: [2000, 6000],
        sync_ms: [500, 2000],
        detect_ms: [20, 60],
    };
    // One operation as the fleet serves it: the latency, then the operation's own work.
    fn served(w: &mut World, host: &str, op: &str) -> Duration {
        let latency = w.latency(host, op);
        let work = match op {
            "install_hotfix" => install(w, host).duration,
            "sync_now" => w.sync_now(host, now()).duration,
            _ => w.facts(host, U, None, &[]).duration,
        };
        latency + work
    }
    let calls = [
        ("sp", "facts"),
        ("eu", "sync_now"),
        ("sp", "install_hotfix"),
        ("sp", "facts"),
        ("eu", "sync_now"),
    ];
    let mut a = world(scenario);
    let forward: Vec<Duration> = calls.iter().map(|(h, op)| served(&mut a, h, op)).collect();
    // The same calls, the hosts interleaved the other way round: each host's durations stay.
    let mut b = world(scenario);
    let mut backward = vec![Duration::ZERO; calls.len()];
    for i in [1, 4, 0, 2, 3] {
        backward[i] = served(&mut b, calls[i].0, calls[i].1);
    }
    assert_eq!(forward, backward);
    let expected: Vec<Duration> = [
        ("sp", "facts", 1),
        ("eu", "sync_now", 1),
        ("sp", "install_hotfix", 1),
        ("sp", "facts", 2),
        ("eu", "sync_now", 2),
    ]
    .iter()
    .map(|(h, op, n)| Duration::from_millis(keyed_op_ms(11, h, op, *n, &ranges)))
    .collect();
    assert_eq!(forward, expected);
    assert_eq!(a.served("sp", "facts"), 2);
    assert_eq!(a.served_counts()["eu"]["sync_now"], 2);
}

#[test]
fn stream_timing_is_the_default_and_counts_nothing() {
    let mut w = world("seed: 11\n");
    let first = w.latency("sp", "facts");
    assert!(
        first <= Duration::from_millis(10),
        "the default latency range is 2-10 ms"
    );
    assert_eq!(w.served("sp", "facts"), 0);
    assert!(w.served_counts().is_empty());
    // The stream advances: the same world draws the next value of one sequence.
    let mut again = world("seed: 11\n");
    assert_eq!(
        again.latency("eu", "decline"),
        first,
        "stream draws ignore host and operation"
    );
}
