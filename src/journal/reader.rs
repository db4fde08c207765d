//! Reading a journal back and replaying it into the state of a run. A torn last line (a crash
//! in the middle of a write) is tolerated and reported; any other damage is an error that names
//! the line.

use std::collections::BTreeMap;
use std::path::Path;

use super::record::{JOURNAL_FORMAT_VERSION, Obligation, Record, ServerResult, StepOutcome};
use crate::core::plan::Plan;

/// Why a journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// It could not be read.
    #[error("cannot read the journal {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// It is empty or starts with something else than a header.
    #[error("{path} is not a wsusfix journal: {why}")]
    NotAJournal {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// A line other than the last is damaged.
    #[error(
        "{path}:{line}: damaged journal record ({why}); the journal was changed after it was written"
    )]
    Corrupt {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// Written by an incompatible version.
    #[error(
        "{path} has journal format {found}; this wsusfix reads format {JOURNAL_FORMAT_VERSION}"
    )]
    Version {
        /// The file.
        path: String,
        /// Its version.
        found: u32,
    },
}

/// A journal read from disk.
#[derive(Debug)]
pub struct Journal {
    /// Every complete record, the header first.
    pub records: Vec<Record>,
    /// Length in bytes of the complete records (where appending resumes).
    pub valid_len: u64,
    /// A torn last line was found and will be cut off.
    pub torn_tail: bool,
}

/// Parses journal bytes.
pub fn parse(path: &str, bytes: &[u8]) -> Result<Journal, JournalError> {
    let mut records = Vec::new();
    let mut offset = 0usize;
    let mut torn_tail = false;
    let mut line_no = 0;
    while offset < bytes.len() {
        line_no += 1;
        let (line, next, complete) = match bytes[offset..].iter().position(|&b| b == b'\n') {
            Some(i) => (&bytes[offset..offset + i], offset + i + 1, true),
            None => (&bytes[offset..], bytes.len(), false),
        };
        let parsed = std::str::from_utf8(line)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Record>(t).map_err(|e| e.to_string()));
        match parsed {
            Ok(r) if complete => {
                records.push(r);
                offset = next;
            }
            // A last line without its newline was cut short by a crash, parsable or not.
            _ if !complete => {
                torn_tail = true;
                break;
            }
            Err(why) => {
                return Err(JournalError::Corrupt {
                    path: path.into(),
                    line: line_no,
                    why,
                });
            }
            Ok(_) => unreachable!("complete lines are handled above"),
        }
    }
    match records.first() {
        None => Err(JournalError::NotAJournal {
            path: path.into(),
            why: "it has no header".into(),
        }),
        Some(Record::Header { format_version, .. })
            if *format_version != JOURNAL_FORMAT_VERSION =>
        {
            Err(JournalError::Version {
                path: path.into(),
                found: *format_version,
            })
        }
        Some(Record::Header { .. }) => Ok(Journal {
            records,
            valid_len: offset as u64,
            torn_tail,
        }),
        Some(_) => Err(JournalError::NotAJournal {
            path: path.into(),
            why: "its first record is not a header".into(),
        }),
    }
}

/// Reads a journal file.
pub fn read(path: &Path) -> Result<Journal, JournalError> {
    let bytes = std::fs::read(path).map_err(|source| JournalError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&path.display().to_string(), &bytes)
}

/// Where one step of a server stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// Not started.
    Pending,
    /// Started, no outcome recorded: its effect is unknown (re-check live state).
    Unknown,
    /// Ended.
    Ended(StepOutcome),
}

/// Where one server stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerProgress {
    /// Each step's state, by index.
    pub steps: BTreeMap<usize, StepState>,
    /// The server's result, once finished.
    pub result: Option<(ServerResult, Option<String>)>,
    /// The path it took, once known.
    pub path: Option<String>,
}

/// An obligation and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    /// What to undo.
    pub obligation: Obligation,
    /// `open`, `restored`, `not-needed`.
    pub state: String,
    /// The last restore error, if any.
    pub last_error: Option<String>,
}

/// The state of a run, replayed from its journal.
#[derive(Debug, Clone)]
pub struct RunState {
    /// The run's ID.
    pub run_id: String,
    /// The plan it executes.
    pub plan: Plan,
    /// The fingerprint in the header.
    pub fingerprint: String,
    /// The inventory file.
    pub inventory: String,
    /// The playbook file (none: built in).
    pub playbook: Option<String>,
    /// When it started.
    pub started: String,
    /// Per server.
    pub servers: BTreeMap<String, ServerProgress>,
    /// Every obligation ever opened, by ID, in the order opened.
    pub ledger: Vec<(String, Ledger)>,
    /// How the run ended, if it did.
    pub finished: Option<String>,
    /// Times Ctrl-C was pressed.
    pub interrupted: u32,
}

impl RunState {
    /// Replays records (the header first).
    pub fn replay(records: &[Record]) -> RunState {
        let (run_id, fingerprint, inventory, playbook, started, plan) = match records.first() {
            Some(Record::Header {
                run_id,
                fingerprint,
                inventory,
                playbook,
                at,
                plan,
                ..
            }) => (
                run_id.clone(),
                fingerprint.clone(),
                inventory.clone(),
                playbook.clone(),
                at.clone(),
                (**plan).clone(),
            ),
            _ => unreachable!("parse() guarantees a header first"),
        };
        let mut st = RunState {
            run_id,
            plan,
            fingerprint,
            inventory,
            playbook,
            started,
            servers: BTreeMap::new(),
            ledger: Vec::new(),
            finished: None,
            interrupted: 0,
        };
        for r in &records[1..] {
            match r {
                Record::StepStarted { server, step, .. } => {
                    st.progress(server).steps.insert(*step, StepState::Unknown);
                }
                Record::StepFinished {
                    server,
                    step,
                    outcome,
                    ..
                } => {
                    st.progress(server)
                        .steps
                        .insert(*step, StepState::Ended(*outcome));
                }
                Record::ServerFinished {
                    server,
                    result,
                    reason,
                    ..
                } => st.progress(server).result = Some((*result, reason.clone())),
                Record::ObligationOpened { obligation, .. } => {
                    let id = obligation.id();
                    let entry = Ledger {
                        obligation: obligation.clone(),
                        state: "open".into(),
                        last_error: None,
                    };
                    match st.ledger.iter_mut().find(|(i, _)| *i == id) {
                        Some((_, l)) => *l = entry,
                        None => st.ledger.push((id, entry)),
                    }
                }
                Record::ObligationClosed { id, how, .. } => {
                    if let Some((_, l)) = st.ledger.iter_mut().find(|(i, _)| i == id) {
                        l.state = how.clone();
                        l.last_error = None;
                    }
                }
                Record::RestoreFailed { id, error, .. } => {
                    if let Some((_, l)) = st.ledger.iter_mut().find(|(i, _)| i == id) {
                        l.last_error = Some(error.clone());
                    }
                }
                Record::RunFinished { result, .. } => st.finished = Some(result.clone()),
                Record::Interrupted { .. } => st.interrupted += 1,
                Record::Resumed { .. } => st.finished = None,
                Record::Facts {
                    server,
                    version: Some(v),
                    ..
                } => {
                    let p = st.progress(server);
                    if p.path.is_none() {
                        p.path = Some(v.clone());
                    }
                }
                Record::Header { .. } | Record::Facts { .. } | Record::Verification { .. } => {}
            }
        }
        st
    }

    fn progress(&mut self, server: &str) -> &mut ServerProgress {
        self.servers
            .entry(server.to_string())
            .or_insert_with(|| ServerProgress {
                steps: BTreeMap::new(),
                result: None,
                path: None,
            })
    }

    /// Obligations not yet closed.
    pub fn open_obligations(&self) -> Vec<&Obligation> {
        self.ledger
            .iter()
            .filter(|(_, l)| l.state == "open")
            .map(|(_, l)| &l.obligation)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::record::now;

    fn header() -> Record {
        let inv = crate::core::inventory::load(
            "defaults: { username: u, password: prompt }\nservers:\n  a: { role: upstream, address: 10.0.0.1, version: 3.0-rtm }\n  b: { role: replica, upstream: a, address: 10.0.0.2, version: 3.0-rtm }\n",
        )
        .inventory
        .unwrap();
        let h = crate::core::hierarchy::Hierarchy::new(&inv);
        let pb = crate::core::playbook::load(crate::core::playbook::DEFAULT_PLAYBOOK)
            .playbook
            .unwrap();
        let plan = crate::core::plan::plan(&inv, &h, &pb, &Default::default()).unwrap();
        Record::Header {
            format_version: JOURNAL_FORMAT_VERSION,
            run_id: "r1".into(),
            fingerprint: plan.fingerprint.clone(),
            tool_version: "0.1.0".into(),
            inventory: "inv.yaml".into(),
            playbook: None,
            at: now(),
            plan: Box::new(plan),
        }
    }

    fn lines(records: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            out.extend(serde_json::to_vec(r).unwrap());
            out.push(b'\n');
        }
        out
    }

    fn hold() -> Record {
        Record::ObligationOpened {
            obligation: Obligation::ReplicaHold { server: "b".into() },
            at: now(),
        }
    }

    #[test]
    fn replay_tracks_steps_and_the_ledger() {
        let recs = vec![
            header(),
            hold(),
            Record::StepStarted {
                server: "b".into(),
                step: 0,
                action: "switch-to-autonomous".into(),
                attempt: 1,
                at: now(),
            },
            Record::StepFinished {
                server: "b".into(),
                step: 0,
                action: "switch-to-autonomous".into(),
                outcome: StepOutcome::Changed,
                detail: String::new(),
                at: now(),
            },
            Record::StepStarted {
                server: "b".into(),
                step: 1,
                action: "ensure-declined".into(),
                attempt: 1,
                at: now(),
            },
        ];
        let j = parse("j", &lines(&recs)).unwrap();
        let st = RunState::replay(&j.records);
        assert_eq!(
            st.servers["b"].steps[&0],
            StepState::Ended(StepOutcome::Changed)
        );
        assert_eq!(st.servers["b"].steps[&1], StepState::Unknown);
        assert_eq!(st.open_obligations().len(), 1);
        let mut more = recs.clone();
        more.push(Record::ObligationClosed {
            id: "replica-hold:b".into(),
            how: "restored".into(),
            at: now(),
        });
        let st = RunState::replay(&parse("j", &lines(&more)).unwrap().records);
        assert!(st.open_obligations().is_empty());
        assert_eq!(st.ledger[0].1.state, "restored");
    }

    #[test]
    fn a_torn_last_line_is_tolerated() {
        let mut bytes = lines(&[header(), hold()]);
        let valid = bytes.len() as u64;
        bytes.extend_from_slice(b"{\"type\":\"step-started\",\"serv");
        let j = parse("j", &bytes).unwrap();
        assert!(j.torn_tail);
        assert_eq!(j.valid_len, valid);
        assert_eq!(j.records.len(), 2);
    }

    #[test]
    fn damage_elsewhere_names_the_line() {
        let mut bytes = lines(&[header()]);
        bytes.extend_from_slice(b"{not json}\n");
        bytes.extend(lines(&[hold()]));
        let e = parse("run.jsonl", &bytes).unwrap_err();
        assert!(matches!(e, JournalError::Corrupt { line: 2, .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("run.jsonl:2: damaged journal record"),
            "{e}"
        );
    }

    #[test]
    fn not_a_journal() {
        assert!(matches!(
            parse("j", b""),
            Err(JournalError::NotAJournal { .. })
        ));
        assert!(matches!(
            parse("j", &lines(&[hold()])),
            Err(JournalError::NotAJournal { .. })
        ));
        let text = String::from_utf8(lines(&[header()]))
            .unwrap()
            .replace("\"format_version\":1", "\"format_version\":99");
        assert!(matches!(
            parse("j", text.as_bytes()),
            Err(JournalError::Version { found: 99, .. })
        ));
    }

    #[test]
    fn the_writer_appends_durably_and_reopens_after_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs").join("r1.jsonl");
        let w = super::super::writer::JournalWriter::create(&path, &header()).unwrap();
        w.append_blocking(&hold()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        drop(w);
        // A crash in the middle of a write.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"{\"type\":\"obligation-clo").unwrap();
        let j = read(&path).unwrap();
        assert!(j.torn_tail);
        let w = super::super::writer::JournalWriter::reopen(&path, j.valid_len).unwrap();
        w.append_blocking(&Record::ObligationClosed {
            id: "replica-hold:b".into(),
            how: "restored".into(),
            at: now(),
        })
        .unwrap();
        let j = read(&path).unwrap();
        assert!(!j.torn_tail);
        assert_eq!(j.records.len(), 3);
        assert!(RunState::replay(&j.records).open_obligations().is_empty());
    }
}
