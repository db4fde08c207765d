//! Crash safety: the apply is killed with SIGKILL at 20 seeded points of its run, then picked
//! up with `resume` (and, in some rounds, `status` and `restore` first). Every time the world must
//! end repaired, no replica may stay autonomous, and nothing that must not run twice may have run
//! twice: each SP1 server's hotfix installer ran once, each held replica switched out and back
//! exactly once.

mod common;

use std::time::Duration;

use common::Lab;
use wsusfix::util::prng::Prng;

/// The lab's servers on the reset path that hold replicas, and its SP1 servers.
const HELD: [&str; 2] = ["wsus-eu", "wsus-eu-paris"];
const SP1: [&str; 2] = ["wsus-hq", "wsus-us"];

#[test]
fn kill_nine_at_twenty_points_then_resume() {
    let mut rng = Prng::new(20_261_124);
    let mut kinds_seen = std::collections::BTreeSet::new();
    for round in 0..20u8 {
        // Latency spreads the run over about a second and a half, so the kill points fall
        // before, inside and after every kind of step.
        let lab = Lab::start(
            "lab.yaml",
            100 + round,
            Some(
                "seed: 17\ndefaults: { latency_ms: [15, 40], install_ms: [250, 400] }\nclient_defaults: { first_detection_after_repair_fails: 0.0 }\n",
            ),
        );
        let delay = Duration::from_millis(rng.range(20, 1600));
        let mut child = lab.spawn("apply", &["--yes", "--parallel", "4"]);
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL: no handler, no restore, a possibly torn journal line
        let status = child.wait().unwrap();
        let killed = common::was_killed(status);

        let runs = wsusfix::journal::paths::RunDir::new(&lab.state_dir(), &lab.inventory).runs();
        let held_before: Vec<String> = if runs.is_empty() {
            Vec::new()
        } else {
            let st = lab.wsusfix("status", &["--format", "json"]).run();
            let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap_or_default();
            v["held_autonomous"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        if !held_before.is_empty() {
            kinds_seen.insert("killed while holding a replica");
            // Every third such round, restore first (restore does nothing else), then resume.
            if round % 3 == 0 {
                lab.wsusfix("restore", &[]).run().code(0);
                let s = lab.sim.state();
                for h in &held_before {
                    assert_eq!(
                        s["servers"][h]["replica"], true,
                        "round {round}: restore switched {h} back"
                    );
                }
            }
        } else if !killed {
            kinds_seen.insert("finished before the kill");
        } else if runs.is_empty() {
            kinds_seen.insert("killed before the journal existed");
        } else {
            kinds_seen.insert("killed outside a hold");
        }
        if runs.is_empty() {
            lab.wsusfix("apply", &["--yes"]).run().code(0);
        } else {
            let d = lab.wsusfix("resume", &[]).run();
            assert_eq!(
                d.code, 0,
                "round {round} (killed after {delay:?}):\n{}\n{}",
                d.stdout, d.stderr
            );
        }
        assert_eq!(
            lab.problems(),
            Vec::<String>::new(),
            "round {round} (killed after {delay:?})"
        );
        let s = lab.sim.state();
        for sp1 in SP1 {
            assert_eq!(
                s["servers"][sp1]["hotfix_installs"], 1,
                "round {round}: {sp1}'s installer ran once"
            );
        }
        for r in HELD {
            let switches = s["servers"][r]["mode_switches"].as_u64().unwrap();
            assert!(
                switches.is_multiple_of(2),
                "round {round}: {r} is back in replica mode"
            );
            // A restore before resume adds one hold: the reset needs the replica autonomous again.
            let allowed = if round % 3 == 0 && held_before.iter().any(|h| h == r) {
                4
            } else {
                2
            };
            assert!(
                switches <= allowed,
                "round {round}: {r} switched {switches} times (at most {allowed})"
            );
        }
    }
    eprintln!("kill points covered: {kinds_seen:?}");
    for kind in ["killed while holding a replica", "killed outside a hold"] {
        assert!(kinds_seen.contains(kind), "{kind}: {kinds_seen:?}");
    }
}

#[test]
fn a_new_apply_drains_a_dead_runs_holds_before_taking_its_lock() {
    let lab = Lab::start(
        "lab.yaml",
        130,
        Some(
            "seed: 21\ndefaults: { latency_ms: [40, 80] }\nclient_defaults: { first_detection_after_repair_fails: 0.0 }\n",
        ),
    );
    let mut child = lab.spawn("apply", &["--yes"]);
    // Wait until the journal shows a replica held autonomous, then kill the apply.
    let rd = wsusfix::journal::paths::RunDir::new(&lab.state_dir(), &lab.inventory);
    let mut held = Vec::new();
    for _ in 0..500 {
        std::thread::sleep(Duration::from_millis(10));
        if let Some(id) = rd.latest()
            && let Ok(j) = wsusfix::journal::reader::read(&rd.journal(&id))
        {
            held = j
                .progress()
                .open_obligations()
                .iter()
                .map(|o| o.server().to_string())
                .collect();
            if !held.is_empty() {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !held.is_empty(),
        "the apply was killed while holding a replica"
    );
    assert!(rd.lock().exists(), "the dead run left its lock");
    // The plan's live facts recognise the held replica: not a contradiction, something to restore.
    let state_dir = lab.state_dir();
    let p = lab
        .wsusfix(
            "plan",
            &[
                "--facts",
                "--format",
                "json",
                "--state-dir",
                state_dir.to_str().unwrap(),
            ],
        )
        .run()
        .code(0);
    let plan: serde_json::Value = serde_json::from_str(&p.stdout).unwrap();
    for s in plan["servers"].as_array().unwrap() {
        if held.iter().any(|h| s["name"] == h.as_str()) {
            assert_eq!(s["facts"]["contradictions"], serde_json::json!([]), "{s}");
            assert!(
                s["facts"]["evidence"]
                    .to_string()
                    .contains("held autonomous by the interrupted run"),
                "{s}"
            );
            assert!(s["skip"].is_null(), "{s}");
        }
    }
    let d = lab.wsusfix("apply", &["--yes"]).run().code(0);
    assert!(
        d.stderr
            .contains("temporary change(s) open: restoring them first"),
        "{}",
        d.stderr
    );
    assert_eq!(lab.problems(), Vec::<String>::new());
    let st = lab.wsusfix("status", &["--format", "json"]).run().code(0);
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(v["held_autonomous"], serde_json::json!([]));
    // The dead run's journal records its hold as restored.
    let first = rd.runs().into_iter().next().unwrap();
    let j = wsusfix::journal::reader::read(&rd.journal(&first)).unwrap();
    assert!(j.progress().open_obligations().is_empty());
}
