//! The typed operations against a scripted fake transport: it records each script and answers
//! with canned outputs, so every operation, every error kind and the transport's failures are
//! exercised without Windows.

use std::collections::VecDeque;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use wsusfix::core::inventory::{Arch, WsusVersion};
use wsusfix::core::logs::detection::{DetectionOutcome, summarize_detection};
use wsusfix::core::playbook::ALL_COMPUTERS_GROUP_ID;
use wsusfix::wsus::{
    Approval, ApprovalAction, ConfigState, Connection, ErrorKind, Malformed, OpError, OpName,
    PublicationState, Remote, RemoteOutput, ServiceState, ServiceStatus, SyncResult, SyncStatus,
    UpdateState, WsusOps,
};

const UPDATE: &str = "D359F493-0AAD-43FA-AF5C-6763326CD98F";
const SHA: &str = "3285d17c9cd37ab7c2058da526a79b182907b1dc194af691ca8eeca051edebaa";
const PACKAGE: &str = "\\\\fileserver\\wsusfix\\KB954960\\WSUS3SP1-KB954960-x64.exe";

#[derive(Debug, thiserror::Error)]
#[error("fake transport: {message}")]
struct FakeError {
    message: String,
    transient: bool,
}

/// Records scripts and deadlines; answers from a queue.
#[derive(Default)]
struct Fake {
    replies: VecDeque<Result<RemoteOutput, FakeError>>,
    sent: Vec<(String, Duration)>,
}

impl Fake {
    fn answering(replies: impl IntoIterator<Item = Result<RemoteOutput, FakeError>>) -> Fake {
        Fake {
            replies: replies.into_iter().collect(),
            sent: Vec::new(),
        }
    }
}

impl Remote for Fake {
    type Error = FakeError;

    fn run_ps(
        &mut self,
        script: &str,
        deadline: Duration,
    ) -> impl Future<Output = Result<RemoteOutput, FakeError>> + Send {
        self.sent.push((script.to_string(), deadline));
        let reply = self
            .replies
            .pop_front()
            .expect("the fake has an answer for every script");
        async move { reply }
    }

    fn is_transient(err: &FakeError) -> bool {
        err.transient
    }
}

fn lines(keys: &[(&str, &str)]) -> String {
    keys.iter()
        .map(|(k, v)| format!("wsusfix:{k}={}\r\n", BASE64.encode(v)))
        .collect()
}

fn success(keys: &[(&str, &str)]) -> Result<RemoteOutput, FakeError> {
    Ok(RemoteOutput {
        exit_code: 0,
        stdout: lines(keys),
        stderr: String::new(),
    })
}

fn failure(
    kind: &str,
    error_type: &str,
    message: &str,
    extra: &[(&str, &str)],
) -> Result<RemoteOutput, FakeError> {
    let mut keys = extra.to_vec();
    keys.extend([
        ("error_kind", kind),
        ("error_type", error_type),
        ("error", message),
    ]);
    Ok(RemoteOutput {
        exit_code: 1,
        stdout: lines(&keys),
        stderr: String::new(),
    })
}

/// Runs one operation against a fake with one answer; returns the result and the script sent.
macro_rules! run {
    ($reply:expr, |$ops:ident| $call:expr) => {{
        let mut fake = Fake::answering([$reply]);
        let result = {
            let mut $ops = WsusOps::new(&mut fake);
            $call.await
        };
        assert!(fake.replies.is_empty());
        (result, fake.sent)
    }};
}

fn known(err: OpError) -> (OpName, ErrorKind, String, String, wsusfix::wsus::Keys) {
    match err {
        OpError::Known {
            op,
            kind,
            error_type,
            message,
            extra,
        } => (op, kind, error_type, message, extra),
        other => panic!("expected a known failure, got {other:?}"),
    }
}

const FACTS_SP1: &[(&str, &str)] = &[
    ("version_string", "3.1.6001.65"),
    ("install_type", "1"),
    ("target_dir", "C:\\Program Files\\Update Services\\"),
    ("replica", "true"),
    ("sync_from_mu", "false"),
    ("upstream_name", "wsus-hq.contoso.com"),
    ("upstream_port", "8530"),
    ("upstream_ssl", "false"),
    ("config_state", "Ready"),
    ("sync_status", "NotProcessing"),
    ("last_sync_result", "Succeeded"),
    ("install_language", "en-US"),
    ("current_culture", "de-CH"),
    ("arch", "x64"),
    ("dll_version", "3.1.6001.65"),
    ("update_synced", "true"),
    ("update_declined", "false"),
    ("update_publication_state", "Expired"),
    (
        "update_approval",
        "a0a08746-4dbe-4a37-9adf-9e7652c0b421|Install",
    ),
    (
        "update_approval",
        "a0a08746-4dbe-4a37-9adf-9e7652c0b421|NotApproved",
    ),
    ("service", "W3SVC|Running"),
    ("service", "SMTPSVC|NotInstalled"),
    ("service", "MSFTPSVC|StopPending"),
    (
        "softdist_record",
        "2009-03-27 10:55:29.105 UTC Error w3wp.12 ClientImplementation.SyncUpdates System.ArgumentException: Item has already been added. Key in dictionary: '8862'  Key being added: '8862'\n   at System.Collections.Hashtable.Insert(Object key, Object nvalue, Boolean add)",
    ),
];

#[tokio::test]
async fn facts_are_typed() {
    let (facts, sent) = run!(success(FACTS_SP1), |ops| ops.facts(
        UPDATE,
        None,
        &["W3SVC", "SMTPSVC", "MSFTPSVC"]
    ));
    let facts = facts.unwrap();
    assert_eq!(facts.version_string, "3.1.6001.65");
    assert_eq!(facts.version, Some(WsusVersion::Sp1));
    assert_eq!(facts.install_type, Some(1));
    assert!(facts.replica && !facts.sync_from_mu);
    assert_eq!(facts.upstream.name, "wsus-hq.contoso.com");
    assert_eq!(facts.upstream.port, 8530);
    assert!(!facts.upstream.ssl);
    assert_eq!(facts.config_state, ConfigState::Ready);
    assert_eq!(facts.sync_status, SyncStatus::NotProcessing);
    assert_eq!(facts.last_sync_result, SyncResult::Succeeded);
    assert_eq!(facts.arch, Arch::X64);
    assert!(facts.locale_mismatch());
    assert_eq!(
        facts.dll_version.map(|v| v.to_string()).as_deref(),
        Some("3.1.6001.65")
    );
    let group = ALL_COMPUTERS_GROUP_ID.to_ascii_uppercase();
    assert_eq!(
        facts.update,
        UpdateState::Synced {
            declined: false,
            publication: PublicationState::Expired,
            approvals: vec![
                Approval {
                    group: group.clone(),
                    action: ApprovalAction::Install
                },
                Approval {
                    group: group.clone(),
                    action: ApprovalAction::NotApproved
                },
            ],
        }
    );
    assert_eq!(facts.update.duplicated_groups(), [group.as_str()]);
    assert_eq!(facts.services["W3SVC"], ServiceState::Running);
    assert_eq!(facts.services["SMTPSVC"], ServiceState::NotInstalled);
    assert_eq!(
        facts.services["MSFTPSVC"],
        ServiceState::Other("StopPending".into())
    );
    assert_eq!(facts.softdist_records.len(), 1);
    assert!(facts.softdist_records[0].contains("\n   at System.Collections"));

    let (script, deadline) = &sent[0];
    assert!(script.starts_with("# wsusfix-op: facts {"));
    assert_eq!(*deadline, Duration::from_secs(300));
}

#[tokio::test]
async fn facts_of_a_server_without_the_update_and_without_the_dll() {
    let keys: Vec<(&str, &str)> = FACTS_SP1
        .iter()
        .copied()
        .filter(|(k, _)| !k.starts_with("update_") && *k != "service" && *k != "softdist_record")
        .map(|(k, v)| match k {
            "version_string" => (k, "3.0.6000.273"),
            "dll_version" => (k, ""),
            "arch" => (k, "x86"),
            _ => (k, v),
        })
        .chain([("update_synced", "false")])
        .collect();
    let (facts, _) = run!(success(&keys), |ops| ops.facts::<&str>(UPDATE, None, &[]));
    let facts = facts.unwrap();
    assert_eq!(facts.version, Some(WsusVersion::Rtm));
    assert_eq!(facts.update, UpdateState::NotSynced);
    assert_eq!(facts.dll_version, None);
    assert_eq!(facts.arch, Arch::X86);
    assert!(facts.services.is_empty() && facts.softdist_records.is_empty());
}

#[tokio::test]
async fn facts_that_break_the_contract_are_malformed() {
    let mut keys = FACTS_SP1.to_vec();
    keys.retain(|(k, _)| *k != "arch");
    keys.push(("arch", "ia64"));
    let (r, _) = run!(success(&keys), |ops| ops.facts::<&str>(UPDATE, None, &[]));
    match r.unwrap_err() {
        OpError::Malformed { op, detail } => {
            assert_eq!(op, OpName::Facts);
            assert!(matches!(detail, Malformed::BadValue { ref key, .. } if key == "arch"));
        }
        other => panic!("{other:?}"),
    }
    let keys: Vec<_> = FACTS_SP1
        .iter()
        .copied()
        .filter(|(k, _)| *k != "config_state")
        .collect();
    let (r, _) = run!(success(&keys), |ops| ops.facts::<&str>(UPDATE, None, &[]));
    let e = r.unwrap_err();
    assert_eq!(
        e.to_string(),
        "facts: malformed output: no `config_state` in the output"
    );

    let (r, _) = run!(
        failure(
            "wsus-not-installed",
            "System.InvalidOperationException",
            "WSUS is not installed",
            &[]
        ),
        |ops| ops.facts::<&str>(UPDATE, None, &[])
    );
    assert_eq!(known(r.unwrap_err()).1, ErrorKind::WsusNotInstalled);
}

#[tokio::test]
async fn set_replica_changes_or_not() {
    let (r, sent) = run!(
        success(&[("changed", "true"), ("replica", "false")]),
        |ops| ops.set_replica(false, 300)
    );
    let r = r.unwrap();
    assert!(r.changed && !r.replica);
    assert!(sent[0].0.contains("$ArgReplica = [bool]::Parse('false')"));
    assert_eq!(sent[0].1, Duration::from_secs(420));

    let (r, _) = run!(
        success(&[("changed", "false"), ("replica", "true")]),
        |ops| ops.set_replica(true, 300)
    );
    assert!(!r.unwrap().changed);

    let (r, _) = run!(
        failure(
            "config-busy",
            "System.TimeoutException",
            "the configuration was not Ready within 300 s (state ProcessingSave)",
            &[]
        ),
        |ops| ops.set_replica(true, 300)
    );
    let e = r.unwrap_err();
    assert_eq!(
        e.to_string(),
        "set_replica: config-busy: the configuration was not Ready within 300 s (state ProcessingSave) (System.TimeoutException)"
    );
    assert!(!e.is_transient());
}

#[tokio::test]
async fn declines_and_approvals() {
    let (r, _) = run!(
        success(&[("changed", "false"), ("declined", "true")]),
        |ops| ops.ensure_declined(UPDATE)
    );
    assert!(!r.unwrap().changed);

    let (r, _) = run!(
        success(&[("changed", "true"), ("declined", "true")]),
        |ops| ops.decline(UPDATE)
    );
    assert!(r.unwrap().declined);

    let (r, sent) = run!(success(&[("approved", "true")]), |ops| ops
        .approve_unchanged(UPDATE, ALL_COMPUTERS_GROUP_ID));
    assert!(r.unwrap().approved);
    assert!(sent[0].0.contains("A0A08746-4DBE-4A37-9ADF-9E7652C0B421"));

    const REPLICA: &str = "Cannot perform this action when the server is in replica mode";
    let (r, _) = run!(
        failure(
            "replica-mode",
            "System.InvalidOperationException",
            REPLICA,
            &[]
        ),
        |ops| ops.decline(UPDATE)
    );
    let (op, kind, error_type, message, _) = known(r.unwrap_err());
    assert_eq!(
        (op, kind, error_type.as_str(), message.as_str()),
        (
            OpName::Decline,
            ErrorKind::ReplicaMode,
            "System.InvalidOperationException",
            REPLICA
        )
    );

    let (r, _) = run!(
        failure(
            "not-synced",
            "Microsoft.UpdateServices.Administration.WsusObjectNotFoundException",
            "The update could not be found.",
            &[]
        ),
        |ops| ops.ensure_declined(UPDATE)
    );
    assert_eq!(known(r.unwrap_err()).1, ErrorKind::NotSynced);

    let (r, _) = run!(
        failure(
            "expired",
            "System.InvalidOperationException",
            "You can deploy an expired update only when action is UpdateApprovalAction.Uninstall",
            &[]
        ),
        |ops| ops.approve_unchanged(UPDATE, ALL_COMPUTERS_GROUP_ID)
    );
    assert_eq!(known(r.unwrap_err()).1, ErrorKind::Expired);
}

#[tokio::test]
async fn hotfix_outcomes() {
    let (r, sent) = run!(
        success(&[("exit_code", "0"), ("reboot_required", "false")]),
        |ops| ops.install_hotfix(954960, PACKAGE, SHA, "/q", 1800)
    );
    let r = r.unwrap();
    assert_eq!((r.exit_code, r.reboot_required), (0, false));
    assert_eq!(sent[0].1, Duration::from_secs(1920));

    let (r, _) = run!(
        success(&[("exit_code", "3010"), ("reboot_required", "true")]),
        |ops| ops.install_hotfix(954960, PACKAGE, SHA, "/q", 1800)
    );
    assert!(r.unwrap().reboot_required);

    let (r, _) = run!(
        failure(
            "hash-mismatch",
            "System.Security.Cryptography.CryptographicException",
            "wrong hash",
            &[("actual_sha256", "00ff")]
        ),
        |ops| ops.install_hotfix(954960, PACKAGE, SHA, "/q", 1800)
    );
    let (_, kind, _, _, extra) = known(r.unwrap_err());
    assert_eq!(kind, ErrorKind::HashMismatch);
    assert_eq!(extra.one("actual_sha256").unwrap(), "00ff");

    let (r, _) = run!(
        failure(
            "install-failed",
            "System.InvalidOperationException",
            "KB954960 installer exited with code 1603",
            &[("exit_code", "1603")]
        ),
        |ops| ops.install_hotfix(954960, PACKAGE, SHA, "/q", 1800)
    );
    let (_, kind, _, _, extra) = known(r.unwrap_err());
    assert_eq!(kind, ErrorKind::InstallFailed);
    assert_eq!(extra.number::<i32>("exit_code").unwrap(), 1603);

    for kind in ["package-missing", "timeout"] {
        let (r, _) = run!(failure(kind, "System.Exception", "x", &[]), |ops| ops
            .install_hotfix(954960, PACKAGE, SHA, "/q", 1800));
        assert_eq!(known(r.unwrap_err()).1.as_str(), kind);
    }
}

#[tokio::test]
async fn file_versions_and_services() {
    let (r, _) = run!(
        success(&[("exists", "true"), ("version", "3.1.6001.66")]),
        |ops| ops.file_version(
            "WebServices\\ClientWebService\\bin\\Microsoft.UpdateServices.WebServices.Client.dll"
        )
    );
    let r = r.unwrap();
    assert!(r.exists);
    assert_eq!(r.version.unwrap().to_string(), "3.1.6001.66");

    let (r, _) = run!(success(&[("exists", "false"), ("version", "")]), |ops| ops
        .file_version("x.dll"));
    assert_eq!(r.unwrap().version, None);

    let (r, _) = run!(
        success(&[("service", "W3SVC|Running"), ("service", "SMTPSVC|Stopped")]),
        |ops| ops.services(&["W3SVC", "SMTPSVC"], &["W3SVC"], 180)
    );
    let r = r.unwrap();
    assert_eq!(r.state("w3svc"), Some(&ServiceState::Running));
    assert_eq!(r.state("SMTPSVC"), Some(&ServiceState::Stopped));

    let (r, _) = run!(
        failure(
            "timeout",
            "System.TimeoutException",
            "not running after 180 s: W3SVC",
            &[("service", "W3SVC|StartPending")]
        ),
        |ops| ops.services(&["W3SVC"], &["W3SVC"], 180)
    );
    let (_, kind, _, _, extra) = known(r.unwrap_err());
    assert_eq!(kind, ErrorKind::Timeout);
    assert_eq!(
        ServiceStatus::list(&extra).unwrap(),
        [ServiceStatus {
            name: "W3SVC".into(),
            state: ServiceState::Other("StartPending".into())
        }]
    );
}

#[tokio::test]
async fn synchronisation() {
    let (r, _) = run!(
        success(&[
            ("result", "Succeeded"),
            ("started", "2026-11-24T09:30:00.000Z"),
            ("finished", "2026-11-24T09:41:12.250Z")
        ]),
        |ops| ops.sync_now(3600)
    );
    let r = r.unwrap();
    assert_eq!(r.result, SyncResult::Succeeded);
    assert_eq!(
        r.finished.unwrap().to_rfc3339(),
        "2026-11-24T09:41:12.250+00:00"
    );

    let (r, _) = run!(
        failure(
            "sync-failed",
            "System.InvalidOperationException",
            "the synchronisation ended with Failed: upstream unreachable",
            &[("result", "Failed"), ("error_text", "upstream unreachable")]
        ),
        |ops| ops.sync_now(3600)
    );
    let (_, kind, _, _, extra) = known(r.unwrap_err());
    assert_eq!(kind, ErrorKind::SyncFailed);
    assert_eq!(extra.one("error_text").unwrap(), "upstream unreachable");

    for kind in [ErrorKind::Timeout, ErrorKind::ConfigBusy] {
        let (r, _) = run!(
            failure(kind.as_str(), "System.Exception", "x", &[]),
            |ops| ops.sync_now(60)
        );
        assert_eq!(known(r.unwrap_err()).1, kind);
    }
}

#[tokio::test]
async fn child_servers_are_typed() {
    let (r, _) = run!(
        success(&[
            (
                "child",
                "wsus-eu.contoso.com|true|3.0.6000.273|2026-11-23T22:00:00.000Z|1f0e6a8c-3b2d-4c5e-9f70-112233445566|0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
            ),
            (
                "child",
                "wsus-us.contoso.com|false|3.1.6001.65||2f0e6a8c-3b2d-4c5e-9f70-112233445566|0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
            ),
        ]),
        |ops| ops.child_servers()
    );
    let children = r.unwrap();
    assert_eq!(children.len(), 2);
    assert_eq!(children[0].fqdn, "wsus-eu.contoso.com");
    assert!(children[0].is_replica);
    assert_eq!(children[0].wsus_version, Some(WsusVersion::Rtm));
    assert!(children[0].last_sync.is_some());
    assert_eq!(children[0].id, "1F0E6A8C-3B2D-4C5E-9F70-112233445566");
    assert_eq!(children[1].last_sync, None, "never synchronised");

    let (r, _) = run!(success(&[("child", "only|three|fields")]), |ops| ops
        .child_servers());
    assert!(matches!(r, Err(OpError::Malformed { .. })));

    let (r, _) = run!(success(&[]), |ops| ops.child_servers());
    assert!(r.unwrap().is_empty());
}

#[tokio::test]
async fn cultures() {
    let (r, sent) = run!(
        success(&[("previous", "de-CH"), ("current", "en-US")]),
        |ops| ops.set_culture("en-US")
    );
    assert!(r.unwrap().changed());
    assert!(sent[0].0.contains("$ArgCulture = 'en-US'"));

    let (r, _) = run!(
        failure(
            "bad-culture",
            "System.ArgumentException",
            "Culture name 'xx-YY' is not supported.",
            &[]
        ),
        |ops| ops.set_culture("xx-YY")
    );
    assert_eq!(known(r.unwrap_err()).1, ErrorKind::BadCulture);
}

#[tokio::test]
async fn detection_lines_feed_the_log_parser() {
    let log = std::fs::read_to_string("tests/fixtures/logs/client-kb954960.log").unwrap();
    let start = log
        .find("Triggering AU detection through DetectNow API")
        .unwrap();
    let start = log[..start].rfind('\n').map_or(0, |i| i + 1);
    let tail: Vec<&str> = log[start..].lines().collect();
    let mut keys: Vec<(&str, &str)> = tail.iter().map(|l| ("line", *l)).collect();
    keys.push(("completed", "true"));
    let mut fake = Fake::answering([success(&keys)]);
    let mut ops = WsusOps::new(&mut fake).with_connection(
        // A client operation ignores the WSUS connection.
        Connection::named("wsus-hq.contoso.com", 8530, false).unwrap(),
    );
    let outcome = ops.detect_now(600).await.unwrap();
    assert!(outcome.completed);
    assert_eq!(outcome.lines.len(), tail.len());
    let summary = summarize_detection(&outcome.lines.join("\n"));
    assert!(
        matches!(summary.outcome, DetectionOutcome::FailedThisBug { .. }),
        "{summary:?}"
    );
    assert_eq!(
        fake.sent[0].0.lines().next().unwrap(),
        "# wsusfix-op: detect_now {\"timeout\":600}"
    );

    let (r, _) = run!(
        failure(
            "wuauclt-failed",
            "System.InvalidOperationException",
            "the Automatic Updates service (wuauserv) is Stopped",
            &[]
        ),
        |ops| ops.detect_now(600)
    );
    assert_eq!(known(r.unwrap_err()).1, ErrorKind::WuaucltFailed);
}

#[tokio::test]
async fn every_error_kind_is_read() {
    for kind in ErrorKind::ALL {
        let (r, _) = run!(failure(kind.as_str(), "T", "m", &[]), |ops| ops
            .child_servers());
        let e = r.unwrap_err();
        assert_eq!(e.kind(), Some(kind));
        assert_eq!(e.op(), OpName::ChildServers);
        assert_eq!(e.to_string(), format!("child_servers: {kind}: m (T)"));
    }
}

#[tokio::test]
async fn invalid_arguments_never_reach_the_host() {
    let mut fake = Fake::default();
    let mut ops = WsusOps::new(&mut fake);
    let errors = [
        ops.decline("D359F493'; calc; '").await.unwrap_err(),
        ops.ensure_declined("not-a-guid").await.unwrap_err(),
        ops.approve_unchanged(UPDATE, "All Computers")
            .await
            .unwrap_err(),
        ops.install_hotfix(954960, "C:\\x.exe\n", SHA, "/q", 60)
            .await
            .unwrap_err(),
        ops.install_hotfix(954960, PACKAGE, "abc", "/q", 60)
            .await
            .unwrap_err(),
        ops.install_hotfix(954960, PACKAGE, SHA, "/q & calc", 60)
            .await
            .unwrap_err(),
        ops.install_hotfix(954960, PACKAGE, SHA, "/q", 0)
            .await
            .unwrap_err(),
        ops.file_version("..\\..\\Windows\\x.dll")
            .await
            .unwrap_err(),
        ops.services(&["W3SVC'"], &[] as &[&str], 60)
            .await
            .unwrap_err(),
        ops.set_culture("en-US\u{2019}").await.unwrap_err(),
        ops.sync_now(100_000).await.unwrap_err(),
        ops.facts(UPDATE, None, &["$(calc)"]).await.unwrap_err(),
    ];
    for e in &errors {
        assert!(matches!(e, OpError::Invalid { .. }), "{e:?}");
    }
    assert_eq!(
        errors[0].to_string(),
        "decline: argument `update` is not a GUID (8-4-4-4-12 hex digits): \"D359F493'; calc; '\""
    );
    assert!(fake.sent.is_empty());
}

#[tokio::test]
async fn transport_failures_carry_their_transient_flag() {
    for transient in [true, false] {
        let (r, _) = run!(
            Err(FakeError {
                message: "connection refused".into(),
                transient
            }),
            |ops| ops.decline(UPDATE)
        );
        let e = r.unwrap_err();
        assert!(matches!(e, OpError::Transport { .. }));
        assert_eq!(e.is_transient(), transient);
        assert_eq!(e.to_string(), "decline: fake transport: connection refused");
    }
}

#[tokio::test]
async fn unexpected_failures_pass_stderr_through() {
    let (r, _) = run!(
        Ok(RemoteOutput {
            exit_code: 1,
            stdout: "some output\r\n".into(),
            stderr: "Exception calling \"GetUpdate\" with \"1\" argument(s): \"The request failed with HTTP status 401: Unauthorized.\"".into(),
        }),
        |ops| ops.decline(UPDATE)
    );
    let e = r.unwrap_err();
    match &e {
        OpError::Unexpected {
            exit_code, stderr, ..
        } => {
            assert_eq!(*exit_code, 1);
            assert!(stderr.contains("HTTP status 401"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        e.to_string()
            .starts_with("decline: unexpected exit code 1: Exception calling")
    );

    let (r, _) = run!(
        Ok(RemoteOutput {
            exit_code: 254,
            stdout: String::new(),
            stderr: "wsusfix bootstrap: cannot load the script from stdin".into(),
        }),
        |ops| ops.facts::<&str>(UPDATE, None, &[])
    );
    assert!(matches!(
        r.unwrap_err(),
        OpError::Unexpected { exit_code: 254, .. }
    ));

    let (r, _) = run!(
        Ok(RemoteOutput {
            exit_code: 0,
            stdout: "wsusfix:changed=***\r\n".into(),
            stderr: String::new(),
        }),
        |ops| ops.decline(UPDATE)
    );
    assert!(matches!(
        r.unwrap_err(),
        OpError::Malformed {
            detail: Malformed::BadBase64 { .. },
            ..
        }
    ));
}

#[tokio::test]
async fn named_connections_reach_the_scripts_that_use_the_api() {
    let mut fake = Fake::answering([success(&[("changed", "false"), ("declined", "true")])]);
    let mut ops = WsusOps::new(&mut fake)
        .with_connection(Connection::named("wsus-hq.contoso.com", 8531, true).unwrap());
    ops.ensure_declined(UPDATE).await.unwrap();
    let script = &fake.sent[0].0;
    assert!(
        script
            .lines()
            .next()
            .unwrap()
            .contains("\"port\":8531,\"server\":\"wsus-hq.contoso.com\",\"ssl\":true")
    );
    assert!(script.contains("GetUpdateServer($ArgServer, $ArgSsl, $ArgPort)"));
}
