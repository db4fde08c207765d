//! A server's turn, phase by phase, against a fake transport (no simulator, no network): each
//! transition, an interruption at each phase boundary and a failure in each phase. The fake
//! answers the operation scripts as the script contract says (docs/script-contract.md), keeps a
//! little state per host (replica mode, the update's declined flag, the DLL) and follows a
//! script of failures and stop requests keyed by operation.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::sync::{Semaphore, mpsc, watch};

use wsusfix::core::hierarchy::Hierarchy;
use wsusfix::core::plan::{self, Plan, PlanOptions};
use wsusfix::core::record::{ObligationKind, Reason, Record, ServerResult, StepOutcome, TurnPhase};
use wsusfix::core::replay::Progress;
use wsusfix::core::{inventory, playbook};
use wsusfix::exec::connect::{Connector, Pool, Target};
use wsusfix::exec::events::Event;
use wsusfix::exec::recorder::Recorder;
use wsusfix::exec::retry::RetryPolicy;
use wsusfix::exec::unit::{self, Shared, Stop, UnitOutcome, UnitSpec};
use wsusfix::journal::writer::JournalWriter;
use wsusfix::sim::logs::WuWriter;
use wsusfix::wsus::{Remote, RemoteOutput};

const INVENTORY: &str = "defaults: { username: LAB\\wsusfix, password: prompt }
servers:
  hq: { role: upstream, address: 10.0.0.1, version: 3.0-sp1, arch: x64 }
  eu:
    role: replica
    upstream: hq
    address: 10.0.0.2
    version: 3.0-rtm
    clients: { pc-eu: { address: 10.0.1.2 } }
  us:
    role: autonomous
    upstream: hq
    address: 10.0.0.3
    version: 3.0-sp1
    arch: x64
    clients: { pc-us: { address: 10.0.1.3 } }
";

/// What the fake does when it sees the `nth` call (1-based) of `op` on `host`.
#[derive(Debug, Clone)]
enum Act {
    /// Fails for good (an access denied, say).
    Fail,
    /// Fails as a refused connection does (worth a retry).
    Transient,
    /// Answers, then asks the run to stop gracefully (Ctrl-C during the operation).
    ThenStop,
    /// Answers, then asks the run to stop at once (a second Ctrl-C).
    ThenStopNow,
}

#[derive(Debug, Clone)]
struct Host {
    replica: bool,
    declined: bool,
    dll: &'static str,
    version: &'static str,
    upstream: &'static str,
    top: bool,
}

struct World {
    hosts: HashMap<String, Host>,
    calls: Vec<(String, String)>,
    script: Vec<(String, String, usize, Act)>,
    stop: watch::Sender<Stop>,
}

impl World {
    fn count(&self, host: &str, op: &str) -> usize {
        self.calls
            .iter()
            .filter(|(h, o)| h == host && o == op)
            .count()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("fake transport: {message}")]
struct FakeError {
    message: String,
    transient: bool,
}

struct FakeRemote {
    host: String,
    world: Arc<Mutex<World>>,
}

fn out(keys: &[(&str, String)]) -> RemoteOutput {
    RemoteOutput {
        exit_code: 0,
        stdout: keys
            .iter()
            .map(|(k, v)| format!("wsusfix:{k}={}\r\n", BASE64.encode(v)))
            .collect(),
        stderr: String::new(),
    }
}

fn known_failure(kind: &str, message: &str) -> RemoteOutput {
    let mut o = out(&[
        ("error_kind", kind.into()),
        ("error_type", "System.InvalidOperationException".into()),
        ("error", message.into()),
    ]);
    o.exit_code = 1;
    o
}

fn answer(h: &mut Host, op: &str, args: &serde_json::Value) -> RemoteOutput {
    let b = |v: bool| v.to_string();
    match op {
        "facts" => {
            let mut keys = vec![
                ("version_string", h.version.to_string()),
                ("install_type", "1".into()),
                ("target_dir", "C:\\Program Files\\Update Services\\".into()),
                ("replica", b(h.replica)),
                ("sync_from_mu", b(h.top)),
                (
                    "upstream_name",
                    if h.top {
                        String::new()
                    } else {
                        h.upstream.into()
                    },
                ),
                ("upstream_port", "8530".into()),
                ("upstream_ssl", "false".into()),
                ("config_state", "Ready".into()),
                ("sync_status", "NotProcessing".into()),
                ("last_sync_result", "Succeeded".into()),
                ("install_language", "en-US".into()),
                ("current_culture", "en-US".into()),
                ("arch", "x64".into()),
                ("dll_version", h.dll.into()),
                ("update_synced", "true".into()),
                ("update_declined", b(h.declined)),
                ("update_publication_state", "Expired".into()),
                (
                    "update_approval",
                    "a0a08746-4dbe-4a37-9adf-9e7652c0b421|Install".into(),
                ),
            ];
            for s in args["services"].as_array().into_iter().flatten() {
                keys.push(("service", format!("{}|Running", s.as_str().unwrap())));
            }
            out(&keys)
        }
        "set_replica" => {
            let want = args["replica"].as_bool().unwrap();
            let changed = h.replica != want;
            h.replica = want;
            out(&[("changed", b(changed)), ("replica", b(want))])
        }
        "ensure_declined" | "decline" | "approve_unchanged" if h.replica => known_failure(
            "replica-mode",
            "Cannot perform this action when the server is in replica mode",
        ),
        "ensure_declined" | "decline" => {
            let changed = !h.declined;
            h.declined = true;
            out(&[("changed", b(changed)), ("declined", "true".into())])
        }
        "approve_unchanged" => {
            h.declined = false;
            out(&[("approved", "true".into())])
        }
        "sync_now" => out(&[
            ("result", "Succeeded".into()),
            ("started", "2026-12-04T10:00:00.000Z".into()),
            ("finished", "2026-12-04T10:00:01.000Z".into()),
        ]),
        "file_version" => out(&[("exists", "true".into()), ("version", h.dll.into())]),
        "install_hotfix" => {
            h.dll = "3.1.6001.66";
            out(&[
                ("exit_code", "0".into()),
                ("reboot_required", "false".into()),
            ])
        }
        "services" => {
            let keys: Vec<(&str, String)> = args["names"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| ("service", format!("{}|Running", s.as_str().unwrap())))
                .collect();
            out(&keys)
        }
        "set_culture" => out(&[
            ("previous", "en-US".into()),
            ("current", args["culture"].as_str().unwrap().into()),
        ]),
        "detect_now" => {
            let t = chrono::Utc::now();
            let lines = WuWriter {
                pid: 880,
                tid: 0x4a4,
            }
            .detection_succeeded(
                t,
                t,
                "6C6D1B1D-9F5A-4E7B-8A63-0F3F4C9E2A10",
                "http://wsus:8530/ClientWebService/client.asmx",
                12,
                3,
            );
            let mut keys: Vec<(&str, String)> = lines.into_iter().map(|l| ("line", l)).collect();
            keys.push(("completed", "true".into()));
            out(&keys)
        }
        other => panic!("the fake does not know {other}"),
    }
}

impl Remote for FakeRemote {
    type Error = FakeError;

    fn run_ps(
        &mut self,
        script: &str,
        _deadline: Duration,
    ) -> impl Future<Output = Result<RemoteOutput, FakeError>> + Send {
        let marker = script
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# wsusfix-op: "))
            .expect("every script starts with its marker line");
        let (op, args) = marker.split_once(' ').unwrap();
        let args: serde_json::Value = serde_json::from_str(args).unwrap();
        let mut w = self.world.lock().unwrap();
        w.calls.push((self.host.clone(), op.to_string()));
        let n = w.count(&self.host, op);
        let act = w
            .script
            .iter()
            .find(|(h, o, nth, _)| *h == self.host && o == op && *nth == n)
            .map(|(_, _, _, a)| a.clone());
        let host = self.host.clone();
        let reply = match act {
            Some(Act::Fail) => Err(FakeError {
                message: format!("{op} on {host}: access is denied"),
                transient: false,
            }),
            Some(Act::Transient) => Err(FakeError {
                message: format!("{host}: connection refused"),
                transient: true,
            }),
            other => {
                let h = w.hosts.get_mut(&host).expect("a known host");
                let r = Ok(answer(h, op, &args));
                match other {
                    Some(Act::ThenStop) => {
                        w.stop.send_replace(Stop::Graceful);
                    }
                    Some(Act::ThenStopNow) => {
                        w.stop.send_replace(Stop::Now);
                    }
                    _ => {}
                }
                r
            }
        };
        async move { reply }
    }

    fn is_transient(err: &FakeError) -> bool {
        err.transient
    }
}

struct FakeConnector {
    world: Arc<Mutex<World>>,
}

impl Connector for FakeConnector {
    type Remote = FakeRemote;
    fn connect(&self, target: &Target) -> Result<FakeRemote, String> {
        Ok(FakeRemote {
            host: target.name.clone(),
            world: self.world.clone(),
        })
    }
}

/// One turn's test bed: the inventory's plan, the fake world, a journal in a temporary folder.
struct Bed {
    plan: Plan,
    inv: inventory::Inventory,
    world: Arc<Mutex<World>>,
    stop: watch::Receiver<Stop>,
    _dir: tempfile::TempDir,
    journal: std::path::PathBuf,
}

impl Bed {
    fn new(script: Vec<(&str, &str, usize, Act)>) -> Bed {
        let inv = inventory::load(INVENTORY).inventory.unwrap();
        let pb = playbook::load(playbook::DEFAULT_PLAYBOOK).playbook.unwrap();
        let plan = plan::plan(&inv, &Hierarchy::new(&inv), &pb, &PlanOptions::default()).unwrap();
        let (stop_tx, stop) = watch::channel(Stop::No);
        let host = |replica, dll, version, upstream, top| Host {
            replica,
            declined: false,
            dll,
            version,
            upstream,
            top,
        };
        let hosts = HashMap::from([
            (
                "hq".to_string(),
                host(false, "3.1.6001.65", "3.1.6001.65", "", true),
            ),
            (
                "eu".to_string(),
                host(true, "", "3.0.6000.273", "hq", false),
            ),
            (
                "us".to_string(),
                host(false, "3.1.6001.65", "3.1.6001.65", "hq", false),
            ),
            ("pc-eu".to_string(), host(false, "", "", "", false)),
            ("pc-us".to_string(), host(false, "", "", "", false)),
        ]);
        let world = Arc::new(Mutex::new(World {
            hosts,
            calls: Vec::new(),
            script: script
                .into_iter()
                .map(|(h, o, n, a)| (h.to_string(), o.to_string(), n, a))
                .collect(),
            stop: stop_tx,
        }));
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("run.jsonl");
        Bed {
            plan,
            inv,
            world,
            stop,
            _dir: dir,
            journal,
        }
    }

    fn spec(&self, server: &str, from: usize) -> UnitSpec {
        let s = self.inv.get(server).unwrap().clone();
        let upstream = s
            .upstream
            .as_ref()
            .and_then(|u| self.inv.get(u))
            .map(|u| (u.name.clone(), u.address.clone()));
        UnitSpec {
            planned: self.plan.server(server).unwrap().clone(),
            server: s,
            upstream,
            adopted: Vec::new(),
            from,
            runtime_skip: BTreeMap::new(),
        }
    }

    /// Runs one turn with a journal at `journal` (a file, or /dev/full to fail every append).
    async fn turn_with(
        &self,
        spec: UnitSpec,
        journal: JournalWriter,
    ) -> (UnitOutcome, Progress, Vec<Event>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let recorder = Arc::new(Recorder::new(journal, Progress::default(), tx));
        let sh = Shared {
            pool: Pool::new(
                Arc::new(FakeConnector {
                    world: self.world.clone(),
                }),
                Target::all(&self.inv),
            ),
            recorder: recorder.clone(),
            stop: self.stop.clone(),
            holds: BTreeMap::from([("hq".to_string(), Arc::new(Semaphore::new(4)))]),
            retry: RetryPolicy {
                attempts: 3,
                stall_attempts: 2,
                base: Duration::from_millis(1),
                max: Duration::from_millis(2),
            },
            seed: 1,
            update: "D359F493-0AAD-43FA-AF5C-6763326CD98F".into(),
        };
        let o = unit::run(&sh, spec).await;
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        (o, recorder.progress(), events)
    }

    async fn turn(&self, server: &str) -> (UnitOutcome, Progress, Vec<Event>) {
        let header = Record::Header {
            format_version: wsusfix::core::record::JOURNAL_FORMAT_VERSION,
            run_id: "t".into(),
            fingerprint: self.plan.fingerprint.clone(),
            tool_version: "0".into(),
            inventory: "inv.yaml".into(),
            playbook: None,
            at: "2026-12-04T10:00:00.000Z".into(),
            plan: Box::new(self.plan.clone()),
        };
        let w = JournalWriter::create(&self.journal, &header).unwrap();
        self.turn_with(self.spec(server, 0), w).await
    }

    fn calls(&self, host: &str) -> Vec<String> {
        self.world
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(h, _)| h == host)
            .map(|(_, o)| o.clone())
            .collect()
    }

    fn replica(&self, host: &str) -> bool {
        self.world.lock().unwrap().hosts[host].replica
    }

    /// The journal on disk, replayed.
    fn journal(&self) -> Progress {
        wsusfix::journal::reader::read(&self.journal)
            .unwrap()
            .progress()
    }
}

fn reason(o: &UnitOutcome) -> &Reason {
    o.end.reason.as_ref().expect("a reason")
}

#[tokio::test]
async fn a_whole_turn_goes_through_every_phase() {
    let bed = Bed::new(vec![]);
    let (o, p, events) = bed.turn("eu").await;
    assert_eq!(o.end.result, ServerResult::Done, "{:?}", o.end);
    assert!(o.end.unblocks_children());
    assert_eq!(
        bed.calls("eu"),
        [
            "facts",
            "set_replica",
            "ensure_declined",
            "approve_unchanged",
            "decline",
            "set_replica",
            "sync_now"
        ]
    );
    assert_eq!(bed.calls("pc-eu"), ["detect_now"]);
    assert!(bed.replica("eu"), "the replica is back");
    assert!(p.open_obligations().is_empty());
    assert_eq!(
        o.changed_steps,
        [
            "switch-to-autonomous",
            "ensure-declined",
            "approve-unchanged",
            "decline",
            "switch-to-replica",
            "sync-from-upstream"
        ]
    );
    assert!(o.not_run.is_empty());
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Verification {
            succeeded: true,
            ..
        }
    )));
    assert_eq!(
        bed.journal(),
        p,
        "the progress is exactly the journal's replay"
    );
}

#[tokio::test]
async fn facts_phase_a_transient_failure_is_retried_a_permanent_one_ends_the_turn() {
    let bed = Bed::new(vec![("eu", "facts", 1, Act::Transient)]);
    let (o, _, events) = bed.turn("eu").await;
    assert_eq!(o.end.result, ServerResult::Done);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Retrying { action, .. } if action == "facts"))
    );

    let bed = Bed::new(vec![("eu", "facts", 1, Act::Fail)]);
    let (o, p, _) = bed.turn("eu").await;
    assert_eq!(o.end.result, ServerResult::Failed);
    assert!(
        matches!(reason(&o), Reason::Unreachable { error } if error.contains("access is denied"))
    );
    assert!(!o.end.unblocks_children());
    assert_eq!(bed.calls("eu"), ["facts"], "nothing else was tried");
    assert!(p.servers.get("eu").is_none_or(|s| s.steps.is_empty()));
}

#[tokio::test]
async fn check_phase_contradicting_facts_leave_the_server_and_its_subtree_alone() {
    let bed = Bed::new(vec![]);
    bed.world
        .lock()
        .unwrap()
        .hosts
        .get_mut("eu")
        .unwrap()
        .replica = false;
    let (o, _, _) = bed.turn("eu").await;
    assert_eq!(o.end.result, ServerResult::Skipped);
    assert!(
        matches!(reason(&o), Reason::Contradicted { contradictions } if contradictions[0].contains("not in replica mode"))
    );
    assert!(
        !o.end.unblocks_children(),
        "a contradiction keeps the subtree back"
    );
    assert_eq!(bed.calls("eu"), ["facts"]);
}

#[tokio::test]
async fn steps_phase_a_failure_ends_the_steps_and_the_restores_still_run() {
    let bed = Bed::new(vec![("eu", "approve_unchanged", 1, Act::Fail)]);
    let (o, p, _) = bed.turn("eu").await;
    assert_eq!(o.end.result, ServerResult::Failed);
    assert!(
        matches!(reason(&o), Reason::StepFailed { action, .. } if action == "approve-unchanged")
    );
    assert!(bed.replica("eu"), "the hold was restored after the failure");
    assert!(p.open_obligations().is_empty());
    assert!(o.not_run.contains(&"decline".to_string()));
    assert!(o.not_run.contains(&"detect-now".to_string()));
    assert!(bed.calls("pc-eu").is_empty(), "no proof after a failure");
}

#[tokio::test]
async fn restores_phase_a_failed_restore_leaves_the_obligation_open_and_says_so() {
    // The second set_replica (back to replica) fails for good, then the leftover restore too.
    let bed = Bed::new(vec![
        ("eu", "set_replica", 2, Act::Fail),
        ("eu", "set_replica", 3, Act::Fail),
    ]);
    let (o, p, events) = bed.turn("eu").await;
    assert_eq!(o.end.result, ServerResult::Failed);
    assert!(
        matches!(reason(&o), Reason::RestoreFailed { obligation, .. } if obligation == "replica-hold:eu"),
        "{:?}",
        reason(&o)
    );
    assert!(!bed.replica("eu"));
    assert_eq!(
        p.held_replicas(),
        ["eu"],
        "the journal still shows the hold"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::RestoreFailed { .. }))
    );
}

#[tokio::test]
async fn verification_phase_a_client_that_cannot_be_reached_fails_the_server() {
    let bed = Bed::new(vec![
        ("pc-eu", "detect_now", 1, Act::Fail),
        ("pc-eu", "detect_now", 2, Act::Fail),
    ]);
    let (o, _, _) = bed.turn("eu").await;
    assert_eq!(o.end.result, ServerResult::Failed);
    assert!(
        matches!(reason(&o), Reason::VerificationFailed { clients } if clients[0].client == "pc-eu")
    );
    assert!(bed.replica("eu"), "restores ran before the proof");
}

#[tokio::test]
async fn an_interrupt_after_the_facts_stops_before_any_change() {
    let bed = Bed::new(vec![("eu", "facts", 1, Act::ThenStop)]);
    let (o, p, _) = bed.turn("eu").await;
    assert_eq!(o.end.result, ServerResult::Interrupted);
    assert!(matches!(
        reason(&o),
        Reason::InterruptedBeforeChanges { .. }
    ));
    assert_eq!(bed.calls("eu"), ["facts"]);
    assert!(p.ledger.is_empty(), "no hold was opened");
}

#[tokio::test]
async fn an_interrupt_inside_the_hold_restores_it_and_names_what_changed() {
    let bed = Bed::new(vec![("eu", "ensure_declined", 1, Act::ThenStop)]);
    let (o, p, _) = bed.turn("eu").await;
    assert_eq!(o.end.result, ServerResult::Interrupted);
    match reason(&o) {
        Reason::InterruptedAfterChanges {
            phase,
            changed,
            not_run,
        } => {
            assert_eq!(*phase, TurnPhase::Steps);
            assert_eq!(
                changed,
                &[
                    "switch-to-autonomous",
                    "ensure-declined",
                    "switch-to-replica",
                    "sync-from-upstream"
                ]
            );
            assert!(not_run.contains(&"approve-unchanged".to_string()));
            assert!(not_run.contains(&"detect-now".to_string()));
        }
        other => panic!("{other:?}"),
    }
    assert!(bed.replica("eu"), "restores run after a graceful stop");
    assert!(p.open_obligations().is_empty());
    assert!(!o.end.unblocks_children(), "its children wait");
}

#[tokio::test]
async fn an_interrupt_after_the_restores_leaves_the_proof_for_later() {
    let bed = Bed::new(vec![("eu", "sync_now", 1, Act::ThenStop)]);
    let (o, p, _) = bed.turn("eu").await;
    assert_eq!(
        o.end.result,
        ServerResult::Interrupted,
        "not done without its proof"
    );
    assert!(
        matches!(reason(&o), Reason::InterruptedAfterChanges { phase: TurnPhase::Verification, not_run, .. } if not_run == &["detect-now"])
    );
    assert!(bed.calls("pc-eu").is_empty());
    // What resume decides from this journal: only the proof is left.
    let decided = wsusfix::core::resume::decide(&bed.plan, &p, wsusfix::core::resume::Mode::Run);
    assert_eq!(
        decided.get("eu").unwrap().turn,
        wsusfix::core::resume::Turn::Run {
            from: 6,
            adopt: vec![]
        }
    );
    // And that turn proves it without touching the server's mode again.
    let (tx, _) = watch::channel(Stop::No);
    bed.world.lock().unwrap().stop = tx;
    let bed2 = Bed {
        stop: watch::channel(Stop::No).1,
        ..bed
    };
    let w = JournalWriter::reopen(
        &bed2.journal,
        std::fs::metadata(&bed2.journal).unwrap().len(),
    )
    .unwrap();
    let (o, _, _) = bed2.turn_with(bed2.spec("eu", 6), w).await;
    assert_eq!(o.end.result, ServerResult::Done, "{:?}", o.end);
    assert_eq!(
        bed2.calls("eu")
            .iter()
            .filter(|c| *c == "set_replica")
            .count(),
        2
    );
    assert_eq!(bed2.calls("pc-eu"), ["detect_now"]);
}

#[tokio::test]
async fn a_hotfix_interrupted_mid_install_is_reported_installed_with_its_checks_not_run() {
    let bed = Bed::new(vec![("us", "install_hotfix", 1, Act::ThenStop)]);
    let (o, _, _) = bed.turn("us").await;
    assert_eq!(o.end.result, ServerResult::Interrupted);
    match reason(&o) {
        Reason::InterruptedAfterChanges {
            changed, not_run, ..
        } => {
            assert_eq!(changed, &["install-hotfix"]);
            assert_eq!(
                not_run,
                &["verify-file-version", "check-services", "detect-now"]
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(reason(&o).describe().contains("install-hotfix changed"));
}

#[tokio::test]
async fn a_stop_now_leaves_the_hold_to_the_journal() {
    let bed = Bed::new(vec![("eu", "ensure_declined", 1, Act::ThenStopNow)]);
    let (o, p, _) = bed.turn("eu").await;
    assert_eq!(o.end.result, ServerResult::Interrupted);
    assert!(!bed.replica("eu"), "no restore after a second signal");
    assert_eq!(
        p.held_replicas(),
        ["eu"],
        "the journal says what to restore"
    );
    assert_eq!(
        bed.calls("eu")
            .iter()
            .filter(|c| *c == "set_replica")
            .count(),
        1
    );
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_journal_that_takes_no_record_makes_no_change() {
    let bed = Bed::new(vec![]);
    // Every write to /dev/full fails with "no space left on device".
    let w = JournalWriter::reopen(std::path::Path::new("/dev/full"), 0).unwrap();
    let (o, _, events) = bed.turn_with(bed.spec("eu", 0), w).await;
    assert_eq!(o.end.result, ServerResult::Failed);
    assert!(
        matches!(reason(&o), Reason::JournalFailed { .. }),
        "{:?}",
        reason(&o)
    );
    assert_eq!(
        bed.calls("eu"),
        ["facts"],
        "facts are read; nothing is changed"
    );
    assert!(bed.replica("eu"));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::JournalFailed { .. }))
    );
}

#[test]
fn obligation_kinds_are_told_by_type() {
    assert_eq!(
        wsusfix::core::record::Obligation::ReplicaHold { server: "x".into() }.kind(),
        ObligationKind::ReplicaHold
    );
    assert!(StepOutcome::Skipped.succeeded());
}

/// The dispatcher over the same fake: decisions in, turns scheduled top-down, blocks typed.
async fn dispatch(
    bed: &Bed,
    records: Vec<Record>,
) -> (Progress, Vec<Event>, wsusfix::exec::run::Executed) {
    use wsusfix::core::resume::{Mode, decide};
    use wsusfix::exec::run::{Job, RunConfig, execute};
    let pb = playbook::load(playbook::DEFAULT_PLAYBOOK).playbook.unwrap();
    let header = Record::Header {
        format_version: wsusfix::core::record::JOURNAL_FORMAT_VERSION,
        run_id: "t".into(),
        fingerprint: bed.plan.fingerprint.clone(),
        tool_version: "0".into(),
        inventory: "inv.yaml".into(),
        playbook: None,
        at: "2026-12-04T10:00:00.000Z".into(),
        plan: Box::new(bed.plan.clone()),
    };
    let w = JournalWriter::create(&bed.journal, &header).unwrap();
    for r in &records {
        w.append(r).await.unwrap();
    }
    let progress = Progress::replay(&records);
    let decisions = decide(&bed.plan, &progress, Mode::Run);
    let (tx, rx) = mpsc::unbounded_channel();
    let recorder = Arc::new(Recorder::new(w, progress, tx));
    struct Collect(Vec<Event>);
    impl wsusfix::report::Sink for Collect {
        fn event(&mut self, e: &Event) {
            self.0.push(e.clone());
        }
        fn recap(&mut self, _: &wsusfix::report::recap::Recap) {}
        fn note(&mut self, _: &str) {}
    }
    let mut sink = Collect(Vec::new());
    let cfg = RunConfig {
        retry: RetryPolicy {
            attempts: 2,
            stall_attempts: 1,
            base: Duration::from_millis(1),
            max: Duration::from_millis(1),
        },
        ..RunConfig::default()
    };
    let executed = execute(
        Job {
            command: "apply",
            plan: &bed.plan,
            inventory: &bed.inv,
            playbook: &pb,
            decisions: &decisions,
            recorder: recorder.clone(),
            connector: Arc::new(FakeConnector {
                world: bed.world.clone(),
            }),
            signals: wsusfix::exec::signals::none(),
        },
        cfg,
        rx,
        &mut sink,
    )
    .await;
    (recorder.progress(), sink.0, executed)
}

#[tokio::test]
async fn the_dispatcher_blocks_the_subtree_of_a_failed_server_with_a_typed_reason() {
    let bed = Bed::new(vec![("hq", "facts", 1, Act::Fail)]);
    let (p, events, _) = dispatch(&bed, vec![]).await;
    let end = |s: &str| p.servers[s].end.clone().unwrap();
    assert_eq!(end("hq").result, ServerResult::Failed);
    for child in ["eu", "us"] {
        assert_eq!(end(child).result, ServerResult::Blocked);
        assert_eq!(
            end(child).reason,
            Some(Reason::Blocked {
                upstream: "hq".into(),
                upstream_result: ServerResult::Failed
            })
        );
    }
    assert!(bed.calls("eu").is_empty() && bed.calls("us").is_empty());
    let finished: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::ServerFinished { server, .. } => Some(server.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(finished[0], "hq", "the upstream first: {finished:?}");
}

#[tokio::test]
async fn the_dispatcher_restores_first_and_resumes_from_the_decision() {
    use wsusfix::core::record::{Closure, Obligation};
    // An earlier attempt: hq done, eu's hold and main steps ended, its hold still open.
    let bed = Bed::new(vec![]);
    bed.world
        .lock()
        .unwrap()
        .hosts
        .get_mut("eu")
        .unwrap()
        .replica = false;
    let step = |i: usize, a: &str| {
        [
            Record::StepStarted {
                server: "eu".into(),
                step: i,
                action: a.into(),
                attempt: 1,
                at: "t".into(),
            },
            Record::StepFinished {
                server: "eu".into(),
                step: i,
                action: a.into(),
                outcome: StepOutcome::Changed,
                detail: String::new(),
                at: "t".into(),
            },
        ]
    };
    let mut records = vec![
        Record::ServerFinished {
            server: "hq".into(),
            result: ServerResult::Done,
            reason: None,
            path: None,
            at: "t".into(),
        },
        Record::ObligationOpened {
            obligation: Obligation::ReplicaHold {
                server: "eu".into(),
            },
            at: "t".into(),
        },
    ];
    for (i, a) in [
        "switch-to-autonomous",
        "ensure-declined",
        "approve-unchanged",
        "decline",
    ]
    .iter()
    .enumerate()
    {
        records.extend(step(i, a));
    }
    let (p, events, executed) = dispatch(&bed, records).await;
    assert!(executed.restore_first_failed.is_empty());
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::RestoringFromJournal { obligations: 1 }))
    );
    assert!(matches!(
        p.ledger[0].1.state,
        wsusfix::core::replay::LedgerState::Closed(Closure::Restored)
    ));
    assert!(bed.calls("hq").is_empty(), "done earlier: not run again");
    // eu: restored first (set_replica, sync), then its turn from the restore steps: facts, the
    // switch back found nothing to do, the sync, the proof. No switch to autonomous again.
    let eu = bed.calls("eu");
    assert_eq!(
        eu.iter().filter(|c| *c == "set_replica").count(),
        1,
        "{eu:?}"
    );
    assert!(!eu.contains(&"ensure_declined".to_string()), "{eu:?}");
    assert_eq!(
        p.servers["eu"].end.as_ref().unwrap().result,
        ServerResult::Done
    );
    assert_eq!(
        p.servers["us"].end.as_ref().unwrap().result,
        ServerResult::Done
    );
}
