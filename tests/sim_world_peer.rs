//! Interop with a client nobody on the project wrote: pywinrm 0.5.0 against `wsusfix sim serve`
//! (the real binary) over NTLM with message encryption on HTTP and Basic on HTTPS (trusting the
//! simulator's CA): scripts with a valid marker get the world's answers, a script without one
//! fails like PowerShell, a wrong password is refused, and `sim state` shows the effect.

mod common;

use std::process::Command;

use common::{PASSWORD, Run, Sim, inventory_copy, peer_python, root};

#[test]
fn pywinrm_drives_the_simulated_world() {
    let dir = tempfile::tempdir().unwrap();
    let inv = inventory_copy(dir.path(), "lab.yaml", 61);
    let sim = Sim::start(&inv, None, dir.path(), &[]);
    assert!(
        sim.banner.contains(
            "wsus-eu         http://127.61.1.2:5985/wsman  https://127.61.1.2:5986/wsman"
        ),
        "{}",
        sim.banner
    );
    let out = Command::new(peer_python())
        .arg(root().join("tests/peer/sim_world_client.py"))
        .args([
            "http://127.61.1.2:5985/wsman",
            "http://127.61.1.1:5985/wsman",
            "https://127.61.1.1:5986/wsman",
            sim.ca.to_str().unwrap(),
            "LAB\\wsusfix",
            PASSWORD,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let d = &r["decline_on_replica"];
    assert_eq!(d["rc"], 1);
    assert_eq!(d["keys"]["error_kind"][0], "replica-mode");
    assert_eq!(
        d["keys"]["error"][0],
        "Cannot perform this action when the server is in replica mode"
    );

    assert_eq!(r["no_marker"]["rc"], 1);
    assert!(
        r["no_marker"]["stderr"]
            .as_str()
            .unwrap()
            .contains("wsusfix-op")
    );

    let f = &r["facts_upstream"];
    assert_eq!(f["rc"], 0, "{f}");
    assert_eq!(f["keys"]["version_string"][0], "3.1.6001.65");
    assert_eq!(f["keys"]["replica"][0], "false");
    assert_eq!(f["keys"]["dll_version"][0], "3.1.6001.65");
    assert_eq!(f["keys"]["service"][0], "W3SVC|Running");

    let b = &r["https_basic_declined"];
    assert_eq!(b["rc"], 0, "{b}");
    assert_eq!(b["keys"]["declined"][0], "true");

    assert!(
        r["wrong_password"].as_str().unwrap().starts_with("refused"),
        "{}",
        r["wrong_password"]
    );

    // The state view shows the world as the scripts left it.
    let state = sim.state();
    assert_eq!(state["servers"]["wsus-eu"]["replica"], true);
    assert_eq!(state["servers"]["wsus-hq"]["update_declined"], true);
    assert_eq!(state["servers"]["wsus-hq"]["dll_version"], "3.1.6001.65");
    assert_eq!(state["servers"]["wsus-hq"]["hotfix_installs"], 0);
    assert_eq!(state["servers"]["wsus-eu"]["mode_switches"], 0);
    assert_eq!(state["clients"]["pc-eu-1"]["last_detection"], "failed");
    Run::new([
        "sim",
        "state",
        "--state-file",
        sim.state_file.to_str().unwrap(),
    ])
    .run()
    .code(0)
    .stdout_has("\"approvals_consistent\": false");
}

#[test]
fn the_simulator_refuses_what_it_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("remote.yaml");
    std::fs::write(
        &inv,
        "defaults: { username: u, password: env:WSUSFIX_PASSWORD }\nservers:\n  w: { role: upstream, address: 10.1.2.3 }\n",
    )
    .unwrap();
    Run::new([
        "sim",
        "serve",
        "-i",
        inv.to_str().unwrap(),
        "--state-file",
        dir.path().join("s.json").to_str().unwrap(),
    ])
    .env("WSUSFIX_PASSWORD", PASSWORD)
    .run()
    .code(1)
    .stderr_has("loopback only");
    let lab = inventory_copy(dir.path(), "lab.yaml", 62);
    let scenario = dir.path().join("bad.yaml");
    std::fs::write(&scenario, "servers:\n  wsus-hq: { brokn: true }\n").unwrap();
    Run::new([
        "sim",
        "serve",
        "-i",
        lab.to_str().unwrap(),
        "--scenario",
        scenario.to_str().unwrap(),
    ])
    .env("WSUSFIX_PASSWORD", PASSWORD)
    .run()
    .code(3)
    .stderr_has("bad.yaml:2:")
    .stderr_has("brokn");
    Run::new([
        "sim",
        "state",
        "--state-file",
        dir.path().join("none.json").to_str().unwrap(),
    ])
    .run()
    .code(3)
    .stderr_has("sim serve");
}

#[test]
fn every_example_scenario_builds_a_world_of_the_lab() {
    use wsusfix::core::inventory;
    use wsusfix::sim::scenario::Scenario;
    use wsusfix::sim::world::World;
    let inv = inventory::load(&std::fs::read_to_string(root().join("inventory/lab.yaml")).unwrap())
        .inventory
        .unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(root().join("tests/fixtures/scenarios")).unwrap() {
        let p = e.unwrap().path();
        let scenario = Scenario::parse(&std::fs::read_to_string(&p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        World::new(&inv, &scenario, chrono::Utc::now())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        n += 1;
    }
    assert!(n >= 5);
}
