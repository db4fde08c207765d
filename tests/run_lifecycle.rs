//! A run's life end to end through the real binary against the simulator: what an interruption
//! leaves and says (Ctrl-C, SIGTERM, SIGHUP), a journal damaged or lost, a full disk, lock files
//! in trouble, a declined prompt, and runs found from any folder. Subnets 160-179.

mod common;

#[cfg(unix)]
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Lab;
use serde_json::Value;
use wsusfix::journal::paths::RunDir;

fn run_dir(lab: &Lab) -> RunDir {
    RunDir::new(&lab.state_dir(), &lab.inventory)
}

/// The latest journal's records as JSON values (damage skipped).
fn records(lab: &Lab) -> Vec<Value> {
    let rd = run_dir(lab);
    let Some(id) = rd.latest() else {
        return Vec::new();
    };
    std::fs::read_to_string(rd.journal(&id))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits (up to 20 s) until the journal has a record matching `f`.
fn wait_for(lab: &Lab, what: &str, f: impl Fn(&Value) -> bool) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if records(lab).iter().any(&f) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the journal never showed {what}");
}

fn held(lab: &Lab) -> Vec<String> {
    let st = lab.wsusfix("status", &["--format", "json"]).run();
    let v: Value = serde_json::from_str(&st.stdout).unwrap_or_default();
    v["held_autonomous"]
        .as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn apply_child(lab: &Lab, args: &[&str], stdout: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wsusfix"))
        .arg("apply")
        .arg("-i")
        .arg(&lab.inventory)
        .arg("--state-dir")
        .arg(lab.state_dir())
        .arg("--yes")
        .args(args)
        .env("WSUSFIX_PASSWORD", common::PASSWORD)
        .env("WSUSFIX_CLIENT_PASSWORD", common::PASSWORD)
        .env_remove("WSUSFIX_LOG")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[cfg(unix)]
#[test]
fn ctrl_c_during_the_hotfix_install_tells_what_was_installed_and_what_was_not_checked() {
    let lab = Lab::start(
        "lab.yaml",
        160,
        Some("seed: 4\ndefaults: { latency_ms: [5, 10], install_ms: [1500, 1600] }\n"),
    );
    let mut child = apply_child(&lab, &["--format", "json"], Stdio::piped());
    let out = child.stdout.take().unwrap();
    wait_for(&lab, "the hotfix install starting on wsus-hq", |r| {
        r["type"] == "step-started" && r["server"] == "wsus-hq" && r["action"] == "install-hotfix"
    });
    common::interrupt(&child, libc::SIGINT);
    let events: Vec<Value> = BufReader::new(out)
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let hq = events
        .iter()
        .find(|e| e["event"] == "server-finished" && e["server"] == "wsus-hq")
        .expect("wsus-hq's turn ended");
    assert_eq!(hq["result"], "interrupted", "{hq}");
    assert_eq!(hq["reason"]["kind"], "interrupted-after-changes", "{hq}");
    assert_eq!(
        hq["changed_steps"],
        serde_json::json!(["install-hotfix"]),
        "{hq}"
    );
    for step in ["verify-file-version", "check-services", "detect-now"] {
        assert!(
            hq["not_run"].as_array().unwrap().iter().any(|s| s == step),
            "{step} is named as not run: {hq}"
        );
    }
    let blocked: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "server-finished" && e["result"] == "blocked")
        .collect();
    assert!(!blocked.is_empty());
    for b in &blocked {
        assert_eq!(b["reason"]["kind"], "blocked", "{b}");
    }
    let eu = blocked.iter().find(|b| b["server"] == "wsus-eu").unwrap();
    assert_eq!(eu["reason"]["upstream"], "wsus-hq");
    assert_eq!(eu["reason"]["upstream_result"], "interrupted");
    let recap = events.last().unwrap();
    assert_eq!(recap["event"], "recap");
    assert_eq!(recap["result"], "interrupted");
    // The text recap says the same to a person.
    let st = lab.wsusfix("status", &[]).run().code(2);
    assert!(
        st.stdout
            .contains("interrupted during its steps after changes: install-hotfix changed"),
        "{}",
        st.stdout
    );
    assert!(
        st.stdout
            .contains("the client web service DLL's version was not checked"),
        "{}",
        st.stdout
    );
    assert!(
        st.stdout.contains("its upstream wsus-hq was interrupted"),
        "{}",
        st.stdout
    );
    assert!(st.stdout.contains("wsusfix resume"), "{}", st.stdout);
    // Resume finishes it: the DLL and services are checked, nothing is installed twice.
    lab.wsusfix("resume", &[]).run().code(0);
    assert_eq!(lab.problems(), Vec::<String>::new());
    assert_eq!(lab.sim.state()["servers"]["wsus-hq"]["hotfix_installs"], 1);
}

#[cfg(unix)]
#[test]
fn sigterm_and_sighup_take_the_graceful_path_and_restore_the_hold() {
    for (subnet, sig, code) in [(161, libc::SIGTERM, 143), (162, libc::SIGHUP, 129)] {
        let lab = Lab::start(
            "lab.yaml",
            subnet,
            Some("seed: 5\ndefaults: { latency_ms: [60, 90] }\n"),
        );
        let mut child = apply_child(&lab, &[], Stdio::null());
        wait_for(&lab, "a replica held", |r| {
            r["type"] == "obligation-opened" && r["obligation"]["kind"] == "replica-hold"
        });
        common::interrupt(&child, sig);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "signal {sig}");
        let s = lab.sim.state();
        for r in ["wsus-eu", "wsus-eu-paris", "wsus-us-dallas"] {
            assert_eq!(
                s["servers"][r]["replica"], true,
                "{r} restored after signal {sig}"
            );
        }
        assert!(held(&lab).is_empty());
        let recs = records(&lab);
        assert!(recs.iter().any(|r| r["type"] == "interrupted"
            && r["signal"]
                == if sig == libc::SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGHUP"
                }));
        assert_eq!(
            recs.last().unwrap()["type"],
            "run-finished",
            "the journal is closed"
        );
        assert_eq!(recs.last().unwrap()["result"], "interrupted");
        lab.wsusfix("resume", &[]).run().code(0);
        assert_eq!(lab.problems(), Vec::<String>::new());
    }
}

/// Kills an apply (SIGKILL) while a replica is held; returns the replicas it held.
fn killed_while_holding(lab: &Lab) -> Vec<String> {
    let mut child = apply_child(lab, &[], Stdio::null());
    wait_for(lab, "a replica switched to autonomous", |r| {
        r["type"] == "step-finished"
            && r["action"] == "switch-to-autonomous"
            && r["outcome"] == "changed"
    });
    let _ = child.kill();
    let _ = child.wait();
    let recs = records(lab);
    let mut held: Vec<String> = Vec::new();
    for r in recs {
        if r["type"] == "obligation-opened" && r["obligation"]["kind"] == "replica-hold" {
            held.push(r["obligation"]["server"].as_str().unwrap().to_string());
        }
        if r["type"] == "obligation-closed" {
            let id = r["id"].as_str().unwrap();
            held.retain(|h| format!("replica-hold:{h}") != id);
        }
    }
    assert!(!held.is_empty());
    held
}

fn autonomous(lab: &Lab, servers: &[String]) -> Vec<String> {
    let s = lab.sim.state();
    servers
        .iter()
        .filter(|r| s["servers"][r.as_str()]["replica"] == false)
        .cloned()
        .collect()
}

const SLOW: &str = "seed: 21\ndefaults: { latency_ms: [60, 90] }\nclient_defaults: { first_detection_after_repair_fails: 0.0 }\n";

#[test]
fn garbage_in_the_middle_of_the_journal_still_names_the_held_replica_and_restores_it() {
    let lab = Lab::start("lab.yaml", 163, Some(SLOW));
    let held_now = killed_while_holding(&lab);
    assert_eq!(
        autonomous(&lab, &held_now),
        held_now,
        "the kill left them autonomous"
    );
    let rd = run_dir(&lab);
    let path = rd.journal(&rd.latest().unwrap());
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // Damage a record that is neither the header nor the hold.
    let victim = lines
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, l)| l.contains("\"type\":\"facts\""))
        .map(|(i, _)| i)
        .unwrap();
    lines[victim] = "#$%^ garbage \u{0}".into();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let st = lab.wsusfix("status", &[]).run().code(4);
    assert!(
        st.stdout.contains("damaged journal record"),
        "{}",
        st.stdout
    );
    for h in &held_now {
        assert!(st.stdout.contains(h.as_str()), "{h} named:\n{}", st.stdout);
    }
    lab.wsusfix("restore", &[]).run().code(0);
    assert!(
        autonomous(&lab, &held_now).is_empty(),
        "restore switched them back"
    );
    assert!(held(&lab).is_empty());
    // And a new apply is not blocked by the damage.
    lab.wsusfix("apply", &["--yes"]).run().code(0);
    assert_eq!(lab.problems(), Vec::<String>::new());
}

#[test]
fn with_the_state_folder_gone_restore_from_facts_switches_the_replicas_back() {
    let lab = Lab::start("lab.yaml", 164, Some(SLOW));
    let held_now = killed_while_holding(&lab);
    std::fs::remove_dir_all(lab.state_dir()).unwrap();
    lab.wsusfix("status", &[])
        .run()
        .code(3)
        .stderr_has("--from-facts");
    let st = lab.wsusfix("status", &["--from-facts"]).run().code(4);
    for h in &held_now {
        assert!(
            st.stdout.contains(&format!("{h}: AUTONOMOUS")),
            "{}",
            st.stdout
        );
    }
    // Without a terminal it asks for --yes.
    lab.wsusfix("restore", &["--from-facts"])
        .run()
        .code(3)
        .stderr_has("--yes");
    lab.wsusfix("restore", &["--from-facts", "--yes"])
        .run()
        .code(0);
    assert!(autonomous(&lab, &held_now).is_empty());
    lab.wsusfix("status", &["--from-facts"]).run().code(0);
    // What it did is journaled like any run.
    lab.wsusfix("status", &[])
        .run()
        .code(0)
        .stdout_has("restored");
}

#[test]
fn a_full_disk_while_a_replica_is_held_leaves_nothing_autonomous_and_blocks_nothing_later() {
    let lab = Lab::start("lab.yaml", 165, Some(SLOW));
    // A whole run first, to find the record after which wsus-eu is held (--parallel 1: the same
    // order every time).
    let probe = Lab::start("lab.yaml", 166, Some(SLOW));
    probe
        .wsusfix("apply", &["--yes", "--parallel", "1"])
        .run()
        .code(0);
    let at = records(&probe)
        .iter()
        .position(|r| r["type"] == "obligation-opened" && r["obligation"]["server"] == "wsus-eu")
        .unwrap()
        + 1;
    drop(probe);
    // The disk fills two records after the hold opened, for three records.
    let full = format!("{}:3", at + 2);
    let d = lab
        .wsusfix("apply", &["--yes", "--parallel", "1"])
        .env("WSUSFIX_TEST_JOURNAL_FULL", &full)
        .run();
    assert!(
        d.code == 1 || d.code == 4,
        "exit {}:\n{}\n{}",
        d.code,
        d.stdout,
        d.stderr
    );
    assert!(
        d.stderr.contains("JOURNAL FAILED") || d.stdout.contains("THE JOURNAL FAILED"),
        "{}\n{}",
        d.stdout,
        d.stderr
    );
    let s = lab.sim.state();
    assert_eq!(
        s["servers"]["wsus-eu"]["replica"], true,
        "the hold was restored"
    );
    // The journal has no torn record behind a good one: only whole records.
    let rd = run_dir(&lab);
    let j = wsusfix::journal::reader::read(&rd.journal(&rd.latest().unwrap())).unwrap();
    assert!(j.damage.is_empty(), "{:?}", j.damage);
    // status, restore and apply all work afterwards.
    let st = lab.wsusfix("status", &[]).run();
    assert!(st.code == 2 || st.code == 4, "{}", st.stdout);
    lab.wsusfix("restore", &[]).run().code(0);
    lab.wsusfix("apply", &["--yes"]).run().code(0);
    assert_eq!(lab.problems(), Vec::<String>::new());
}

#[test]
fn lock_files_in_trouble_heal_or_say_what_is_wrong() {
    let lab = Lab::start("lab.yaml", 167, None);
    let rd = run_dir(&lab);
    std::fs::create_dir_all(rd.root()).unwrap();
    // An empty lock (a crash of an earlier release while writing it).
    std::fs::write(rd.lock(), "").unwrap();
    lab.wsusfix("apply", &["--yes"])
        .run()
        .code(0)
        .stderr_has("is damaged (it is empty); taking it over");
    // Garbage, and a take-over marker left by an earlier release.
    std::fs::write(rd.lock(), "{\"run_id\": 12").unwrap();
    std::fs::write(rd.root().join("lock.takeover"), "").unwrap();
    lab.wsusfix("apply", &["--yes"]).run().code(0);
    assert!(!rd.root().join("lock.takeover").exists());
    assert!(!rd.lock().exists(), "the lock is released at the end");
    // A state folder that cannot hold a run folder is reported as that, not as a held lock.
    let file = lab.dir.path().join("not-a-folder");
    std::fs::write(&file, "x").unwrap();
    let d = common::Run::new([
        "apply",
        "-i",
        lab.inventory.to_str().unwrap(),
        "--yes",
        "--state-dir",
        file.to_str().unwrap(),
    ])
    .env("WSUSFIX_PASSWORD", common::PASSWORD)
    .run();
    assert_eq!(d.code, 1, "{}", d.stderr);
    assert!(!d.stderr.contains("holds the lock"), "{}", d.stderr);
    assert!(d.stderr.contains("lock"), "{}", d.stderr);
}

#[test]
fn a_refused_start_leaves_nothing_that_blocks_later_runs() {
    let lab = Lab::start("lab.yaml", 168, None);
    let rd = run_dir(&lab);
    std::fs::create_dir_all(rd.root().join("runs")).unwrap();
    // What an earlier release left when the disk was full before its header: an empty journal,
    // and one holding half a header.
    std::fs::write(rd.journal("20200101T000000.000Z-00001"), "").unwrap();
    std::fs::write(
        rd.journal("20200101T000000.000Z-00002"),
        "{\"type\":\"header\",\"format_ver",
    )
    .unwrap();
    lab.wsusfix("apply", &["--yes"]).run().code(0);
    lab.wsusfix("status", &[]).run().code(0);
    lab.wsusfix("status", &["20200101T000000.000Z-00001"])
        .run()
        .code(0)
        .stdout_has("never-started");
}

/// Runs `wsusfix ARGS` on a pseudo-terminal (Python's `pty`: Unix only), answering `answer` to its prompt; returns the exit
/// code and what it printed.
#[cfg(unix)]
fn on_a_terminal(args: &[&str], answer: &str, env: &[(&str, &str)]) -> (i32, String) {
    let script = r#"
import os, pty, sys, select
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
answered = False
while True:
    r, _, _ = select.select([fd], [], [], 30)
    if not r:
        break
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
    if not answered and b"Only 'yes' goes ahead" in out:
        os.write(fd, (os.environ["ANSWER"] + "\n").encode())
        answered = True
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_wsusfix"))
        .args(args)
        .env("ANSWER", answer);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[cfg(unix)]
#[test]
fn declining_the_prompt_changes_nothing_and_says_so_with_its_own_exit_code() {
    let lab = Lab::start("lab.yaml", 169, None);
    let state = lab.state_dir();
    let (code, out) = on_a_terminal(
        &[
            "apply",
            "-i",
            lab.inventory.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        "no",
        &[("WSUSFIX_PASSWORD", common::PASSWORD)],
    );
    assert_eq!(code, 7, "{out}");
    assert!(out.contains("Apply this plan to 6 servers?"), "{out}");
    assert!(out.contains("Nothing was done"), "{out}");
    assert!(run_dir(&lab).runs().is_empty(), "no run was started");
    assert_eq!(lab.sim.state()["servers"]["wsus-hq"]["hotfix_installs"], 0);
}

#[test]
fn runs_are_found_from_any_folder_without_a_state_folder_option() {
    let lab = Lab::start("lab.yaml", 170, None);
    let home = tempfile::tempdir().unwrap();
    let somewhere = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let inv: PathBuf = lab.inventory.clone();
    let run = |dir: &Path, args: &[&str]| {
        common::Run::new(args)
            .cwd(dir)
            .env("HOME", home.path().to_str().unwrap())
            .env("LOCALAPPDATA", home.path().to_str().unwrap())
            .env("XDG_STATE_HOME", "")
            .env("WSUSFIX_STATE_DIR", "")
            .env("WSUSFIX_PASSWORD", common::PASSWORD)
            .run()
    };
    let d = run(
        somewhere.path(),
        &["apply", "-i", inv.to_str().unwrap(), "--yes"],
    );
    assert_eq!(d.code, 0, "{}", d.stderr);
    let default = if cfg!(windows) {
        home.path().join("wsusfix")
    } else {
        home.path().join(".local/state/wsusfix")
    };
    assert!(default.is_dir(), "{}", default.display());
    let st = run(elsewhere.path(), &["status"]);
    assert_eq!(st.code, 0, "{}\n{}", st.stdout, st.stderr);
    assert!(st.stdout.contains("6 done"), "{}", st.stdout);
    let st = run(elsewhere.path(), &["status", "-i", inv.to_str().unwrap()]);
    assert_eq!(st.code, 0, "{}", st.stderr);
}

#[test]
fn a_replica_that_stops_answering_is_given_up_within_the_documented_bound() {
    let lab = Lab::start(
        "lab.yaml",
        171,
        Some(
            "seed: 3\ndefaults: { latency_ms: [1, 2] }\nclient_defaults: { first_detection_after_repair_fails: 0.0 }\ntransport:\n  wsus-eu-paris: { hangs_after_requests: 14 }\n",
        ),
    );
    let t = Instant::now();
    let d = lab
        .wsusfix(
            "apply",
            &["--yes", "--op-timeout", "2", "--stall-attempts", "2"],
        )
        .run()
        .code(4);
    // (3 calls x 2 attempts + the last try) x 2 x 2 s, plus the shell cleanup of the first
    // silent request: well under a minute.
    assert!(t.elapsed() < Duration::from_secs(50), "{:?}", t.elapsed());
    assert!(
        d.stdout
            .contains("replica hold   wsus-eu-paris  restore-failed"),
        "{}",
        d.stdout
    );
    assert!(
        d.stdout.contains("no answer from the server within 4 s"),
        "{}",
        d.stdout
    );
    assert!(d.stdout.contains("run `wsusfix restore"), "{}", d.stdout);
    // The other servers were repaired meanwhile.
    let s = lab.sim.state();
    for r in ["wsus-eu", "wsus-us-dallas"] {
        assert_eq!(s["servers"][r]["replica"], true, "{r}");
        assert_eq!(s["servers"][r]["approvals_consistent"], true, "{r}");
    }
    lab.wsusfix("status", &[])
        .run()
        .code(4)
        .stdout_has("HELD AUTONOMOUS by this run: wsus-eu-paris");
}
