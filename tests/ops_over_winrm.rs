//! Every WSUS operation, through the project's WinRM client, against the simulator over real
//! HTTP(S) on loopback, in each auth mode; and the transport failures (wrong password, refused
//! connection, HTTP 500s, TimedOut storms) as typed errors, transient only where retrying is
//! safe.

use std::time::Duration;

use wsusfix::core::inventory;
use wsusfix::sim::fleet::{Fleet, FleetConfig};
use wsusfix::sim::scenario::Scenario;
use wsusfix::util::credentials::Resolver;
use wsusfix::util::secret::Secret;
use wsusfix::winrm::{AuthMethod, Endpoint, ErrorKind, Scheme, Session};
use wsusfix::wsus::{ErrorKind as OpKind, OpError, UpdateState, WsusOps};

const PASSWORD: &str = "Ops-Passw0rd!";
const UPDATE: &str = "D359F493-0AAD-43FA-AF5C-6763326CD98F";
const ALL: &str = "A0A08746-4DBE-4a37-9ADF-9E7652C0B421";
const DLL: &str =
    "WebServices\\ClientWebService\\bin\\Microsoft.UpdateServices.WebServices.Client.dll";
const X64: &str = "\\\\fileserver\\wsusfix\\KB954960\\WSUS3SP1-KB954960-x64.exe";

fn inventory(subnet: u8) -> inventory::Inventory {
    let text = format!(
        "defaults: {{ username: LAB\\wsusfix, password: env:OPS_TEST_PASSWORD }}
servers:
  hq: {{ role: upstream, address: 127.{subnet}.1.1, version: 3.0-sp1, arch: x64, clients: {{ pc-1: {{ address: 127.{subnet}.2.1 }} }} }}
  eu: {{ role: replica, upstream: hq, address: 127.{subnet}.1.2, version: 3.0-rtm }}
  us: {{ role: autonomous, upstream: hq, address: 127.{subnet}.1.3, version: 3.0-rtm }}
"
    );
    inventory::load(&text).inventory.expect("valid")
}

async fn fleet(subnet: u8, scenario: &str) -> Fleet {
    // SAFETY: set once before any thread of this test reads it (each test sets the same value).
    unsafe { std::env::set_var("OPS_TEST_PASSWORD", PASSWORD) };
    let resolver = Resolver::new(std::path::Path::new("."));
    let cfg = FleetConfig {
        http_port: 5985,
        https_port: Some(5986),
        state_file: None,
        keytab: None,
    };
    Fleet::start(
        &inventory(subnet),
        &Scenario::parse(scenario).unwrap(),
        &resolver,
        cfg,
    )
    .await
    .expect("serve")
}

fn endpoint(
    fleet: &Fleet,
    host: &str,
    scheme: Scheme,
    auth: AuthMethod,
    dir: &tempfile::TempDir,
) -> Endpoint {
    let a = fleet.endpoint().host(host).expect("served");
    let user = if auth == AuthMethod::Basic {
        "wsusfix"
    } else {
        "LAB\\wsusfix"
    };
    let addr = match scheme {
        Scheme::Http => a.http,
        Scheme::Https => a.https.expect("https"),
    };
    let mut e = Endpoint::new(
        addr.ip().to_string(),
        scheme,
        auth,
        user,
        Secret::new(PASSWORD),
    );
    e.port = addr.port();
    if scheme == Scheme::Https {
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, fleet.endpoint().ca_pem()).unwrap();
        e.ca_file = Some(ca);
    }
    e
}

async fn every_operation(fleet: &Fleet, scheme: Scheme, auth: AuthMethod) {
    let dir = tempfile::tempdir().unwrap();
    let mode = format!("{scheme:?}/{auth:?}");
    let mut hq = WsusOps::new(Session::new(endpoint(fleet, "hq", scheme, auth, &dir)).unwrap());
    let f = hq
        .facts(UPDATE, None, &["W3SVC"])
        .await
        .unwrap_or_else(|e| panic!("{mode}: {e}"));
    assert_eq!(f.version_string, "3.1.6001.65", "{mode}");
    assert!(!f.replica && f.sync_from_mu, "{mode}");
    assert!(matches!(f.update, UpdateState::Synced { .. }), "{mode}");
    let v = hq.file_version(DLL).await.unwrap();
    assert!(v.exists, "{mode}");
    hq.set_culture("en-US").await.unwrap();
    let svc = hq.services(&["W3SVC"], &["W3SVC"], 30).await.unwrap();
    assert_eq!(svc.services.len(), 1, "{mode}");
    let sha = "d1bc3009063061344f78a206e168433972b4793d32c13ecdf01a88b5683e49b8";
    let inst = hq
        .install_hotfix(954960, X64, sha, "/q", 600)
        .await
        .unwrap();
    assert_eq!(inst.exit_code, 0, "{mode}");
    assert_eq!(
        hq.file_version(DLL)
            .await
            .unwrap()
            .version
            .unwrap()
            .to_string(),
        "3.1.6001.66",
        "{mode}"
    );
    let kids = hq.child_servers().await.unwrap();
    assert_eq!(kids.len(), 2, "{mode}");
    hq.ensure_declined(UPDATE).await.unwrap();
    hq.approve_unchanged(UPDATE, ALL).await.unwrap();
    assert!(hq.decline(UPDATE).await.unwrap().declined, "{mode}");
    assert_eq!(
        format!("{:?}", hq.sync_now(60).await.unwrap().result),
        "Succeeded",
        "{mode}"
    );

    let mut eu = WsusOps::new(Session::new(endpoint(fleet, "eu", scheme, auth, &dir)).unwrap());
    let err = eu.decline(UPDATE).await.expect_err("a replica refuses");
    assert_eq!(err.kind(), Some(OpKind::ReplicaMode), "{mode}");
    assert!(!err.is_transient());
    assert!(eu.set_replica(false, 60).await.unwrap().changed, "{mode}");
    assert!(eu.set_replica(true, 60).await.unwrap().changed, "{mode}");

    let mut pc = WsusOps::new(Session::new(endpoint(fleet, "pc-1", scheme, auth, &dir)).unwrap());
    let d = pc.detect_now(60).await.unwrap();
    assert!(d.completed && !d.lines.is_empty(), "{mode}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_in_every_auth_mode() {
    for (i, (scheme, auth)) in [
        (Scheme::Http, AuthMethod::Negotiate),
        (Scheme::Http, AuthMethod::Ntlm),
        (Scheme::Https, AuthMethod::Basic),
        (Scheme::Https, AuthMethod::Ntlm),
    ]
    .into_iter()
    .enumerate()
    {
        let f = fleet(200 + i as u8, "seed: 1").await;
        every_operation(&f, scheme, auth).await;
        f.shutdown().await;
    }
}

fn transport_kind(e: &OpError) -> (bool, Option<ErrorKind>) {
    match e {
        OpError::Transport {
            source, transient, ..
        } => (
            *transient,
            source
                .downcast_ref::<wsusfix::winrm::WinrmError>()
                .map(|w| w.kind()),
        ),
        other => panic!("expected a transport error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_failures_are_typed_and_retried_only_where_safe() {
    let f = fleet(
        210,
        "seed: 2\ntransport:\n  eu: { refuse: true }\n  us: { http500: 50 }\n  pc-1: { timed_out_storm: 3 }\n",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    // A wrong password: permanent, never retried.
    let mut e = endpoint(&f, "hq", Scheme::Http, AuthMethod::Negotiate, &dir);
    e.password = Secret::new("wrong");
    let err = WsusOps::new(Session::new(e).unwrap())
        .facts(UPDATE, None, &[] as &[&str])
        .await
        .unwrap_err();
    assert_eq!(transport_kind(&err), (false, Some(ErrorKind::Auth)));
    assert!(!err.to_string().contains(PASSWORD));
    // A refused connection: transient (nothing was sent).
    let err = WsusOps::new(
        Session::new(endpoint(
            &f,
            "eu",
            Scheme::Http,
            AuthMethod::Negotiate,
            &dir,
        ))
        .unwrap(),
    )
    .facts(UPDATE, None, &[] as &[&str])
    .await
    .unwrap_err();
    assert_eq!(transport_kind(&err), (true, Some(ErrorKind::Connect)));
    // HTTP 500s: transient.
    let err = WsusOps::new(
        Session::new(endpoint(
            &f,
            "us",
            Scheme::Http,
            AuthMethod::Negotiate,
            &dir,
        ))
        .unwrap(),
    )
    .facts(UPDATE, None, &[] as &[&str])
    .await
    .unwrap_err();
    assert_eq!(transport_kind(&err), (true, Some(ErrorKind::Http)));
    // A TimedOut storm is the protocol's "poll again": the operation still succeeds.
    let mut pc = WsusOps::new(
        Session::new(endpoint(
            &f,
            "pc-1",
            Scheme::Http,
            AuthMethod::Negotiate,
            &dir,
        ))
        .unwrap(),
    );
    let d = tokio::time::timeout(Duration::from_secs(30), pc.detect_now(60))
        .await
        .unwrap()
        .unwrap();
    assert!(d.completed);
    let counters = f.endpoint().counters("pc-1").unwrap();
    assert!(counters.timed_out >= 3, "{counters:?}");
    // And an executor retries the transient ones: once the host answers again, it succeeds.
    f.endpoint().faults("us").unwrap().clear();
    let facts = WsusOps::new(
        Session::new(endpoint(
            &f,
            "us",
            Scheme::Http,
            AuthMethod::Negotiate,
            &dir,
        ))
        .unwrap(),
    )
    .facts(UPDATE, None, &[] as &[&str])
    .await
    .unwrap();
    assert_eq!(facts.version_string, "3.0.6000.273");
    f.shutdown().await;
}

/// A host with Extended Protection (CbtHardeningLevel=Strict) takes the client's NTLM logon over
/// HTTPS: it carries the tls-server-end-point binding of the host's certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntlm_over_https_is_accepted_by_a_host_with_extended_protection() {
    let f = fleet(
        212,
        "seed: 3\ntransport:\n  hq: { extended_protection: true }\n",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    for auth in [AuthMethod::Ntlm, AuthMethod::Negotiate] {
        let mut hq =
            WsusOps::new(Session::new(endpoint(&f, "hq", Scheme::Https, auth, &dir)).unwrap());
        let facts = hq
            .facts(UPDATE, None, &[] as &[&str])
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e}"));
        assert_eq!(facts.version_string, "3.1.6001.65");
    }
    assert_eq!(f.endpoint().counters("hq").unwrap().auth_failures, 0);
}
