//! Reading a journal back. Nothing in a journal makes it unreadable: every record that can be
//! read is read, and the damage is reported by kind (docs/journal-format.md, "Damage"):
//! - a **torn tail**: the last line was cut short by a crash in the middle of a write (harmless;
//!   it is cut off before the next append);
//! - a **failed write**: a record whose write failed half-way with records after it (an earlier
//!   release wrote on after a failed write; this one truncates back first);
//! - **outside damage**: a line that is no record wsusfix could have written.
//!
//! An empty file, or one whose only line is a torn header, is what a refused start leaves
//! behind (a full disk before the header was durable): it is recognised and never blocks.

use std::path::Path;

use super::record::{JOURNAL_FORMAT_VERSION, OLDEST_READABLE_FORMAT, Record};
use crate::core::replay::{Progress, RunInfo, RunState};

/// The first bytes of every record the writer produces.
const RECORD_START: &[u8] = b"{\"type\":\"";

/// A journal that could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the journal {path}: {source}")]
pub struct ReadError {
    /// The file.
    pub path: String,
    /// The error.
    pub source: std::io::Error,
}

/// What is wrong with a part of a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The last line was cut short by a crash in the middle of a write.
    TornTail {
        /// 1-based line.
        line: usize,
    },
    /// A record whose write failed half-way, followed by later records on the same line.
    FailedWrite {
        /// 1-based line.
        line: usize,
    },
    /// A line wsusfix could not have written: the journal was changed after it was written.
    Outside {
        /// 1-based line.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
}

impl Damage {
    /// In words, naming the file and the line.
    pub fn describe(&self, path: &str) -> String {
        match self {
            Damage::TornTail { line } => {
                format!("{path}:{line}: the last record was cut short by a crash (it is ignored)")
            }
            Damage::FailedWrite { line } => format!(
                "{path}:{line}: a record whose write failed half-way (a full disk?), with records after it (they are read)"
            ),
            Damage::Outside { line, why } => format!(
                "{path}:{line}: damaged journal record ({why}): the journal was changed after it was written; the records around it are read"
            ),
        }
    }

    /// True for damage that a crash or a failed write of wsusfix itself explains.
    pub fn is_ours(&self) -> bool {
        !matches!(self, Damage::Outside { .. })
    }
}

/// Whether the journal's header could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderState {
    /// The first record is a header of a readable format.
    Ok,
    /// Nothing complete was ever written: a refused start.
    Empty,
    /// The first line is damaged or not a header.
    Damaged,
    /// A header of a format this release does not read.
    Unsupported {
        /// Its format.
        found: u32,
    },
}

/// A journal read from disk: every readable record, and what is damaged.
#[derive(Debug)]
pub struct Journal {
    /// The file, as given.
    pub path: String,
    /// Every readable record, in order (the header first when it is readable).
    pub records: Vec<Record>,
    /// Where appending resumes: the file's length without a torn tail.
    pub append_at: u64,
    /// The damage found, in line order (a torn tail last).
    pub damage: Vec<Damage>,
    /// The header's state.
    pub header: HeaderState,
}

impl Journal {
    /// The run's state, when the header is readable.
    pub fn state(&self) -> Option<RunState> {
        match self.header {
            HeaderState::Ok => RunState::replay(&self.records),
            _ => None,
        }
    }

    /// What the records say, header or not.
    pub fn progress(&self) -> Progress {
        Progress::replay(&self.records)
    }

    /// The header's content, when readable.
    pub fn info(&self) -> Option<RunInfo> {
        match self.header {
            HeaderState::Ok => self.records.first().and_then(RunInfo::from_header),
            _ => None,
        }
    }

    /// True when this file is what a refused start leaves: no record was ever complete.
    pub fn is_refused_start(&self) -> bool {
        self.header == HeaderState::Empty
    }

    /// True when a torn tail is the only damage (or there is none).
    pub fn only_torn_tail(&self) -> bool {
        self.damage
            .iter()
            .all(|d| matches!(d, Damage::TornTail { .. }))
    }

    /// Damage other than a torn tail, in words.
    pub fn damage_report(&self) -> Vec<String> {
        self.damage
            .iter()
            .filter(|d| !matches!(d, Damage::TornTail { .. }))
            .map(|d| d.describe(&self.path))
            .collect()
    }
}

fn parse_record(line: &[u8]) -> Result<Record, String> {
    std::str::from_utf8(line)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<Record>(t).map_err(|e| e.to_string()))
}

/// A damaged line that ends with a whole record after a record's start: our failed write,
/// followed by the next record. Returns that record.
fn after_failed_write(line: &[u8]) -> Option<Record> {
    if !line.starts_with(RECORD_START) {
        return None;
    }
    let mut from = 1;
    while let Some(i) = line[from..]
        .windows(RECORD_START.len())
        .position(|w| w == RECORD_START)
    {
        let at = from + i;
        if let Ok(r) = parse_record(&line[at..]) {
            return Some(r);
        }
        from = at + 1;
    }
    None
}

/// Parses journal bytes; never fails (damage is reported in the result).
pub fn parse(path: &str, bytes: &[u8]) -> Journal {
    let mut records = Vec::new();
    let mut damage = Vec::new();
    let mut offset = 0usize;
    let mut append_at = bytes.len() as u64;
    let mut line_no = 0;
    let mut first_line_bad = false;
    let mut first_line_torn = false;
    while offset < bytes.len() {
        line_no += 1;
        let (line, next, complete) = match bytes[offset..].iter().position(|&b| b == b'\n') {
            Some(i) => (&bytes[offset..offset + i], offset + i + 1, true),
            None => (&bytes[offset..], bytes.len(), false),
        };
        if !complete {
            // A last line without its newline was cut short by a crash, parsable or not.
            damage.push(Damage::TornTail { line: line_no });
            append_at = offset as u64;
            if line_no == 1 {
                first_line_bad = true;
                first_line_torn = true;
            }
            break;
        }
        match parse_record(line) {
            Ok(r) => records.push(r),
            Err(why) => {
                if line_no == 1 {
                    first_line_bad = true;
                }
                match after_failed_write(line) {
                    Some(r) => {
                        damage.push(Damage::FailedWrite { line: line_no });
                        records.push(r);
                    }
                    None if line.iter().all(u8::is_ascii_whitespace) => {
                        damage.push(Damage::Outside {
                            line: line_no,
                            why: "an empty line".into(),
                        });
                    }
                    None => damage.push(Damage::Outside { line: line_no, why }),
                }
            }
        }
        offset = next;
    }
    let header = match records.first() {
        None if first_line_torn => HeaderState::Empty,
        None if bytes.iter().all(u8::is_ascii_whitespace) => HeaderState::Empty,
        Some(Record::Header { format_version, .. }) if !first_line_bad => {
            if (OLDEST_READABLE_FORMAT..=JOURNAL_FORMAT_VERSION).contains(format_version) {
                HeaderState::Ok
            } else {
                HeaderState::Unsupported {
                    found: *format_version,
                }
            }
        }
        _ => HeaderState::Damaged,
    };
    Journal {
        path: path.to_string(),
        records,
        append_at,
        damage,
        header,
    }
}

/// Reads a journal file.
pub fn read(path: &Path) -> Result<Journal, ReadError> {
    let bytes = std::fs::read(path).map_err(|source| ReadError {
        path: path.display().to_string(),
        source,
    })?;
    Ok(parse(&path.display().to_string(), &bytes))
}

/// A header of a small two-server plan, for tests.
#[cfg(test)]
pub(crate) fn tests_header() -> Record {
    tests::header()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::record::{Closure, Obligation, StepOutcome};
    use crate::core::replay::StepState;
    use crate::journal::record::now;

    pub(crate) fn header() -> Record {
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

    fn closed() -> Record {
        Record::ObligationClosed {
            id: "replica-hold:b".into(),
            how: Closure::Restored,
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
        let j = parse("j", &lines(&recs));
        assert!(j.damage.is_empty());
        let st = j.state().unwrap();
        assert_eq!(
            st.progress.servers["b"].steps[&0],
            StepState::Ended(StepOutcome::Changed)
        );
        assert_eq!(st.progress.servers["b"].steps[&1], StepState::Unknown);
        assert_eq!(st.progress.held_replicas(), ["b"]);
        let mut more = recs.clone();
        more.push(closed());
        let st = parse("j", &lines(&more)).state().unwrap();
        assert!(st.progress.open_obligations().is_empty());
    }

    #[test]
    fn a_torn_last_line_is_tolerated() {
        let mut bytes = lines(&[header(), hold()]);
        let valid = bytes.len() as u64;
        bytes.extend_from_slice(b"{\"type\":\"step-started\",\"serv");
        let j = parse("j", &bytes);
        assert_eq!(j.damage, [Damage::TornTail { line: 3 }]);
        assert!(j.only_torn_tail());
        assert_eq!(j.append_at, valid);
        assert_eq!(j.records.len(), 2);
    }

    #[test]
    fn outside_damage_names_the_line_and_the_rest_is_still_read() {
        let mut bytes = lines(&[header()]);
        bytes.extend_from_slice(b"{not json}\n");
        bytes.extend(lines(&[hold()]));
        let j = parse("run.jsonl", &bytes);
        assert!(matches!(j.damage[..], [Damage::Outside { line: 2, .. }]));
        assert!(!j.damage[0].is_ours());
        assert!(
            j.damage_report()[0].starts_with("run.jsonl:2: damaged journal record"),
            "{:?}",
            j.damage_report()
        );
        assert_eq!(
            j.progress().held_replicas(),
            ["b"],
            "the hold after the damage is found"
        );
        assert_eq!(j.header, HeaderState::Ok);
    }

    #[test]
    fn a_failed_write_followed_by_records_is_told_apart_from_tampering() {
        let mut bytes = lines(&[header(), hold()]);
        let closing = serde_json::to_vec(&closed()).unwrap();
        // Half a record, then the next write on the same line.
        bytes.extend_from_slice(&closing[..closing.len() / 2]);
        bytes.extend(lines(&[closed()]));
        let j = parse("j", &bytes);
        assert_eq!(j.damage, [Damage::FailedWrite { line: 3 }]);
        assert!(j.damage[0].is_ours());
        assert!(j.progress().open_obligations().is_empty());
    }

    #[test]
    fn refused_starts_and_lost_headers_are_recognised() {
        assert_eq!(parse("j", b"").header, HeaderState::Empty);
        assert!(parse("j", b"").is_refused_start());
        assert_eq!(
            parse("j", b"{\"type\":\"header\",\"format_ver").header,
            HeaderState::Empty
        );
        let headerless = parse("j", &lines(&[hold()]));
        assert_eq!(headerless.header, HeaderState::Damaged);
        assert!(headerless.state().is_none());
        assert_eq!(headerless.progress().held_replicas(), ["b"]);
        let mut bad_header = b"garbage\n".to_vec();
        bad_header.extend(lines(&[hold()]));
        let j = parse("j", &bad_header);
        assert_eq!(j.header, HeaderState::Damaged);
        assert_eq!(j.progress().held_replicas(), ["b"]);
        let text = String::from_utf8(lines(&[header()]))
            .unwrap()
            .replace("\"format_version\":2", "\"format_version\":99");
        assert_eq!(
            parse("j", text.as_bytes()).header,
            HeaderState::Unsupported { found: 99 }
        );
    }
}
