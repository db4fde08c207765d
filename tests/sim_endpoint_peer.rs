//! Interop with a client nobody on the project wrote: pywinrm 0.5.0 (with pyspnego's NTLM)
//! against the simulator's WinRM endpoint — NTLM with message encryption over HTTP, Basic and
//! NTLM over HTTPS, a wrong password, timeouts, large output and the stdin bootstrap; and
//! pyspnego's own SPNEGO client with sealing.
//!
//! The Python comes from `$WSUSFIX_PEER_PYTHON`, or else from `tests/peer/setup.sh` (which
//! creates `.peer-venv`; a lock file keeps concurrent test runs from creating it twice). If
//! neither works the test fails: it is never skipped.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wsusfix::sim::endpoint::{Account, EndpointConfig, HostSpec, ScriptHost, ScriptOutcome, serve};

mod common;
use common::peer_python;

/// Echoes `HOST: FIRST LINE`; obeys `sleep MS`, `big N` and `exit N` lines.
async fn stub(host: String, script: String) -> ScriptOutcome {
    let first = script.lines().next().unwrap_or_default().to_string();
    let mut out = ScriptOutcome::success(format!("{host}: {first}\r\n"));
    for line in script.lines().map(str::trim) {
        if let Some(ms) = line.strip_prefix("sleep ") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
        } else if let Some(n) = line.strip_prefix("big ") {
            out.stdout
                .extend(std::iter::repeat_n(b'z', n.parse().unwrap()));
        } else if let Some(code) = line.strip_prefix("exit ") {
            out.exit_code = code.parse().unwrap();
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywinrm_runs_scripts_against_the_endpoint() {
    let python = tokio::task::spawn_blocking(|| peer_python().to_path_buf())
        .await
        .unwrap();
    let handler: Arc<dyn ScriptHost> =
        Arc::new(|host: &str, script: String| stub(host.to_string(), script));
    let spec = HostSpec::new(
        "peer-host",
        IpAddr::V4(Ipv4Addr::new(127, 0, 78, 1)),
        vec![Account::new("vagrant", "Vagr4nt!")],
    );
    let config = EndpointConfig {
        http_port: 0,
        https_port: Some(0),
        ..EndpointConfig::default()
    };
    let ep = serve(vec![spec], config, handler).await.unwrap();
    let addrs = ep.host("peer-host").unwrap().clone();

    let mut ca = tempfile::NamedTempFile::new().unwrap();
    ca.write_all(ep.ca_pem().as_bytes()).unwrap();
    let cfg = serde_json::json!({
        "http_url": addrs.http_url(),
        "https_url": addrs.https_url().unwrap(),
        "ca_file": ca.path(),
        "user": "vagrant",
        "password": "Vagr4nt!",
        "wrong_password": "not-it",
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peer/sim_pywinrm_client.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(cfg.to_string())
        // Loopback only: never through a proxy from the environment.
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("all_proxy")
        .env("NO_PROXY", "*")
        .env("no_proxy", "*")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("pywinrm scenarios finish within 3 minutes")
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} failed: {}\n{stdout}\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let results: HashMap<String, serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("one JSON object per line"))
        .map(|v| (v["scenario"].as_str().unwrap().to_string(), v))
        .collect();
    let get = |name: &str| {
        let v = results
            .get(name)
            .unwrap_or_else(|| panic!("scenario {name} missing:\n{stdout}"));
        v.clone()
    };
    let ok = |name: &str| {
        let v = get(name);
        assert_eq!(v["ok"], true, "{name}: {v:#}");
        v
    };

    let v = ok("ntlm_http_run_ps");
    assert_eq!(v["status_code"], 3);
    assert_eq!(v["std_out"], "peer-host: Write-Output 'hello'\r\n");
    assert_eq!(v["std_err"], "");

    let v = ok("ntlm_http_run_cmd_unknown");
    assert_eq!(v["status_code"], 1);
    assert_eq!(
        v["std_err"],
        "'ipconfig' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
    );

    let v = ok("ntlm_http_too_long");
    assert_eq!(v["status_code"], 1);
    assert_eq!(v["std_err"], "The command line is too long.\r\n");

    let v = ok("ntlm_http_timed_out_then_done");
    assert_eq!(v["status_code"], 0);
    assert_eq!(v["std_out"], "peer-host: slow\r\n");

    let v = ok("ntlm_http_large_output");
    assert_eq!(v["std_out_len"], "peer-host: big\r\n".len() + 300_000);

    let v = ok("ntlm_http_stdin_bootstrap");
    assert_eq!(v["status_code"], 5);
    assert_eq!(v["std_out"], "peer-host: # from stdin\r\n");

    let v = ok("spnego_pyspnego_http");
    assert_eq!(v["status_code"], 200);
    assert_eq!(v["final_token"], true);
    assert_eq!(v["negotiated_protocol"], "ntlm");
    assert_eq!(v["has_shell_id"], true);

    for refused in ["ntlm_http_wrong_password", "basic_http_refused"] {
        let v = get(refused);
        assert_eq!(v["ok"], false, "{refused}: {v:#}");
        assert_eq!(
            v["error_type"], "InvalidCredentialsError",
            "{refused}: {v:#}"
        );
    }

    let v = ok("basic_https");
    assert_eq!(v["status_code"], 0);
    assert_eq!(v["std_out"], "peer-host: over https\r\n");

    let v = ok("ntlm_https");
    assert_eq!(v["std_out"], "peer-host: ntlm over https\r\n");

    let c = ep.counters("peer-host").unwrap();
    assert!(c.timed_out >= 1, "{c:?}");
    assert_eq!(c.auth_failures, 2, "{c:?}");
    assert_eq!(
        c.shells_created,
        c.shells_deleted + 1,
        "pywinrm deletes every shell (the SPNEGO scenario leaves one): {c:?}"
    );
    ep.shutdown().await;
}
