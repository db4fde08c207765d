//! `apply`, `resume`, `restore` and `status` through the real binary against the simulator on
//! loopback (docs/simulator.md). Each test serves its own lab on its own 127.N.0.0/16 subnet.

mod common;

use std::time::Duration;

use common::Lab;
use serde_json::Value;

fn state_of(lab: &Lab) -> Value {
    lab.sim.state()
}

/// The recap row of `server`: its path, result and reason.
fn row<'a>(out: &'a str, server: &str) -> &'a str {
    let start = out
        .find("RECAP")
        .unwrap_or_else(|| panic!("no recap in:\n{out}"));
    out[start..]
        .lines()
        .find(|l| l.split_whitespace().next() == Some(server))
        .unwrap_or_else(|| panic!("no row for {server} in:\n{out}"))
}

fn result_of(out: &str, server: &str) -> String {
    row(out, server)
        .split_whitespace()
        .nth(2)
        .unwrap_or("")
        .to_string()
}

#[test]
fn apply_repairs_the_lab_top_down() {
    let lab = Lab::start("lab.yaml", 71, None);
    assert!(!lab.problems().is_empty(), "the scenario starts broken");
    let d = lab.wsusfix("apply", &["--yes"]).run().code(0);
    assert!(
        d.stdout
            .contains("Result: 6 done; every restore done (exit 0"),
        "{}",
        d.stdout
    );
    assert!(
        d.stdout.contains("replica hold   wsus-eu         restored"),
        "{}",
        d.stdout
    );
    assert_eq!(lab.problems(), Vec::<String>::new());
    let s = state_of(&lab);
    for sp1 in ["wsus-hq", "wsus-us"] {
        assert_eq!(s["servers"][sp1]["hotfix_installs"], 1, "{sp1}");
        assert_eq!(s["servers"][sp1]["dll_version"], "3.1.6001.66", "{sp1}");
    }
    for replica in ["wsus-eu", "wsus-eu-paris"] {
        assert_eq!(
            s["servers"][replica]["mode_switches"], 2,
            "{replica}: out and back once"
        );
    }
    assert_eq!(
        s["servers"]["wsus-eu-berlin"]["mode_switches"], 0,
        "autonomous servers are not switched"
    );
    // A second apply finds nothing to change and switches nothing.
    lab.wsusfix("apply", &["--yes"]).run().code(0);
    let again = state_of(&lab);
    assert_eq!(again["servers"]["wsus-hq"]["hotfix_installs"], 1);
    assert_eq!(
        again["servers"]["wsus-eu"]["mode_switches"], 4,
        "a replica hold is needed for the reset each time"
    );
}

#[test]
fn apply_repairs_contoso() {
    let lab = Lab::start("contoso.yaml", 72, None);
    let d = lab
        .wsusfix("apply", &["--yes", "--parallel", "32"])
        .run()
        .code(0);
    assert!(
        d.stdout.contains("Result: 40 done; every restore done"),
        "{}",
        d.stdout
    );
    assert_eq!(lab.problems(), Vec::<String>::new());
}

#[test]
fn a_bottom_up_order_leaves_the_world_broken() {
    let lab = Lab::start("lab.yaml", 73, None);
    let d = lab
        .wsusfix("apply", &["--yes", "--order", "bottom-up"])
        .env("WSUSFIX_ALLOW_UNSAFE_ORDER", "1")
        .run();
    assert_eq!(d.code, 2, "{}", d.stdout);
    let problems = lab.problems();
    // Replicas fixed before their upstream copied its corruption back with their sync.
    assert!(
        problems
            .iter()
            .any(|p| p == "wsus-eu-paris: approvals inconsistent"),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("pc-paris-1: last detection")),
        "{problems:?}"
    );
    // The wrong order is refused unless a test asks for it.
    lab.wsusfix("apply", &["--yes", "--order", "bottom-up"])
        .run()
        .code(3)
        .stderr_has("tests only");
}

#[test]
fn a_dead_host_blocks_its_subtree_only_and_a_flaky_one_is_retried() {
    let lab = Lab::start(
        "lab.yaml",
        74,
        Some(
            "seed: 9\ntransport:\n  wsus-eu: { refuse: true }\n  wsus-us-dallas: { http500: 3 }\n",
        ),
    );
    let d = lab.wsusfix("apply", &["--yes"]).run().code(2);
    let out = &d.stdout;
    assert_eq!(result_of(out, "wsus-eu"), "failed");
    assert!(
        row(out, "wsus-eu").contains("cannot connect: connection refused"),
        "{out}"
    );
    for child in ["wsus-eu-berlin", "wsus-eu-paris"] {
        assert_eq!(result_of(out, child), "blocked");
        assert!(
            row(out, child).ends_with("its upstream wsus-eu failed"),
            "{out}"
        );
    }
    assert_eq!(result_of(out, "wsus-us"), "done", "a sibling goes on");
    assert_eq!(
        result_of(out, "wsus-us-dallas"),
        "done",
        "flaky but retried"
    );
    assert!(d.stderr.contains("retrying in"), "{}", d.stderr);
    let s = state_of(&lab);
    assert_eq!(s["servers"]["wsus-eu"]["mode_switches"], 0, "never touched");
    assert_eq!(s["servers"]["wsus-us-dallas"]["approvals_consistent"], true);
}

#[test]
fn a_service_that_stays_down_fails_its_server_with_the_reason() {
    let lab = Lab::start(
        "lab.yaml",
        75,
        Some(
            "seed: 2\nservers:\n  wsus-us: { service_stays_down: SMTPSVC, services: { W3SVC: running, SMTPSVC: running } }\n",
        ),
    );
    let d = lab.wsusfix("apply", &["--yes"]).run().code(2);
    assert_eq!(result_of(&d.stdout, "wsus-us"), "failed");
    assert!(
        row(&d.stdout, "wsus-us").contains("SMTPSVC did not reach Running"),
        "{}",
        d.stdout
    );
    assert_eq!(result_of(&d.stdout, "wsus-us-dallas"), "blocked");
    assert_eq!(result_of(&d.stdout, "wsus-eu"), "done");
}

#[test]
fn a_locale_mismatch_is_switched_for_the_install_and_restored() {
    let lab = Lab::start(
        "lab.yaml",
        76,
        Some("seed: 3\nservers:\n  wsus-hq: { install_language: en-US, current_culture: de-CH }\n"),
    );
    let d = lab.wsusfix("apply", &["--yes"]).run().code(0);
    assert!(d.stdout.contains("locale switch  wsus-hq"), "{}", d.stdout);
    let s = state_of(&lab);
    assert_eq!(
        s["servers"]["wsus-hq"]["dll_version"], "3.1.6001.66",
        "installed under the right culture"
    );
    assert_eq!(
        s["servers"]["wsus-hq"]["current_culture"], "de-CH",
        "and given back"
    );
    assert_eq!(lab.problems(), Vec::<String>::new());
}

#[test]
fn facts_that_contradict_the_inventory_leave_the_server_alone() {
    let lab = Lab::start(
        "lab.yaml",
        77,
        Some("seed: 5\nservers:\n  wsus-eu-berlin: { actual_role: replica }\n"),
    );
    let d = lab.wsusfix("apply", &["--yes"]).run().code(2);
    assert_eq!(result_of(&d.stdout, "wsus-eu-berlin"), "skipped");
    assert!(
        row(&d.stdout, "wsus-eu-berlin")
            .contains("the inventory says autonomous, but the server is a replica"),
        "{}",
        d.stdout
    );
    assert_eq!(
        state_of(&lab)["servers"]["wsus-eu-berlin"]["mode_switches"],
        0
    );
}

#[test]
fn apply_refuses_without_a_terminal_or_yes_and_when_locked() {
    let lab = Lab::start("lab.yaml", 78, None);
    lab.wsusfix("apply", &[]).run().code(3).stderr_has("--yes");
    // Another live run holds the lock (this test process stands in for it).
    let rd = wsusfix::journal::paths::RunDir::new(&lab.state_dir(), &lab.inventory);
    let held = wsusfix::journal::lock::acquire(&rd.lock(), "someone-else").unwrap();
    lab.wsusfix("apply", &["--yes"])
        .run()
        .code(5)
        .stderr_has("someone-else");
    drop(held);
    lab.wsusfix("apply", &["--yes"]).run().code(0);
}

#[test]
fn a_stale_plan_is_refused() {
    let lab = Lab::start("lab.yaml", 79, None);
    let plan = lab.dir.path().join("plan.json");
    lab.wsusfix(
        "plan",
        &["--format", "json", "--out", plan.to_str().unwrap()],
    )
    .run()
    .code(0);
    let text = std::fs::read_to_string(&lab.inventory).unwrap();
    std::fs::write(
        &lab.inventory,
        text.replace(
            "version: 3.0-rtm\n    arch: x64",
            "version: 3.0-rtm\n    arch: x86",
        ),
    )
    .unwrap();
    lab.wsusfix("apply", &["--yes", "--plan", plan.to_str().unwrap()])
        .run()
        .code(6)
        .stderr_has("is stale");
    std::fs::write(&lab.inventory, text).unwrap();
    lab.wsusfix("apply", &["--yes", "--plan", plan.to_str().unwrap()])
        .run()
        .code(0);
}

#[test]
fn json_events_follow_their_contract() {
    let lab = Lab::start("lab.yaml", 80, None);
    let d = lab
        .wsusfix("apply", &["--yes", "--format", "json"])
        .run()
        .code(0);
    let events: Vec<Value> = d
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events[0]["event"], "run-started");
    assert_eq!(events[0]["schema_version"], 2);
    let run_id = events[0]["run_id"].as_str().unwrap().to_string();
    for e in &events {
        assert_eq!(e["run_id"], run_id.as_str());
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
    let n = events.len();
    assert_eq!(events[n - 2]["event"], "run-finished");
    assert_eq!(events[n - 2]["exit_code"], 0);
    assert_eq!(events[n - 1]["event"], "recap");
    assert_eq!(events[n - 1]["rows"].as_array().unwrap().len(), 6);
    let finished: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "server-finished")
        .map(|e| e["server"].as_str().unwrap())
        .collect();
    assert_eq!(finished.len(), 6);
    // Top-down: a server finishes after its upstream.
    let pos = |n: &str| finished.iter().position(|x| *x == n).unwrap();
    assert!(
        pos("wsus-hq") < pos("wsus-eu")
            && pos("wsus-eu") < pos("wsus-eu-paris")
            && pos("wsus-us") < pos("wsus-us-dallas")
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "obligation-opened" && e["id"] == "replica-hold:wsus-eu")
    );
    assert!(events.iter().any(|e| e["event"] == "verification"
        && e["client"] == "pc-eu-1"
        && e["succeeded"] == true));
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_scheduling_restores_and_resume_finishes() {
    // Slow servers, so that the interruption lands mid-run.
    let lab = Lab::start(
        "lab.yaml",
        81,
        Some("seed: 4\ndefaults: { latency_ms: [60, 90] }\n"),
    );
    let mut child = lab.spawn("apply", &["--yes"]);
    std::thread::sleep(Duration::from_millis(900));
    common::interrupt(&child, libc::SIGINT);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted after every restore");
    let s = state_of(&lab);
    for r in ["wsus-eu", "wsus-eu-paris", "wsus-us-dallas"] {
        assert_eq!(s["servers"][r]["replica"], true, "{r} is a replica again");
    }
    // The run is partial: status says so with a non-zero exit, and names no held replica.
    let st = lab.wsusfix("status", &["--format", "json"]).run().code(2);
    let v: Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(v["held_autonomous"], serde_json::json!([]));
    assert_eq!(v["state"], "interrupted");
    lab.wsusfix("resume", &[]).run().code(0);
    assert_eq!(lab.problems(), Vec::<String>::new());
    lab.wsusfix("status", &[]).run().code(0);
}

#[test]
fn logs_under_wsusfix_log_reach_stderr_without_stalling_the_run() {
    let lab = Lab::start("lab.yaml", 83, None);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wsusfix"));
    cmd.args(["apply", "-i"])
        .arg(&lab.inventory)
        .arg("--state-dir")
        .arg(lab.state_dir())
        .arg("--yes")
        .env("WSUSFIX_PASSWORD", common::PASSWORD)
        .env("WSUSFIX_LOG", "debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    // A watchdog: a run that stalls fails the test instead of hanging it.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("apply with WSUSFIX_LOG=debug did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("DEBUG"), "debug lines are logged:\n{log}");
    assert!(
        log.contains("wsusfix::winrm"),
        "from the worker threads too:\n{log}"
    );
    assert!(!log.contains(common::PASSWORD), "no secret in the logs");
}

/// The most replicas of one upstream held autonomous at the same time, replayed from the journal.
fn max_held_at_once(lab: &Lab) -> usize {
    use std::collections::HashMap;
    use wsusfix::journal::record::{Obligation, Record};
    let rd = wsusfix::journal::paths::RunDir::new(&lab.state_dir(), &lab.inventory);
    let j = wsusfix::journal::reader::read(&rd.journal(&rd.latest().unwrap())).unwrap();
    let inv = wsusfix::core::inventory::load(&std::fs::read_to_string(&lab.inventory).unwrap())
        .inventory
        .unwrap();
    let upstream = |s: &str| inv.get(s).and_then(|x| x.upstream.clone()).unwrap();
    let mut open: HashMap<String, usize> = HashMap::new();
    let mut max = 0;
    for r in &j.records {
        match r {
            Record::ObligationOpened {
                obligation: Obligation::ReplicaHold { server },
                ..
            } => {
                let n = open.entry(upstream(server)).or_default();
                *n += 1;
                max = max.max(*n);
            }
            Record::ObligationClosed { id, .. } if id.starts_with("replica-hold:") => {
                *open
                    .get_mut(&upstream(&id["replica-hold:".len()..]))
                    .unwrap() -= 1;
            }
            _ => {}
        }
    }
    max
}

#[test]
fn replicas_of_one_upstream_are_held_at_most_max_held_at_once() {
    let scenario = "seed: 6\ndefaults: { latency_ms: [20, 40] }\n";
    let lab = Lab::start("contoso.yaml", 84, Some(scenario));
    lab.wsusfix("apply", &["--yes", "--parallel", "32", "--max-held", "1"])
        .run()
        .code(0);
    assert_eq!(max_held_at_once(&lab), 1);
    assert_eq!(lab.problems(), Vec::<String>::new());
    // The same run with the default cap holds several siblings at once: the cap is what limited.
    let lab = Lab::start("contoso.yaml", 85, Some(scenario));
    lab.wsusfix("apply", &["--yes", "--parallel", "32"])
        .run()
        .code(0);
    let max = max_held_at_once(&lab);
    assert!(
        (2..=4).contains(&max),
        "held at once with --max-held 4: {max}"
    );
}

#[test]
fn a_server_starts_when_its_own_upstream_is_done_not_its_wave() {
    // wsus-us (wave 2) takes seconds to install the hotfix; the children of wsus-eu (wave 3)
    // must not wait for it.
    let lab = Lab::start(
        "lab.yaml",
        86,
        Some("seed: 8\nservers:\n  wsus-us: { install_ms: [2500, 2500] }\n"),
    );
    let d = lab
        .wsusfix("apply", &["--yes", "--format", "json"])
        .run()
        .code(0);
    let events: Vec<Value> = d
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at = |event: &str, server: &str| {
        events
            .iter()
            .position(|e| e["event"] == event && e["server"] == server)
            .unwrap_or_else(|| panic!("no {event} for {server}"))
    };
    assert!(at("server-finished", "wsus-eu-paris") < at("server-finished", "wsus-us"));
    assert!(at("server-finished", "wsus-eu-berlin") < at("server-finished", "wsus-us"));
    assert!(
        at("server-started", "wsus-us-dallas") > at("server-finished", "wsus-us"),
        "but never before its own upstream"
    );
}

#[test]
fn a_damaged_journal_is_read_around_the_damage_and_names_the_line() {
    let lab = Lab::start("lab.yaml", 87, None);
    lab.wsusfix("apply", &["--yes"]).run().code(0);
    let rd = wsusfix::journal::paths::RunDir::new(&lab.state_dir(), &lab.inventory);
    let path = rd.journal(&rd.latest().unwrap());
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[3] = "{\"type\":\"step-started\",\"server\":";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    // Damage the tool did not cause is named, with its line; what it hides makes the run
    // uncertain (exit 2), but everything around it is read.
    lab.wsusfix("status", &[])
        .run()
        .code(2)
        .stdout_has(":4: damaged journal record")
        .stdout_has("the journal was changed after it was written");
    lab.wsusfix("resume", &[])
        .run()
        .code(0)
        .stderr_has(":4: damaged journal record");
    assert_eq!(lab.problems(), Vec::<String>::new());
    // No run at all.
    let empty = tempfile::tempdir().unwrap();
    common::Run::new(["status", "--state-dir", empty.path().to_str().unwrap()])
        .run()
        .code(3)
        .stderr_has("no run");
}
