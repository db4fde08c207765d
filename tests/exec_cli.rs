//! `wsusfix exec` through the binary against the simulator: per-host output and exit codes,
//! PowerShell errors shown as text, unknown and unreachable hosts.

mod common;

use common::Lab;

#[test]
fn exec_runs_a_snippet_on_each_host() {
    let lab = Lab::start(
        "lab.yaml",
        82,
        Some("seed: 1\ntransport:\n  wsus-us: { refuse: true }\n"),
    );
    let d = lab
        .wsusfix(
            "exec",
            &[
                "--host",
                "wsus-hq",
                "--host",
                "wsus-eu",
                "--",
                "# wsusfix-op: child_servers {}",
            ],
        )
        .run()
        .code(0);
    assert!(
        d.stdout
            .contains("== wsus-hq (exit 0, ntlm)\nwsusfix:child="),
        "{}",
        d.stdout
    );
    assert!(
        d.stdout.contains("== wsus-eu (exit 0, ntlm)"),
        "{}",
        d.stdout
    );
    assert!(
        d.stdout.ends_with("2 hosts: 2 ok, 0 failed\n"),
        "{}",
        d.stdout
    );

    // PowerShell errors arrive as CLIXML; exec shows them as text.
    let d = lab
        .wsusfix("exec", &["--host", "pc-hq-1", "--", "Get-Date"])
        .run()
        .code(2);
    assert!(
        d.stdout.contains("== pc-hq-1 (exit 1, ntlm)\n-- stderr\n"),
        "{}",
        d.stdout
    );
    assert!(!d.stdout.contains("CLIXML"), "{}", d.stdout);

    let d = lab
        .wsusfix(
            "exec",
            &["--host", "wsus-us", "--", "# wsusfix-op: child_servers {}"],
        )
        .run()
        .code(2);
    assert!(d.stdout.contains("== wsus-us (not run)"), "{}", d.stdout);
    assert!(
        d.stdout.contains("cannot connect: connection refused"),
        "{}",
        d.stdout
    );

    lab.wsusfix("exec", &["--host", "wsus-hqq", "--", "x"])
        .run()
        .code(3)
        .stderr_has("did you mean `wsus-hq`?");
}

#[test]
fn a_wrong_ntlm_password_costs_one_logon_not_one_per_host() {
    let lab = Lab::start("lab.yaml", 86, None);
    let d = lab
        .wsusfix(
            "exec",
            &["--host", "all", "--", "# wsusfix-op: child_servers {}"],
        )
        .env("WSUSFIX_PASSWORD", "Wrong-Passw0rd!")
        .run()
        .code(2);
    let refused = d
        .stdout
        .matches(":5985: the server rejected the credentials (HTTP 401)")
        .count();
    let not_tried = d
        .stdout
        .matches("not tried: the credentials of LAB\\wsusfix were refused by 127.86.1.")
        .count();
    assert_eq!((refused, not_tried), (1, 5), "{}", d.stdout);
    assert!(d.stdout.contains("6 hosts: 0 ok, 6 failed"), "{}", d.stdout);
}
