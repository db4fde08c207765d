//! Crash safety, deterministically: the lab's apply ends abruptly (SIGKILL, from inside the
//! process, in debug builds only) right after its journal record N, for every N of a whole run.
//! After each crash `status` must tell where the run stands and `resume` must finish it: every
//! replica back in replica mode, every server's approvals consistent, each SP1 server's hotfix
//! installed exactly once, and no replica switched out more than once.
//!
//! `--parallel 1` makes the order of records the same in every run, so that N names the same
//! moment each time; the seeded SIGKILL rounds of `crash_resume.rs` cover parallel turns.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::Lab;

const SCENARIO: &str = "seed: 3\ndefaults: { latency_ms: [1, 2], install_ms: [5, 10], sync_ms: [5, 10] }\nclient_defaults: { first_detection_after_repair_fails: 0.0, detect_ms: [5, 10] }\n";
const SP1: [&str; 2] = ["wsus-hq", "wsus-us"];
const REPLICAS: [&str; 3] = ["wsus-eu", "wsus-eu-paris", "wsus-us-dallas"];
/// Labs run at once, each on its own subnet.
const WORKERS: u8 = 6;

fn records_of_a_whole_run() -> usize {
    let lab = Lab::start("lab.yaml", 150, Some(SCENARIO));
    lab.wsusfix("apply", &["--yes", "--parallel", "1"])
        .run()
        .code(0);
    let rd = wsusfix::journal::paths::RunDir::new(&lab.state_dir(), &lab.inventory);
    let j = wsusfix::journal::reader::read(&rd.journal(&rd.latest().unwrap())).unwrap();
    assert!(j.damage.is_empty());
    j.records.len()
}

/// One round: crash after record `n`, then status and resume; the problems found, if any.
fn round(subnet: u8, n: usize) -> Vec<String> {
    let lab = Lab::start("lab.yaml", subnet, Some(SCENARIO));
    let crashed = lab
        .wsusfix("apply", &["--yes", "--parallel", "1"])
        .env("WSUSFIX_TEST_CRASH_AFTER_RECORD", &n.to_string())
        .run();
    let mut problems = Vec::new();
    let say = |p: &mut Vec<String>, m: String| p.push(format!("record {n}: {m}"));
    if crashed.code != -1 {
        say(
            &mut problems,
            format!("apply was not killed (exit {})", crashed.code),
        );
    }
    let rd = wsusfix::journal::paths::RunDir::new(&lab.state_dir(), &lab.inventory);
    let st = lab.wsusfix("status", &["--format", "json"]).run();
    match serde_json::from_str::<serde_json::Value>(&st.stdout) {
        Ok(v) => {
            let held = v["held_autonomous"].as_array().map_or(0, Vec::len);
            if held > 0 && st.code != 4 {
                say(
                    &mut problems,
                    format!("status exit {} while {held} replica(s) held", st.code),
                );
            }
            if ![0, 2, 4].contains(&st.code) {
                say(
                    &mut problems,
                    format!("status exit {}: {}", st.code, st.stderr),
                );
            }
        }
        Err(e) => say(
            &mut problems,
            format!("status printed no JSON ({e}): {}", st.stderr),
        ),
    }
    let d = lab.wsusfix("resume", &[]).run();
    if d.code != 0 {
        say(
            &mut problems,
            format!("resume exit {}:\n{}\n{}", d.code, d.stdout, d.stderr),
        );
    }
    for p in lab.problems() {
        say(&mut problems, p);
    }
    let s = lab.sim.state();
    for sp1 in SP1 {
        if s["servers"][sp1]["hotfix_installs"] != 1 {
            say(
                &mut problems,
                format!(
                    "{sp1}: {} hotfix installs",
                    s["servers"][sp1]["hotfix_installs"]
                ),
            );
        }
    }
    for r in REPLICAS {
        let switches = s["servers"][r]["mode_switches"].as_u64().unwrap_or(99);
        if switches > 2 || !switches.is_multiple_of(2) {
            say(&mut problems, format!("{r}: {switches} mode switches"));
        }
    }
    if lab.wsusfix("status", &[]).run().code != 0 {
        say(&mut problems, "status after resume is not 0".into());
    }
    // One journal, and nothing in it is damaged but a torn tail of the crash.
    let runs = rd.runs();
    if runs.len() != 1 {
        say(&mut problems, format!("{} journals", runs.len()));
    }
    problems
}

#[test]
fn a_crash_after_every_record_of_a_run_then_status_and_resume() {
    let total = records_of_a_whole_run();
    assert!(total > 40, "a lab run writes {total} records");
    let next = Arc::new(AtomicUsize::new(1));
    let found = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (next, found) = (next.clone(), found.clone());
            std::thread::spawn(move || {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n > total {
                        break;
                    }
                    let p = round(151 + w, n);
                    found.lock().unwrap().extend(p);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let found = found.lock().unwrap();
    assert!(
        found.is_empty(),
        "{} problem(s) over {total} crash points:\n{}",
        found.len(),
        found.join("\n")
    );
}
