//! `wsusfix demo` (the README's first command) runs with no setup and no prompt, exits 0 and
//! leaves the simulated world repaired: every server consistent, no replica autonomous, every
//! client detecting.

mod common;

use common::Run;

#[test]
fn the_demo_repairs_the_lab_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let d = Run::new([
        "demo",
        "--subnet",
        "36",
        "--dir",
        dir.path().to_str().unwrap(),
    ])
    .run()
    .code(0)
    .stdout_has("KB 954960 confirmed: the last detection failed")
    .stdout_has("Summary: 6 servers")
    .stdout_has("Result: 6 done; every restore done (exit 0")
    .stdout_has("replicas back in replica mode:     3/3");
    assert!(
        d.stdout.contains("clients detecting updates:         6/6"),
        "{}",
        d.stdout
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("sim-state.json")).unwrap()).unwrap();
    for (name, s) in state["servers"].as_object().unwrap() {
        assert_eq!(s["approvals_consistent"], true, "{name}");
    }
    for r in ["wsus-eu", "wsus-eu-paris", "wsus-us-dallas"] {
        assert_eq!(state["servers"][r]["replica"], true, "{r}");
        assert_eq!(state["servers"][r]["mode_switches"], 2, "{r}");
    }
    for (name, c) in state["clients"].as_object().unwrap() {
        assert_eq!(c["last_detection"], "succeeded", "{name}");
    }
}

#[test]
fn the_crash_demo_kills_mid_hold_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    Run::new([
        "demo",
        "--crash",
        "--subnet",
        "37",
        "--dir",
        dir.path().to_str().unwrap(),
    ])
    .run()
    .code(0)
    .stdout_has("held autonomous: no handler ran")
    .stdout_has("restore-pending")
    .stdout_has("Result: 6 done; every restore done (exit 0");
}

#[test]
fn the_kerberos_demo_repairs_the_lab_with_kerberos_only() {
    common::install_kerberos();
    let dir = tempfile::tempdir().unwrap();
    let d = Run::new([
        "demo",
        "--kerberos",
        "--subnet",
        "38",
        "--dir",
        dir.path().to_str().unwrap(),
    ])
    .run()
    .code(0)
    .stdout_has("Kerberos with message encryption, tickets from an MIT KDC on 127.38.0.1:18888")
    .stdout_has("every host refuses NTLM")
    .stdout_has("Result: 6 done; every restore done (exit 0");
    assert!(
        d.stdout.contains("Logons by protocol: 12 kerberos"),
        "{}",
        d.stdout
    );
    // The realm is gone with the demo: nothing listens on its KDC address any more.
    assert!(std::net::TcpStream::connect("127.38.0.1:18888").is_err());
}

#[test]
fn the_kerberos_demo_says_why_it_cannot_run_without_a_kdc() {
    // Debian installs the KDC's programs in /usr/sbin: without it on PATH they are missing.
    Run::new(["demo", "--kerberos", "--subnet", "39"])
        .env("PATH", "/usr/bin:/bin")
        .run()
        .code(1)
        .stderr_has("demo --kerberos needs MIT Kerberos to play the domain controller, and krb5kdc, kdb5_util, kadmin.local are not installed")
        .stderr_has("apt-get install krb5-kdc krb5-admin-server");
}
