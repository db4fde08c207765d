//! Kerberos interop with components nobody on this project wrote: a real MIT KDC (Debian's
//! `krb5-kdc`, started by `tests/kdc/realm.sh`) issues the tickets, and the acceptor is
//! `tests/peer/winrm_peer_server.py` over pyspnego and python-gssapi (MIT's krb5 mechanism,
//! keyed from the realm's keytab), which enforces MS-WSMV message encryption both ways.
//!
//! The Python comes from `$WSUSFIX_PEER_KRB_PYTHON`, or `tests/peer/setup.sh --kerberos` builds
//! it. Nothing is skipped: without apt, PyPI or root the tests fail and say why.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wsusfix::util::secret::Secret;
use wsusfix::winrm::{AuthMethod, Endpoint, ErrorKind, LogonMechanism, Scheme, Session};

mod common;
use common::{KRB_USER, PASSWORD, Realm, kerberos_python};

const DEADLINE: Duration = Duration::from_secs(60);
const SPN_HOST: &str = "peer.lab.test";

/// The peer server with a Kerberos acceptor; killed when dropped.
struct Peer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Peer {
    fn start(realm: &Realm) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        std::fs::write(&users, format!("LAB:wsusfix:{PASSWORD}\n")).unwrap();
        let stderr = File::create(dir.path().join("stderr")).unwrap();
        let mut child = Command::new(kerberos_python())
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peer/winrm_peer_server.py"))
            .env("NTLM_USER_FILE", &users)
            .env("KRB5_CONFIG", &realm.krb5_config)
            .env("KRB5_KTNAME", format!("FILE:{}", realm.keytab.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start the peer server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "the peer server did not start:\n{}",
                std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default()
            )
        });
        Peer { child, port, dir }
    }

    fn endpoint(&self, realm: &Realm, auth: AuthMethod, password: &str) -> Endpoint {
        let mut e = Endpoint::new(
            "127.0.0.1",
            Scheme::Http,
            auth,
            KRB_USER,
            Secret::new(password),
        );
        e.port = self.port;
        e.spn_host = Some(SPN_HOST.into());
        e.kdc = Some(realm.kdc.clone());
        e.operation_timeout = Duration::from_secs(2);
        e.connect_timeout = Duration::from_secs(5);
        e
    }

    async fn log(&self) -> Vec<Value> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let text = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://127.0.0.1:{}/peer/log", self.port))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    async fn logons(&self) -> Vec<Value> {
        self.log()
            .await
            .into_iter()
            .filter(|e| e["event"] == "auth")
            .collect()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "peer server stderr:\n{}",
                std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
            );
        }
    }
}

#[tokio::test]
async fn kerberos_logon_and_sealing_both_ways_against_pyspnego() {
    let realm = Realm::start("127.0.0.1:18911", &[SPN_HOST], None);
    let peer = Peer::start(&realm);
    let mut session = Session::new(peer.endpoint(&realm, AuthMethod::Kerberos, PASSWORD)).unwrap();
    let out = session
        .run_ps("Write-Output 'sealed by Kerberos'", DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "sealed by Kerberos");
    // A script too long for the command line goes through stdin: large sealed requests.
    let long = format!("Write-Output '{}'\n#peer:digest", "k".repeat(20_000));
    let out = session.run_ps(&long, DEADLINE).await.unwrap();
    assert!(out.stdout.contains("sha256="), "{out:?}");
    session.close().await.unwrap();

    let stats = session.stats();
    assert_eq!(stats.mechanism, Some(LogonMechanism::Kerberos));
    assert_eq!(stats.authentications, 1, "one logon for the whole session");
    assert!(stats.kdc_requests >= 3, "AS (twice) and TGS: {stats:?}");
    let logons = peer.logons().await;
    assert_eq!(logons.len(), 1, "{logons:?}");
    assert_eq!(logons[0]["ok"], true);
    assert_eq!(logons[0]["protocol"], "kerberos", "{logons:?}");
    assert!(
        logons[0]["user"].as_str().unwrap().starts_with("wsusfix"),
        "{logons:?}"
    );
    let unsealed = peer
        .log()
        .await
        .iter()
        .filter(|e| e["event"] == "bad-encryption")
        .count();
    assert_eq!(unsealed, 0);
    assert!(realm.log_count("TGS_REQ") >= 1, "{}", realm.log());
}

#[tokio::test]
async fn a_wrong_password_is_one_refusal_at_the_kdc_and_nothing_at_the_host() {
    let realm = Realm::start("127.0.0.1:18912", &[SPN_HOST], None);
    let peer = Peer::start(&realm);
    let mut session =
        Session::new(peer.endpoint(&realm, AuthMethod::Kerberos, "not-the-password")).unwrap();
    let err = session
        .run_ps("Write-Output 1", DEADLINE)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("the KDC refused the password of wsusfix@LAB.TEST")
            && text.contains("KDC_ERR_PREAUTH_FAILED (24)"),
        "{text}"
    );
    assert!(!text.contains("not-the-password"));
    assert_eq!(realm.log_count("PREAUTH_FAILED"), 1, "{}", realm.log());
    assert!(peer.logons().await.is_empty(), "the host never saw a token");
}

#[tokio::test]
async fn kdc_down_and_unknown_spn_name_their_cause_and_never_use_ntlm() {
    let realm = Realm::start("127.0.0.1:18913", &[SPN_HOST], None);
    let peer = Peer::start(&realm);

    // No KDC on that port.
    let mut e = peer.endpoint(&realm, AuthMethod::Kerberos, PASSWORD);
    e.kdc = Some("127.0.0.1:18919".into());
    let err = Session::new(e)
        .unwrap()
        .run_ps("Write-Output 1", DEADLINE)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(err.is_transient());
    assert!(
        err.to_string().contains(
            "cannot reach the KDC 127.0.0.1:18919 of the realm LAB.TEST: connection refused"
        ),
        "{err}"
    );

    // A name the realm has no service principal for.
    let mut e = peer.endpoint(&realm, AuthMethod::Kerberos, PASSWORD);
    e.spn_host = Some("elsewhere.lab.test".into());
    let err = Session::new(e)
        .unwrap()
        .run_ps("Write-Output 1", DEADLINE)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(
        err.to_string().contains(
            "knows no service principal HTTP/elsewhere.lab.test (KDC_ERR_S_PRINCIPAL_UNKNOWN (7)"
        ),
        "{err}"
    );
    assert!(
        peer.logons().await.is_empty(),
        "neither error reached the host, NTLM included"
    );
}
