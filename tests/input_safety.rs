//! Inputs and outputs that must not turn against the operator: a literal password is refused
//! without being printed back, TLS verification turned off is said out loud, a YAML alias bomb is
//! refused at once, `plan --out` never writes through a planted link, and a password file that
//! others may read is refused unless the operator opts in.

mod common;

#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;

use common::Run;

const LAB_HEAD: &str = "defaults:\n  username: LAB\\wsusfix\n  password: env:WSUSFIX_PASSWORD\nservers:\n  wsus-hq:\n    role: upstream\n    address: 127.0.1.1\n";

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn validate_never_prints_a_password_back() {
    let dir = tempfile::tempdir().unwrap();
    let inv = write(
        dir.path(),
        "inv.yaml",
        &LAB_HEAD.replace(
            "  password: env:WSUSFIX_PASSWORD\n",
            "  password: Sup3r-S3cret!\n",
        ),
    );
    let d = Run::new(["validate", "-i", &inv]).run().code(3);
    assert!(
        d.stderr.contains("holds a literal password"),
        "{}",
        d.stderr
    );
    assert!(
        d.stderr.contains("  password: *************"),
        "{}",
        d.stderr
    );
    assert!(
        !format!("{}{}", d.stdout, d.stderr).contains("Sup3r"),
        "{}",
        d.stderr
    );
    // A typo of the key, too: the line is quoted for the unknown key, its value is not.
    let inv = write(
        dir.path(),
        "typo.yaml",
        &format!("{LAB_HEAD}    pasword: Sup3r-S3cret!\n"),
    );
    let d = Run::new(["validate", "-i", &inv]).run().code(3);
    assert!(d.stderr.contains("unknown key `pasword`"), "{}", d.stderr);
    assert!(!d.stderr.contains("Sup3r"), "{}", d.stderr);
}

#[test]
fn skipping_tls_verification_is_warned_about_by_validate_and_plan() {
    let dir = tempfile::tempdir().unwrap();
    let inv = write(
        dir.path(),
        "inv.yaml",
        &format!("{LAB_HEAD}    winrm: {{ scheme: https, insecure_skip_tls_verify: true }}\n"),
    );
    for cmd in ["validate", "plan"] {
        let d = Run::new([cmd, "-i", &inv]).run().code(0);
        assert!(
            d.stderr.contains(
                "warning: TLS verification is off for server `wsus-hq` (insecure_skip_tls_verify)"
            ),
            "{cmd}: {}",
            d.stderr
        );
    }
}

#[test]
fn a_yaml_alias_bomb_is_refused_at_once() {
    let started = std::time::Instant::now();
    let d = Run::new(["validate", "-i", "tests/invalid/inventory/alias-bomb.yaml"])
        .run()
        .code(3);
    assert!(d.stderr.contains("alias-bomb.yaml:7:14"), "{}", d.stderr);
    assert!(
        d.stderr
            .contains("the aliases would expand the document past 250000 nodes"),
        "{}",
        d.stderr
    );
    assert!(started.elapsed().as_secs() < 10);
}

// Symbolic links need a privilege on Windows.
#[cfg(unix)]
#[test]
fn plan_out_replaces_a_planted_link_instead_of_writing_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let out = dir.path().join("plan.json");
    std::os::unix::fs::symlink(&victim, &out).unwrap();
    // A link at the name the old code used for its temporary file, too.
    std::os::unix::fs::symlink(&victim, dir.path().join(".plan.json.1.tmp")).unwrap();
    Run::new([
        "plan",
        "-i",
        "inventory/lab.yaml",
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ])
    .run()
    .code(0);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(
        !std::fs::symlink_metadata(&out)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("\"fingerprint\"")
    );
}

// Windows has no file modes; the check is the Unix one.
#[cfg(unix)]
#[test]
fn a_password_file_others_may_read_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw.txt");
    std::fs::write(&pw, "Open-S3cret\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Port 1 on loopback refuses: the password is resolved first, then the connection fails.
    let inv = write(
        dir.path(),
        "inv.yaml",
        &LAB_HEAD
            .replace("env:WSUSFIX_PASSWORD", "file:pw.txt")
            .replace("127.0.1.1\n", "127.0.0.1\n    winrm: { port: 1 }\n"),
    );
    let exec = ["exec", "-i", &inv, "--host", "wsus-hq", "--", "1"];
    let d = Run::new(exec).run().code(2);
    assert!(
        d.stdout
            .contains("(file:pw.txt) has mode 0644: its group or other users may read it"),
        "{}",
        d.stdout
    );
    assert!(!d.stdout.contains("Open-S3cret"));
    let d = Run::new(exec)
        .env("WSUSFIX_ALLOW_OPEN_PASSWORD_FILES", "1")
        .run()
        .code(2);
    assert!(d.stdout.contains("cannot connect"), "{}", d.stdout);
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = Run::new(exec).run().code(2);
    assert!(d.stdout.contains("cannot connect"), "{}", d.stdout);
}
