//! `WSUSFIX_LOG=trace` over a whole lab `apply` leaves nothing in the output from which the
//! password could be checked: no NTLM message (in hex, base64 or as text), no logon token, no
//! SOAP message in clear text (sspi prints every message it seals, in hex, at debug), no
//! password (docs/logging.md).

mod common;

use common::{Lab, PASSWORD};

#[test]
fn a_lab_apply_under_wsusfix_log_trace_prints_no_ntlm_message_and_no_plaintext_soap() {
    let lab = Lab::start("lab.yaml", 209, None);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsusfix"))
        .args(["apply", "-i"])
        .arg(&lab.inventory)
        .arg("--state-dir")
        .arg(lab.state_dir())
        .arg("--yes")
        .env("WSUSFIX_PASSWORD", PASSWORD)
        .env("WSUSFIX_CLIENT_PASSWORD", PASSWORD)
        .env("WSUSFIX_LOG", "trace")
        .env_remove("WSUSFIX_LOG_PROTOCOL")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{log}");
    assert_eq!(lab.problems(), Vec::<String>::new());
    // The log is there: every HTTP exchange and logon of the run. (Uncapped, sspi alone would
    // add its tokens and every sealed message, in hex, at debug and trace.)
    assert!(
        log.contains(" INFO wsusfix::winrm::transport: logged on"),
        "{log}"
    );
    assert!(
        log.contains(" DEBUG wsusfix::winrm::transport: http exchange"),
        "{log}"
    );
    assert!(log.lines().count() > 100, "{log}");
    let everything = format!("{stdout}\n{log}");
    let lower = everything.to_ascii_lowercase();
    for (what, needle) in [
        ("NTLMSSP as text", "ntlmssp"),
        ("NTLMSSP in hex", "4e544c4d535350"),
        ("NTLMSSP in base64", "tlrmtvntua"),
        ("NTLMSSP as a byte list", "78, 84, 76, 77, 83, 83, 80"),
        ("SPNEGO tokens in a header", "negotiate yi"),
        ("SPNEGO tokens in a header", "negotiate oy"),
        ("an XML declaration in hex", "3c3f786d6c"),
        ("a SOAP envelope in clear text", "envelope xmlns"),
        ("a SOAP envelope in clear text", "soap-envelope"),
        ("a WinRS body in clear text", "rsp:"),
        ("a SOAP envelope in hex", "456e76656c6f7065"),
    ] {
        assert!(
            !lower.contains(&needle.to_ascii_lowercase()),
            "{what} ({needle}) is in the output:\n{}",
            context(&everything, needle)
        );
    }
    assert!(
        !everything.contains(PASSWORD),
        "the password is in the output"
    );
}

/// The lines around the first match, for the failure message.
fn context(text: &str, needle: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let at = lower.find(&needle.to_ascii_lowercase()).unwrap_or(0);
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = (at + 300).min(text.len());
    text.get(start..end).unwrap_or("").to_string()
}

/// Protocol dumps come only on request and only to a terminal, after a warning: under a pseudo
/// terminal (`script`) the SOAP messages are shown; through a pipe the request is refused.
#[test]
fn protocol_dumps_need_the_flag_and_a_terminal() {
    let lab = Lab::start("lab.yaml", 213, Some("seed: 1\n"));
    let bin = env!("CARGO_BIN_EXE_wsusfix");
    let inv = lab.inventory.display().to_string();
    let exec = format!("{bin} exec -i {inv} --host wsus-hq -- '# wsusfix-op: child_servers {{}}'");
    let run = |wrap_in_terminal: bool| {
        let mut cmd = if wrap_in_terminal {
            let mut c = std::process::Command::new("script");
            c.args(["-qec", &exec, "/dev/null"]);
            c
        } else {
            let mut c = std::process::Command::new("sh");
            c.args(["-c", &exec]);
            c
        };
        let out = cmd
            .env("WSUSFIX_PASSWORD", PASSWORD)
            .env("WSUSFIX_LOG", "wsusfix::winrm=trace")
            .env("WSUSFIX_LOG_PROTOCOL", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let piped = run(false);
    assert!(
        piped.contains(
            "WSUSFIX_LOG_PROTOCOL is ignored: protocol dumps are only written to a terminal"
        ),
        "{piped}"
    );
    assert!(!piped.contains("Envelope xmlns"), "{piped}");
    assert!(piped.contains("== wsus-hq (exit 0, ntlm)"), "{piped}");
    let shown = run(true);
    assert!(
        shown.contains(
            "warning: WSUSFIX_LOG_PROTOCOL is on: the NTLM messages and every SOAP message"
        ),
        "{shown}"
    );
    assert!(shown.contains("wsusfix::winrm::wire"), "{shown}");
    assert!(shown.contains("create shell request ("), "{shown}");
    assert!(shown.contains(":Envelope xmlns"), "{shown}");
    assert!(shown.contains("logon token sent: "), "{shown}");
}
