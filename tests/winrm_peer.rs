//! Interop of the WinRM client with an independent peer: `tests/peer/winrm_peer_server.py`, a
//! WinRS test server whose NTLM / SPNEGO side is pyspnego's acceptor and that enforces MS-WSMV
//! encryption over HTTP, Basic over HTTPS, the TimedOut fault, the stdin bootstrap and 413.
//!
//! The Python virtualenv comes from `$WSUSFIX_PEER_PYTHON`, or is created by
//! `tests/peer/setup.sh` (pywinrm 0.5.0, pyspnego 0.12.4 from PyPI). Nothing is skipped: without
//! Python the tests fail and say why.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use wsusfix::util::secret::Secret;
use wsusfix::winrm::{AuthMethod, Endpoint, ErrorKind, Operation, Scheme, Session};

mod common;
use common::peer_python;

const USER: &str = "CORP\\alice";
const PASSWORD: &str = "Pa55-w0rd!peer";
const DEADLINE: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Default)]
struct PeerOptions {
    tls: bool,
    max_envelope_kb: Option<u32>,
    require_cbt: bool,
}

/// A running peer server; killed when dropped.
struct Peer {
    child: Child,
    port: u16,
    tls: Option<TlsFiles>,
    dir: tempfile::TempDir,
}

struct TlsFiles {
    ca: PathBuf,
}

impl Peer {
    fn start(options: PeerOptions) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        std::fs::write(
            &users,
            format!("CORP:alice:{PASSWORD}\n:carol@corp.example:{PASSWORD}\n"),
        )
        .unwrap();
        let stderr = File::create(dir.path().join("stderr")).unwrap();
        let mut command = Command::new(peer_python());
        command
            .arg(repo().join("tests/peer/winrm_peer_server.py"))
            .env("NTLM_USER_FILE", &users)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let tls = options.tls.then(|| {
            let files = make_certificates(dir.path());
            command
                .arg("--tls-cert")
                .arg(dir.path().join("server.pem"))
                .arg("--tls-key")
                .arg(dir.path().join("server.key"));
            files
        });
        if let Some(kb) = options.max_envelope_kb {
            command.arg("--max-envelope-kb").arg(kb.to_string());
        }
        if options.require_cbt {
            command.arg("--require-cbt");
        }
        let mut child = command.spawn().expect("start the peer server");
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
        Peer {
            child,
            port,
            tls,
            dir,
        }
    }

    fn endpoint(&self, auth: AuthMethod) -> Endpoint {
        self.endpoint_as(auth, USER, PASSWORD)
    }

    fn endpoint_as(&self, auth: AuthMethod, user: &str, password: &str) -> Endpoint {
        let scheme = if self.tls.is_some() {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let mut e = Endpoint::new("127.0.0.1", scheme, auth, user, Secret::new(password));
        e.port = self.port;
        e.operation_timeout = Duration::from_secs(2);
        e.connect_timeout = Duration::from_secs(5);
        e
    }

    fn control_client(&self) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .no_proxy()
            .tls_danger_accept_invalid_certs(true)
            .build()
            .unwrap()
    }

    fn base(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    async fn log(&self) -> Vec<Value> {
        let text = self
            .control_client()
            .get(format!("{}/peer/log", self.base()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    async fn actions(&self) -> Vec<String> {
        self.log()
            .await
            .iter()
            .filter_map(|e| e["action"].as_str().map(str::to_string))
            .collect()
    }

    async fn drop_auth(&self) {
        let status = self
            .control_client()
            .post(format!("{}/peer/control", self.base()))
            .body("drop-auth")
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success());
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

/// A test CA and a server certificate for 127.0.0.1 / localhost signed by it.
fn make_certificates(dir: &Path) -> TlsFiles {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "wsusfix test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "peer");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();

    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    TlsFiles { ca }
}

fn count(actions: &[String], name: &str) -> usize {
    actions.iter().filter(|a| *a == name).count()
}

fn auth_events(log: &[Value]) -> Vec<&Value> {
    log.iter().filter(|e| e["event"] == "auth").collect()
}

#[tokio::test]
async fn ntlm_over_http_with_sealing_reuses_one_shell_and_one_connection() {
    let peer = Peer::start(PeerOptions::default());
    let mut session = Session::new(peer.endpoint(AuthMethod::Ntlm)).unwrap();

    let out = session
        .run_ps(
            "Write-Output 'h\u{e9}llo w\u{f6}rld'\nWrite-Error 'boom & bang'\nexit 3",
            DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 3);
    assert_eq!(out.stdout, "h\u{e9}llo w\u{f6}rld\r\n");
    assert_eq!(out.stderr, "boom & bang");

    let out = session
        .run_ps("Write-Output 'again'\n#peer:progress", DEADLINE)
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "again\r\n", "")
    );
    session.close().await.unwrap();
    assert!(!session.has_open_shell());

    let log = peer.log().await;
    let actions = peer.actions().await;
    assert_eq!(count(&actions, "Create"), 1, "{actions:?}");
    assert_eq!(count(&actions, "Command"), 2);
    assert_eq!(count(&actions, "Signal"), 2);
    assert_eq!(count(&actions, "Delete"), 1);
    // Every command's first Receive got the TimedOut fault and was repeated.
    assert!(count(&actions, "Receive") >= 4);

    let auths = auth_events(&log);
    assert_eq!(auths.len(), 1, "{auths:?}");
    assert_eq!(auths[0]["spnego"], false);
    assert_eq!(auths[0]["user"], "CORP\\alice");
    // One TCP connection for everything.
    assert!(
        log.iter().all(|e| e["conn"] == 1 || e["conn"].is_null()),
        "{log:#?}"
    );
    let create = log.iter().find(|e| e["action"] == "Create").unwrap();
    assert_eq!(create["options"]["WINRS_CODEPAGE"], "437");
    assert_eq!(create["operation_timeout"], "PT2S");
    assert_eq!(create["max_envelope"], "153600");
    assert_eq!(
        create["to"],
        format!("http://127.0.0.1:{}/wsman", peer.port)
    );
    let signal = log.iter().find(|e| e["action"] == "Signal").unwrap();
    assert_eq!(
        signal["code"],
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate"
    );
    assert!(!log.iter().any(|e| e["event"] == "bad-encryption"));

    let stats = session.stats();
    assert_eq!(stats.authentications, 1);
    assert!(stats.requests >= 12, "{stats:?}");
    assert!(
        stats.bytes_sent > 10_000 && stats.bytes_received > 5_000,
        "{stats:?}"
    );
}

#[tokio::test]
async fn spnego_over_http_with_sealing_consumes_the_final_token() {
    let peer = Peer::start(PeerOptions::default());
    let mut session = Session::new(peer.endpoint(AuthMethod::Negotiate)).unwrap();
    for i in 0..3 {
        let out = session
            .run_ps(&format!("Write-Output 'spnego {i}'"), DEADLINE)
            .await
            .unwrap();
        assert_eq!(out.stdout, format!("spnego {i}\r\n"));
    }
    session.close().await.unwrap();
    let log = peer.log().await;
    let auths = auth_events(&log);
    assert_eq!(auths.len(), 1, "{auths:?}");
    assert_eq!(auths[0]["spnego"], true);
    assert_eq!(auths[0]["protocol"], "ntlm");
    assert!(!log.iter().any(|e| e["event"] == "bad-encryption"));
}

#[tokio::test]
async fn user_principal_names_authenticate() {
    let peer = Peer::start(PeerOptions::default());
    let endpoint = peer.endpoint_as(AuthMethod::Ntlm, "carol@corp.example", PASSWORD);
    let mut session = Session::new(endpoint).unwrap();
    let out = session.run_ps("exit 0", DEADLINE).await.unwrap();
    assert_eq!(out.exit_code, 0);
    session.close().await.unwrap();
}

#[tokio::test]
async fn utf8_output_split_across_chunks_and_replies() {
    let peer = Peer::start(PeerOptions::default());
    let mut endpoint = peer.endpoint(AuthMethod::Ntlm);
    endpoint.codepage = 65001;
    let mut session = Session::new(endpoint).unwrap();
    // The peer hands stdout out 7 bytes at a time: every multi-byte character below lands
    // across Stream elements or Receive replies somewhere.
    let text = "na\u{ef}ve \u{2713} \u{1F600} \u{65e5}\u{672c}\u{8a9e} caf\u{e9}";
    let out = session
        .run_ps(&format!("Write-Output '{text}'"), DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.stdout, format!("{text}\r\n"));
    session.close().await.unwrap();
    let log = peer.log().await;
    let create = log.iter().find(|e| e["action"] == "Create").unwrap();
    assert_eq!(create["options"]["WINRS_CODEPAGE"], "65001");
}

#[tokio::test]
async fn a_long_script_travels_through_stdin() {
    let peer = Peer::start(PeerOptions::default());
    let mut session = Session::new(peer.endpoint(AuthMethod::Ntlm)).unwrap();
    let mut script = String::from("Write-Output 'first'\n");
    for i in 0..3500 {
        script.push_str(&format!(
            "# filler line {i:05} with some n\u{f6}n-ASCII text \u{2713}\n"
        ));
    }
    script.push_str("#peer:digest\nWrite-Output 'last'\nexit 5\n");
    assert!(script.len() > 150_000);

    let out = session.run_ps(&script, DEADLINE).await.unwrap();
    let digest = Sha256::digest(script.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(out.exit_code, 5);
    assert_eq!(
        out.stdout,
        format!(
            "first\r\nsha256={hex} chars={}\r\nlast\r\n",
            script.chars().count()
        )
    );
    session.close().await.unwrap();

    let log = peer.log().await;
    let command = log.iter().find(|e| e["action"] == "Command").unwrap();
    assert_eq!(command["bootstrap"], true);
    assert_eq!(command["options"]["WINRS_CONSOLEMODE_STDIN"], "FALSE");
    assert!(command["command_line_chars"].as_u64().unwrap() < 8191);
    let sends: Vec<&Value> = log.iter().filter(|e| e["action"] == "Send").collect();
    assert!(sends.len() >= 3, "{}", sends.len());
    for (i, send) in sends.iter().enumerate() {
        assert_eq!(send["end"], i == sends.len() - 1);
        assert!(send["bytes"].as_u64().unwrap() < 100_000, "{send}");
    }
}

#[tokio::test]
async fn too_large_an_envelope_is_a_typed_413() {
    let peer = Peer::start(PeerOptions {
        max_envelope_kb: Some(40),
        ..Default::default()
    });
    let mut session = Session::new(peer.endpoint(AuthMethod::Ntlm)).unwrap();
    let script = format!("# {}\nexit 0\n", "x".repeat(90_000));
    let err = session.run_ps(&script, DEADLINE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Http, "{err}");
    assert_eq!(err.http_status(), Some(413));
    assert_eq!(err.operation(), Operation::SendInput);
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(text.contains("HTTP 413"), "{text}");
    assert!(text.contains("MaxEnvelopeSizekb"), "{text}");
    // The failed command was cleaned up.
    let actions = peer.actions().await;
    assert_eq!(
        &actions[actions.len() - 2..],
        ["Signal", "Delete"],
        "{actions:?}"
    );
    assert!(!session.has_open_shell());
}

#[tokio::test]
async fn a_mid_session_401_reauthenticates_on_a_fresh_connection() {
    let peer = Peer::start(PeerOptions::default());
    let mut session = Session::new(peer.endpoint(AuthMethod::Negotiate)).unwrap();
    session
        .run_ps("Write-Output 'before'", DEADLINE)
        .await
        .unwrap();
    peer.drop_auth().await;
    let out = session
        .run_ps("Write-Output 'after'", DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.stdout, "after\r\n");
    session.close().await.unwrap();

    let log = peer.log().await;
    let auths = auth_events(&log);
    assert_eq!(auths.len(), 2, "{auths:?}");
    assert!(auths.iter().all(|a| a["ok"] == true));
    assert_ne!(auths[0]["conn"], auths[1]["conn"]);
    assert!(log.iter().any(|e| e["event"] == "unauthenticated"));
    // The same shell went on serving after re-authentication.
    assert_eq!(count(&peer.actions().await, "Create"), 1);
    assert_eq!(session.stats().authentications, 2);
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error_without_the_password() {
    let peer = Peer::start(PeerOptions::default());
    for auth in [AuthMethod::Ntlm, AuthMethod::Negotiate] {
        let endpoint = peer.endpoint_as(auth, USER, "Wr0ng-Secret-Value");
        let mut session = Session::new(endpoint).unwrap();
        let err = session.run_ps("exit 0", DEADLINE).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
        assert!(!err.is_transient());
        assert_eq!(err.operation(), Operation::CreateShell);
        let text = format!("{err} {err:?} {session:?}");
        assert!(!text.contains("Wr0ng-Secret-Value"), "{text}");
        assert!(
            err.to_string().contains("rejected the credentials"),
            "{err}"
        );
    }
    let log = peer.log().await;
    // One failed handshake per attempt, nothing else.
    assert_eq!(auth_events(&log).len(), 2);
    assert!(auth_events(&log).iter().all(|a| a["ok"] == false));
    assert!(peer.actions().await.is_empty());
}

#[tokio::test]
async fn the_deadline_ends_a_hanging_command_and_cleans_up() {
    let peer = Peer::start(PeerOptions::default());
    let mut endpoint = peer.endpoint(AuthMethod::Ntlm);
    endpoint.operation_timeout = Duration::from_secs(1);
    let mut session = Session::new(endpoint).unwrap();
    let started = std::time::Instant::now();
    let err = session
        .run_ps("Start-Sleep -Seconds 30", Duration::from_secs(4))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(err.operation(), Operation::ReceiveOutput);
    assert!(!session.has_open_shell());
    let actions = peer.actions().await;
    assert_eq!(
        &actions[actions.len() - 2..],
        ["Signal", "Delete"],
        "{actions:?}"
    );

    // The session stays usable.
    let out = session
        .run_ps("Write-Output 'next'", DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.stdout, "next\r\n");
    session.close().await.unwrap();
}

#[tokio::test]
async fn basic_over_https_trusts_the_ca_file() {
    let peer = Peer::start(PeerOptions {
        tls: true,
        ..Default::default()
    });
    let mut endpoint = peer.endpoint(AuthMethod::Basic);
    endpoint.ca_file = Some(peer.tls.as_ref().unwrap().ca.clone());
    let mut session = Session::new(endpoint).unwrap();
    let out = session
        .run_ps("Write-Output 'over tls'\nexit 2", DEADLINE)
        .await
        .unwrap();
    assert_eq!((out.exit_code, out.stdout.as_str()), (2, "over tls\r\n"));
    session.close().await.unwrap();
    let log = peer.log().await;
    assert!(
        auth_events(&log)
            .iter()
            .all(|a| a["scheme"] == "basic" && a["ok"] == true)
    );
    assert_eq!(session.stats().authentications, 0);
}

#[tokio::test]
async fn https_without_trust_fails_with_a_tls_error_unless_verification_is_off() {
    let peer = Peer::start(PeerOptions {
        tls: true,
        ..Default::default()
    });
    let mut session = Session::new(peer.endpoint(AuthMethod::Basic)).unwrap();
    let err = session.run_ps("exit 0", DEADLINE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(!err.is_transient());

    let mut endpoint = peer.endpoint(AuthMethod::Basic);
    endpoint.insecure_skip_verify = true;
    let mut session = Session::new(endpoint).unwrap();
    let out = session.run_ps("exit 0", DEADLINE).await.unwrap();
    assert_eq!(out.exit_code, 0);
    session.close().await.unwrap();

    // A CA file that is not PEM is a configuration error.
    let mut endpoint = peer.endpoint(AuthMethod::Basic);
    let bogus = peer.dir.path().join("bogus.pem");
    std::fs::write(&bogus, "not a certificate").unwrap();
    endpoint.ca_file = Some(bogus);
    let err = Session::new(endpoint)
        .unwrap()
        .run_ps("exit 0", DEADLINE)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

#[tokio::test]
async fn basic_over_https_with_a_wrong_password_is_an_auth_error() {
    let peer = Peer::start(PeerOptions {
        tls: true,
        ..Default::default()
    });
    let mut endpoint = peer.endpoint_as(AuthMethod::Basic, "alice", "Wr0ng-Secret-Value");
    endpoint.insecure_skip_verify = true;
    let mut session = Session::new(endpoint).unwrap();
    let err = session.run_ps("exit 0", DEADLINE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(!format!("{err} {err:?}").contains("Wr0ng-Secret-Value"));
}

#[tokio::test]
async fn ntlm_over_https_without_sealing() {
    let peer = Peer::start(PeerOptions {
        tls: true,
        ..Default::default()
    });
    let mut endpoint = peer.endpoint(AuthMethod::Ntlm);
    endpoint.ca_file = Some(peer.tls.as_ref().unwrap().ca.clone());
    let mut session = Session::new(endpoint).unwrap();
    let out = session
        .run_ps("Write-Output 'ntlm/tls'", DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.stdout, "ntlm/tls\r\n");
    session.close().await.unwrap();
    assert_eq!(session.stats().authentications, 1);
}

/// Extended Protection (CbtHardeningLevel=Strict): the peer's pyspnego acceptor checks the
/// tls-server-end-point binding of its certificate. pywinrm without its binding is refused (the
/// peer really checks); wsusfix, raw NTLM and SPNEGO, is let in.
#[tokio::test]
async fn ntlm_over_https_carries_the_channel_binding_extended_protection_demands() {
    let peer = Peer::start(PeerOptions {
        tls: true,
        require_cbt: true,
        ..Default::default()
    });
    let ca = peer.tls.as_ref().unwrap().ca.clone();
    let pywinrm = |send_cbt: bool| {
        let script = format!(
            "import sys, winrm\n\
             s = winrm.Session('https://127.0.0.1:{}/wsman', auth=(sys.argv[1], sys.argv[2]), \
             transport='ntlm', server_cert_validation='ignore', send_cbt={})\n\
             try:\n    print(s.run_ps('Write-Output 1').status_code)\n\
             except winrm.exceptions.InvalidCredentialsError:\n    print('refused')\n",
            peer.port,
            if send_cbt { "True" } else { "False" }
        );
        let out = Command::new(peer_python())
            .arg("-c")
            .arg(script)
            .arg(USER)
            .arg(PASSWORD)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(pywinrm(false), "refused", "the peer enforces the binding");
    assert_eq!(pywinrm(true), "0", "and accepts pywinrm's");
    for auth in [AuthMethod::Ntlm, AuthMethod::Negotiate] {
        let mut endpoint = peer.endpoint(auth);
        endpoint.ca_file = Some(ca.clone());
        let mut session = Session::new(endpoint).unwrap();
        let out = session
            .run_ps("Write-Output 'bound'", DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e}"));
        assert_eq!(out.stdout, "bound\r\n");
        session.close().await.unwrap();
    }
}

/// pywinrm, the reference client, against the same peer: if this passes and a test above fails,
/// the bug is in wsusfix.
#[test]
fn the_peer_agrees_with_pywinrm() {
    let peer = Peer::start(PeerOptions::default());
    let output = Command::new(peer_python())
        .arg(repo().join("tests/peer/winrm_pywinrm_check.py"))
        .arg(format!("http://127.0.0.1:{}/wsman", peer.port))
        .arg(USER)
        .arg(PASSWORD)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["status"], 6);
    assert_eq!(result["stdout"], "from pywinrm\r\n");
    assert_eq!(result["stderr"], "oops");
}

/// `ca_file` is that CA and no other: with the peer's CA among "the system's roots"
/// (`SSL_CERT_FILE`, which the platform verifier reads) and another CA in `ca_file`, the peer is
/// refused, unless `ca_mode: add` keeps the system's roots as well.
#[test]
fn ca_file_replaces_the_system_roots_unless_ca_mode_adds_to_them() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let peer = Peer::start(PeerOptions {
        tls: true,
        ..Default::default()
    });
    let peer_ca = peer.tls.as_ref().unwrap().ca.clone();
    let dir = tempfile::tempdir().unwrap();
    let mut other = CertificateParams::new(Vec::<String>::new()).unwrap();
    other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    other
        .distinguished_name
        .push(DnType::CommonName, "another CA");
    let other = other.self_signed(&KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.path().join("other-ca.pem"), other.pem()).unwrap();
    std::fs::copy(&peer_ca, dir.path().join("peer-ca.pem")).unwrap();
    let exec = |ca_file: &str, ca_mode: &str| {
        let inv = dir.path().join("inv.yaml");
        std::fs::write(
            &inv,
            format!(
                "defaults:\n  username: CORP\\alice\n  password: env:WSUSFIX_PASSWORD\nservers:\n  \
                 peer-host:\n    role: upstream\n    address: 127.0.0.1\n    winrm: {{ scheme: \
                 https, port: {}, auth: ntlm, ca_file: {ca_file}{ca_mode} }}\n",
                peer.port
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_wsusfix"))
            .args(["exec", "-i"])
            .arg(&inv)
            .args(["--host", "peer-host", "--", "Write-Output 'trusted'"])
            .env("WSUSFIX_PASSWORD", PASSWORD)
            .env("SSL_CERT_FILE", &peer_ca)
            .env_remove("SSL_CERT_DIR")
            .env_remove("WSUSFIX_LOG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = exec("other-ca.pem", "");
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("== peer-host (not run)\n"), "{out}");
    assert!(out.contains("TLS: "), "{out}");
    assert!(out.contains("UnknownIssuer"), "{out}");
    let (code, out) = exec("other-ca.pem", ", ca_mode: add");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("trusted"), "{out}");
    let (code, out) = exec("peer-ca.pem", "");
    assert_eq!(code, Some(0), "{out}");
}
