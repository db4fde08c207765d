//! Journals written by the previous release (format 1, reasons in words) still read: `status`
//! shows them, `restore` closes what they hold and `resume` finishes them. The fixtures were
//! written by that release against the lab on 127.201.x.y (killed while wsus-eu-paris was held)
//! and 127.202.x.y (a run whose facts contradicted the inventory).

mod common;

use common::Lab;
use serde_json::Value;

fn place(lab: &Lab, fixture: &str) -> String {
    let text =
        std::fs::read_to_string(common::root().join("tests/fixtures/journals").join(fixture))
            .unwrap();
    let header: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        header["format_version"], 1,
        "{fixture} is a format 1 journal"
    );
    let run_id = header["run_id"].as_str().unwrap().to_string();
    let rd = wsusfix::journal::paths::RunDir::new(&lab.state_dir(), &lab.inventory);
    std::fs::create_dir_all(rd.journal(&run_id).parent().unwrap()).unwrap();
    std::fs::write(rd.journal(&run_id), text).unwrap();
    run_id
}

#[test]
fn a_format_1_partial_run_reads_with_its_reasons() {
    let lab = Lab::start("lab.yaml", 202, None);
    let run_id = place(&lab, "v1-partial.jsonl");
    let d = lab.wsusfix("status", &[]).run().code(2);
    assert!(d.stdout.contains(&run_id), "{}", d.stdout);
    assert!(
        d.stdout
            .contains("not touched: the inventory says WSUS 3.0 RTM, but the server runs 3.0 SP1"),
        "{}",
        d.stdout
    );
    assert!(
        d.stdout.contains("its upstream wsus-eu was not touched"),
        "{}",
        d.stdout
    );
    let j = lab.wsusfix("status", &["--format", "json"]).run().code(2);
    let v: Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v["state"], "partial");
    let rows = v["servers"].as_array().unwrap();
    let result = |name: &str| {
        rows.iter()
            .find(|r| r["server"] == name)
            .map(|r| r["result"].clone())
            .unwrap()
    };
    assert_eq!(result("wsus-hq"), "done");
    assert_eq!(result("wsus-eu"), "skipped");
    assert_eq!(result("wsus-eu-paris"), "blocked");
    assert_eq!(result("wsus-us-dallas"), "skipped");
}

#[test]
fn a_format_1_run_killed_while_holding_is_restored_and_resumed() {
    // The world the old run left: its upstreams were repaired (the simulator starts afresh, so
    // the scenario says so), and the held replica is in replica mode again.
    let lab = Lab::start(
        "lab.yaml",
        201,
        Some("seed: 1\ndefaults: { broken: false }\n"),
    );
    let run_id = place(&lab, "v1-killed-holding.jsonl");
    let st = lab.wsusfix("status", &["--format", "json"]).run().code(4);
    let v: Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(v["held_autonomous"], serde_json::json!(["wsus-eu-paris"]));
    lab.wsusfix("status", &[])
        .run()
        .code(4)
        .stdout_has("HELD AUTONOMOUS by this run: wsus-eu-paris");
    // Restoring finds the replica already in replica mode and closes the obligation.
    lab.wsusfix("restore", &[&run_id]).run().code(0);
    let st = lab.wsusfix("status", &["--format", "json"]).run();
    let v: Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(v["held_autonomous"], serde_json::json!([]));
    // The rest of the run is finished by resume, format 1 records and all.
    lab.wsusfix("resume", &[&run_id]).run().code(0);
    assert_eq!(lab.problems(), Vec::<String>::new());
    lab.wsusfix("status", &[&run_id]).run().code(0);
}
