//! Kerberos clients nobody on the project wrote against the simulator's WinRM endpoint, with
//! tickets from a real MIT KDC (`tests/kdc/realm.sh`): pywinrm's kerberos transport (pykerberos,
//! a raw krb5 token, a ticket cache from `kinit`) and pyspnego's SPNEGO client over MIT's krb5,
//! both sealing both ways; NTLM refused by a hardened host (`ntlm: false`); and wsusfix's own
//! client, for which a refused ticket names its cause.
//!
//! The Python comes from `$WSUSFIX_PEER_KRB_PYTHON` or `tests/peer/setup.sh --kerberos`.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use wsusfix::sim::endpoint::{
    Account, EndpointConfig, HostSpec, Keytab, ScriptHost, ScriptOutcome, serve,
};
use wsusfix::util::secret::Secret;
use wsusfix::winrm::{AuthMethod, Endpoint, ErrorKind, LogonMechanism, Scheme, Session};

mod common;
use common::{KRB_USER, PASSWORD, Realm, kerberos_python};

const SPN_HOST: &str = "peer-host.lab.test";

async fn stub(host: String, script: String) -> ScriptOutcome {
    let first = script.lines().next().unwrap_or_default().to_string();
    let mut out = ScriptOutcome::success(format!("{host}: {first}\r\n"));
    for line in script.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("big ") {
            out.stdout
                .extend(std::iter::repeat_n(b'z', n.parse().unwrap()));
        } else if let Some(code) = line.strip_prefix("exit ") {
            out.exit_code = code.parse().unwrap();
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerberos_peers_log_on_to_a_hardened_simulated_host() {
    let python = tokio::task::spawn_blocking(|| kerberos_python().to_path_buf())
        .await
        .unwrap();
    let realm = tokio::task::spawn_blocking(|| Realm::start("127.0.0.1:18921", &[SPN_HOST], None))
        .await
        .unwrap();
    let keytab = Keytab::read(&realm.keytab).unwrap();
    let handler: Arc<dyn ScriptHost> =
        Arc::new(|host: &str, script: String| stub(host.to_string(), script));
    let mut spec = HostSpec::new(
        "peer-host",
        IpAddr::V4(Ipv4Addr::new(127, 0, 79, 1)),
        vec![Account::new(KRB_USER, PASSWORD)],
    );
    spec.ntlm = false;
    spec.kerberos = keytab.service_keys(SPN_HOST).map(Arc::new);
    assert!(
        spec.kerberos.is_some(),
        "the realm's keytab holds HTTP/{SPN_HOST}"
    );
    let config = EndpointConfig {
        http_port: 0,
        https_port: Some(0),
        ..EndpointConfig::default()
    };
    let ep = serve(vec![spec], config, handler).await.unwrap();
    let url = ep.host("peer-host").unwrap().http_url();

    // pykerberos reads a ticket cache: kinit fills one in the realm's folder.
    let ccache = realm.dir.path().join("ccache");
    let mut kinit = std::process::Command::new("kinit")
        .arg(KRB_USER)
        .env("KRB5_CONFIG", &realm.krb5_config)
        .env("KRB5CCNAME", format!("FILE:{}", ccache.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("kinit (krb5-user)");
    writeln!(kinit.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(kinit.wait().unwrap().success(), "kinit {KRB_USER}");

    let cfg = serde_json::json!({
        "http_url": url,
        "spn_host": SPN_HOST,
        "user": KRB_USER,
        "password": PASSWORD,
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peer/sim_pywinrm_kerberos.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(cfg.to_string())
        .env("KRB5_CONFIG", &realm.krb5_config)
        .env("KRB5CCNAME", format!("FILE:{}", ccache.display()))
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env("NO_PROXY", "*")
        .env("no_proxy", "*")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the Kerberos peers finish within 2 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {}\n{stdout}\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let results: HashMap<String, serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("one JSON object per line"))
        .map(|v| (v["scenario"].as_str().unwrap().to_string(), v))
        .collect();
    let ok = |name: &str| {
        let v = results
            .get(name)
            .unwrap_or_else(|| panic!("scenario {name} missing:\n{stdout}"));
        assert_eq!(v["ok"], true, "{name}: {v:#}");
        v.clone()
    };
    let v = ok("pywinrm_kerberos_run_ps");
    assert_eq!(v["status_code"], 3);
    assert_eq!(v["std_out"], "peer-host: Write-Output 'hello'\r\n");
    let v = ok("pywinrm_kerberos_large_output");
    assert_eq!(v["std_out_len"], "peer-host: big\r\n".len() + 200_000);
    let v = ok("pyspnego_kerberos_sealed_create");
    assert_eq!(v["status_code"], 200);
    assert_eq!(v["negotiated_protocol"], "kerberos");
    assert_eq!(v["has_shell_id"], true);
    let v = &results["pywinrm_ntlm_refused"];
    assert_eq!(v["ok"], false, "{v:#}");
    // requests-ntlm sees the 401 without a challenge that a host with NTLM denied answers.
    assert_eq!(v["error_type"], "PermissionError", "{v:#}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("did not respond with NTLM challenge"),
        "{v:#}"
    );

    // wsusfix's own client: Kerberos works, NTLM is refused before any password is sent.
    let mut e = Endpoint::new(
        "127.0.79.1",
        Scheme::Http,
        AuthMethod::Kerberos,
        KRB_USER,
        Secret::new(PASSWORD),
    );
    e.port = ep.host("peer-host").unwrap().http.port();
    e.spn_host = Some(SPN_HOST.to_ascii_uppercase());
    e.kdc = Some(realm.kdc.clone());
    let mut session = Session::new(e.clone()).unwrap();
    let o = session
        .run_ps("from wsusfix\nexit 0", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(o.stdout, "peer-host: from wsusfix\r\n");
    assert_eq!(session.mechanism(), Some(LogonMechanism::Kerberos));
    session.close().await.unwrap();
    let mut ntlm = e.clone();
    ntlm.auth = AuthMethod::Ntlm;
    let err = Session::new(ntlm)
        .unwrap()
        .run_ps("x", Duration::from_secs(30))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(
        err.to_string()
            .contains("the host refused the NTLM logon before any password was sent"),
        "{err}"
    );
    // Negotiate with a KDC picks Kerberos (and never needs NTLM here).
    let mut negotiate = e.clone();
    negotiate.auth = AuthMethod::Negotiate;
    let mut s = Session::new(negotiate).unwrap();
    s.run_ps("negotiated\nexit 0", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(s.mechanism(), Some(LogonMechanism::Kerberos));
    s.close().await.unwrap();

    // Negotiate whose KDC cannot be reached falls back to NTLM, as Windows does; the hardened
    // host refuses it, and the error says why Kerberos was not used.
    let mut fallback = e.clone();
    fallback.auth = AuthMethod::Negotiate;
    fallback.kdc = Some("127.0.0.1:18929".into());
    let err = Session::new(fallback)
        .unwrap()
        .run_ps("x", Duration::from_secs(30))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("the host refused the NTLM logon before any password was sent")
            && text.contains(
                "Kerberos was not used: the KDC 127.0.0.1:18929 could not be reached: connection refused"
            ),
        "{text}"
    );

    // Kerberos over HTTPS: the same logon, TLS instead of sealing.
    let mut ca = tempfile::NamedTempFile::new().unwrap();
    ca.write_all(ep.ca_pem().as_bytes()).unwrap();
    let mut tls = e.clone();
    tls.scheme = Scheme::Https;
    tls.port = ep.host("peer-host").unwrap().https.unwrap().port();
    tls.ca_file = Some(ca.path().to_path_buf());
    let mut s = Session::new(tls).unwrap();
    let o = s
        .run_ps("over https\nexit 0", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(o.stdout, "peer-host: over https\r\n");
    assert_eq!(s.mechanism(), Some(LogonMechanism::Kerberos));
    s.close().await.unwrap();

    let c = ep.counters("peer-host").unwrap();
    assert_eq!(c.ntlm_logons, 0, "{c:?}");
    assert!(c.ntlm_refused >= 3, "pywinrm's and wsusfix's NTLM: {c:?}");
    assert!(c.kerberos_logons >= 6, "{c:?}");
    ep.shutdown().await;
}
