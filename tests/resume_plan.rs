//! The resume plan as a table: from the records an earlier attempt left (an empty journal for a
//! fresh run), what each server's turn does and what is restored first. Pure: no simulator.

use wsusfix::core::inventory::WsusVersion;
use wsusfix::core::plan::{self, Plan, PlanOptions};
use wsusfix::core::record::{
    Closure, Obligation, Reason, Record, ServerResult, StepOutcome, TurnPhase,
};
use wsusfix::core::replay::Progress;
use wsusfix::core::resume::{Decision, Mode, Turn, decide};
use wsusfix::core::{hierarchy::Hierarchy, inventory, playbook};

const AT: &str = "2026-12-04T10:00:00.000Z";

fn lab_plan(limit: &[&str]) -> Plan {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/inventory/lab.yaml"))
        .unwrap();
    let inv = inventory::load(&text).inventory.unwrap();
    let pb = playbook::load(playbook::DEFAULT_PLAYBOOK).playbook.unwrap();
    plan::plan(
        &inv,
        &Hierarchy::new(&inv),
        &pb,
        &PlanOptions {
            limit: limit.iter().map(|s| s.to_string()).collect(),
            ..PlanOptions::default()
        },
    )
    .unwrap()
}

fn hold(server: &str) -> Obligation {
    Obligation::ReplicaHold {
        server: server.into(),
    }
}

fn opened(ob: Obligation) -> Record {
    Record::ObligationOpened {
        obligation: ob,
        at: AT.into(),
    }
}

fn closed(ob: &Obligation) -> Record {
    Record::ObligationClosed {
        id: ob.id(),
        how: Closure::Restored,
        at: AT.into(),
    }
}

fn started(server: &str, step: usize, action: &str) -> Record {
    Record::StepStarted {
        server: server.into(),
        step,
        action: action.into(),
        attempt: 1,
        at: AT.into(),
    }
}

fn ended(server: &str, step: usize, action: &str, outcome: StepOutcome) -> Record {
    Record::StepFinished {
        server: server.into(),
        step,
        action: action.into(),
        outcome,
        detail: String::new(),
        at: AT.into(),
    }
}

/// Steps `0..n` of `server` started and ended with `outcome`.
fn steps(server: &str, actions: &[&str], outcome: StepOutcome) -> Vec<Record> {
    actions
        .iter()
        .enumerate()
        .flat_map(|(i, a)| [started(server, i, a), ended(server, i, a, outcome)])
        .collect()
}

fn finished(server: &str, result: ServerResult, reason: Option<Reason>) -> Record {
    Record::ServerFinished {
        server: server.into(),
        result,
        reason,
        path: None,
        at: AT.into(),
    }
}

fn facts(server: &str, version: &str) -> Record {
    Record::Facts {
        server: server.into(),
        version: Some(version.into()),
        contradictions: Vec::new(),
        at: AT.into(),
    }
}

const RTM_REPLICA: [&str; 7] = [
    "switch-to-autonomous",
    "ensure-declined",
    "approve-unchanged",
    "decline",
    "switch-to-replica",
    "sync-from-upstream",
    "detect-now",
];

fn run(from: usize, adopt: Vec<Obligation>) -> Turn {
    Turn::Run { from, adopt }
}

struct Case {
    name: &'static str,
    records: Vec<Record>,
    mode: Mode,
    /// (server, restored first, turn)
    expect: Vec<(&'static str, Vec<Obligation>, Turn)>,
}

fn cases() -> Vec<Case> {
    use ServerResult as R;
    use StepOutcome::{Changed, Failed, Ok};
    let eu = "wsus-eu";
    vec![
        Case {
            name: "a fresh run is the same decision on an empty journal: every turn whole",
            records: vec![],
            mode: Mode::Run,
            expect: [
                "wsus-hq",
                "wsus-eu",
                "wsus-us",
                "wsus-eu-berlin",
                "wsus-eu-paris",
                "wsus-us-dallas",
            ]
            .into_iter()
            .map(|s| (s, vec![], run(0, vec![])))
            .collect(),
        },
        Case {
            name: "a server done earlier stays done",
            records: [
                steps("wsus-hq", &["locale-guard", "install-hotfix"], Changed),
                vec![finished("wsus-hq", R::Done, None)],
            ]
            .concat(),
            mode: Mode::Run,
            expect: vec![("wsus-hq", vec![], Turn::Done)],
        },
        Case {
            name: "a hold in the middle of the main steps is adopted, the turn redone",
            records: [
                vec![opened(hold(eu))],
                steps(eu, &RTM_REPLICA[..1], Changed),
                vec![started(eu, 1, "ensure-declined")],
            ]
            .concat(),
            mode: Mode::Run,
            expect: vec![(eu, vec![], run(0, vec![hold(eu)]))],
        },
        Case {
            name: "main steps all ended: the hold is restored first, the turn goes on from the restore",
            records: [
                vec![opened(hold(eu))],
                steps(eu, &RTM_REPLICA[..4], Changed),
                vec![started(eu, 4, "switch-to-replica")],
            ]
            .concat(),
            mode: Mode::Run,
            expect: vec![(eu, vec![hold(eu)], run(4, vec![]))],
        },
        Case {
            name: "interrupted before its proof: only the proof runs",
            records: [
                vec![opened(hold(eu))],
                steps(eu, &RTM_REPLICA[..6], Changed),
                vec![
                    closed(&hold(eu)),
                    finished(
                        eu,
                        R::Interrupted,
                        Some(Reason::InterruptedAfterChanges {
                            phase: TurnPhase::Verification,
                            changed: vec!["switch-to-autonomous".into()],
                            not_run: vec!["detect-now".into()],
                        }),
                    ),
                ],
            ]
            .concat(),
            mode: Mode::Run,
            expect: vec![(eu, vec![], run(6, vec![]))],
        },
        Case {
            name: "a failed step redoes the turn; its restored hold is not adopted",
            records: [
                vec![opened(hold(eu))],
                steps(eu, &RTM_REPLICA[..2], Changed),
                vec![
                    started(eu, 2, "approve-unchanged"),
                    ended(eu, 2, "approve-unchanged", Failed),
                    closed(&hold(eu)),
                    finished(eu, R::Failed, None),
                ],
            ]
            .concat(),
            mode: Mode::Run,
            expect: vec![(eu, vec![], run(0, vec![]))],
        },
        Case {
            name: "a failed turn whose restore failed too adopts the hold (no second switch)",
            records: [
                vec![opened(hold(eu))],
                steps(eu, &RTM_REPLICA[..1], Changed),
                vec![
                    started(eu, 1, "ensure-declined"),
                    ended(eu, 1, "ensure-declined", Failed),
                    Record::RestoreFailed {
                        id: hold(eu).id(),
                        error: "refused".into(),
                        at: AT.into(),
                    },
                    finished(eu, R::Failed, None),
                ],
            ]
            .concat(),
            mode: Mode::Run,
            expect: vec![(eu, vec![], run(0, vec![hold(eu)]))],
        },
        Case {
            name: "a server whose steps were all ok (nothing to change) goes on from its restores",
            records: steps(eu, &RTM_REPLICA[..4], Ok),
            mode: Mode::Run,
            expect: vec![(eu, vec![], run(4, vec![]))],
        },
        Case {
            name: "a path decided at run time is judged by the steps its facts chose",
            records: [
                vec![
                    facts("wsus-us-dallas", "3.0-rtm"),
                    opened(hold("wsus-us-dallas")),
                ],
                steps("wsus-us-dallas", &RTM_REPLICA[..4], Changed),
            ]
            .concat(),
            mode: Mode::Run,
            expect: vec![(
                "wsus-us-dallas",
                vec![hold("wsus-us-dallas")],
                run(4, vec![]),
            )],
        },
        Case {
            name: "a path decided at run time whose facts never came is redone whole",
            records: vec![opened(hold("wsus-us-dallas"))],
            mode: Mode::Run,
            expect: vec![(
                "wsus-us-dallas",
                vec![],
                run(0, vec![hold("wsus-us-dallas")]),
            )],
        },
        Case {
            name: "a locale switch in the middle of an SP1 turn is adopted",
            records: [
                vec![opened(Obligation::LocaleSwitch {
                    server: "wsus-hq".into(),
                    previous: "de-CH".into(),
                })],
                steps("wsus-hq", &["locale-guard"], Changed),
                vec![started("wsus-hq", 1, "install-hotfix")],
            ]
            .concat(),
            mode: Mode::Run,
            expect: vec![(
                "wsus-hq",
                vec![],
                run(
                    0,
                    vec![Obligation::LocaleSwitch {
                        server: "wsus-hq".into(),
                        previous: "de-CH".into(),
                    }],
                ),
            )],
        },
        Case {
            name: "restore leaves every server alone and restores every open obligation",
            records: [
                vec![opened(hold(eu)), opened(hold("wsus-eu-paris"))],
                steps(eu, &RTM_REPLICA[..2], Changed),
                vec![finished("wsus-hq", R::Done, None)],
            ]
            .concat(),
            mode: Mode::RestoreOnly,
            expect: vec![
                ("wsus-hq", vec![], Turn::LeaveAlone),
                (eu, vec![hold(eu)], Turn::LeaveAlone),
                (
                    "wsus-eu-paris",
                    vec![hold("wsus-eu-paris")],
                    Turn::LeaveAlone,
                ),
            ],
        },
    ]
}

#[test]
fn the_resume_plan_table() {
    let plan = lab_plan(&[]);
    for case in cases() {
        let progress = Progress::replay(&case.records);
        let decided = decide(&plan, &progress, case.mode);
        assert_eq!(
            decided.servers.len(),
            plan.servers.len(),
            "{}: a decision per server",
            case.name
        );
        for (server, restore_first, turn) in &case.expect {
            let got = decided.get(server).unwrap();
            assert_eq!(
                got,
                &Decision {
                    server: server.to_string(),
                    restore_first: restore_first.clone(),
                    turn: turn.clone(),
                },
                "{}",
                case.name
            );
        }
        assert!(decided.orphans.is_empty(), "{}", case.name);
    }
}

#[test]
fn obligations_of_servers_outside_the_plan_are_restored_first() {
    // A plan limited to wsus-us's subtree, over a journal that still holds wsus-eu.
    let plan = lab_plan(&["wsus-us"]);
    let progress = Progress::replay(&[opened(hold("wsus-eu"))]);
    let decided = decide(&plan, &progress, Mode::Run);
    assert_eq!(decided.orphans, vec![hold("wsus-eu")]);
    assert_eq!(decided.restore_first(), vec![hold("wsus-eu")]);
    assert!(decided.get("wsus-eu").is_none());
}

#[test]
fn the_version_of_a_runtime_path_comes_from_its_facts() {
    let plan = lab_plan(&[]);
    let dallas = plan.server("wsus-us-dallas").unwrap();
    assert_eq!(dallas.path, wsusfix::core::plan::PlanPath::Runtime);
    assert!(dallas.alternatives.contains_key(&WsusVersion::Rtm));
}
