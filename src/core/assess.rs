//! Whether a server is affected by KB 954960, judged from what its live facts show: the state of
//! the Office 2003 SP1 update's approvals in the WSUS API, the client web service DLL, and the
//! duplicate-key records of its `SoftwareDistribution.log`. This is what `plan --facts` prints.
//!
//! Pure: the caller gathers the facts (`exec::facts`) and passes them in as an [`Observed`].

use chrono::{DateTime, Utc};

use super::inventory::WsusVersion;
use super::logs::server::{self, ServerEventKind};
use super::logs::softdist;
use super::plan::Affected;
use super::playbook::ALL_COMPUTERS_GROUP_ID;

/// The Office 2003 SP1 update as the server's API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateView {
    /// The server never synchronised the update.
    NotSynced,
    /// The server knows it.
    Synced {
        /// `IsDeclined`.
        declined: bool,
        /// Target groups that hold more than one approval of it (the inconsistent state).
        duplicated_groups: Vec<String>,
    },
}

/// What a server's facts show, reduced to what the verdict rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The release its `VersionString` names.
    pub version: Option<WsusVersion>,
    /// The `VersionString` as read.
    pub version_string: String,
    /// The client web service DLL's FileVersion, when the file exists.
    pub dll_version: Option<String>,
    /// The UpdateID the facts report on.
    pub update_id: String,
    /// The update's state.
    pub update: UpdateView,
    /// `SoftwareDistribution.log` records since `since` that hold the duplicate-key failure,
    /// each with its continuation lines (the `facts` operation's `softdist_record` values).
    pub softdist_records: Vec<String>,
}

/// The verdict and the lines it rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// Affected, not affected or unknown.
    pub affected: Affected,
    /// The evidence, one line each, the deciding one first.
    pub evidence: Vec<String>,
}

/// What the playbook treats as the fixed client web service on WSUS 3.0 SP1.
pub const FIXED_CLIENT_DLL: &str = "3.1.6001.66";

/// The longest log line quoted in evidence.
const QUOTE_MAX: usize = 240;

/// Judges a server from its facts. `since` is the start of the log window the records come
/// from; `fixed_dll` the DLL version that means hotfix 954960 is installed correctly.
///
/// - not affected: WSUS 3.0 SP2 (it contains the fix), or SP1 with the fixed DLL;
/// - affected: a target group holds the update's approval twice, or the log window holds the
///   duplicate-key error of the client web service;
/// - not affected: the update never synchronised, or its approvals are consistent and the log is
///   clean.
pub fn assess(o: &Observed, since: DateTime<Utc>, fixed_dll: &str) -> Assessment {
    let log = log_evidence(&o.softdist_records, since);
    let short = short_id(&o.update_id);
    if o.version == Some(WsusVersion::Sp2) {
        return Assessment {
            affected: Affected::NotAffected,
            evidence: vec![format!(
                "WSUS 3.0 SP2 ({}) already contains the fix",
                o.version_string
            )],
        };
    }
    if o.version == Some(WsusVersion::Sp1) && o.dll_version.as_deref() == Some(fixed_dll) {
        let mut evidence = vec![format!(
            "hotfix 954960 is installed: the client web service DLL is {fixed_dll}"
        )];
        if let Some(l) = log {
            evidence.push(format!(
                "SoftwareDistribution.log still has {} duplicate-key record{} since {}, the latest at {}: from before the hotfix, unless it was installed wrongly",
                l.count,
                if l.count == 1 { "" } else { "s" },
                since.format("%Y-%m-%d %H:%M UTC"),
                l.latest_time
            ));
        }
        return Assessment {
            affected: Affected::NotAffected,
            evidence,
        };
    }
    let mut evidence = Vec::new();
    if let UpdateView::Synced {
        duplicated_groups, ..
    } = &o.update
    {
        for g in duplicated_groups {
            evidence.push(format!(
                "update {short} is approved more than once for {} (the inconsistent approvals of KB 954960)",
                group_name(g)
            ));
        }
    }
    if let Some(l) = &log {
        evidence.push(l.count_line.clone());
        evidence.push(l.latest.clone());
        if let UpdateView::Synced {
            duplicated_groups, ..
        } = &o.update
            && duplicated_groups.is_empty()
        {
            // The log outlives a repair: say what would make these records old news.
            evidence.push(format!(
                "the API shows consistent approvals now: if the server was repaired after {}, these records predate the repair (narrow the window with --since)",
                l.latest_time
            ));
        }
    }
    if !evidence.is_empty() {
        if o.version == Some(WsusVersion::Sp1) {
            evidence.push(match &o.dll_version {
                Some(v) => format!(
                    "the client web service DLL is {v}, not {fixed_dll}: hotfix 954960 is not installed, or installed wrongly"
                ),
                None => "the client web service DLL was not found".to_string(),
            });
        }
        return Assessment {
            affected: Affected::Affected,
            evidence,
        };
    }
    let window = format!("since {}", since.format("%Y-%m-%d %H:%M UTC"));
    let evidence = match &o.update {
        UpdateView::NotSynced => vec![format!(
            "update {short} (Office 2003 SP1) never synchronised to this server",
        )],
        UpdateView::Synced { declined, .. } => vec![format!(
            "update {short} is {}; no target group holds two approvals of it, and SoftwareDistribution.log has no duplicate-key record {window}",
            if *declined {
                "declined"
            } else {
                "not declined"
            }
        )],
    };
    Assessment {
        affected: Affected::NotAffected,
        evidence,
    }
}

/// The verdict when the facts could not be read: unknown, with the error as evidence.
pub fn unreadable(error: &str) -> Assessment {
    Assessment {
        affected: Affected::Unknown,
        evidence: vec![format!("facts could not be read: {error}")],
    }
}

/// Lines about the duplicate-key records of a log window.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogEvidence {
    /// How many records.
    count: usize,
    /// When the latest was written (`2026-11-24 08:31:02 UTC`).
    latest_time: String,
    /// `SoftwareDistribution.log has N duplicate-key record(s) since ...`.
    count_line: String,
    /// The latest record's first line, with its fault ID when the log links one.
    latest: String,
}

/// Reads the records with the core parsers: only the client web service's
/// `ArgumentException: Item has already been added` counts.
fn log_evidence(records: &[String], since: DateTime<Utc>) -> Option<LogEvidence> {
    let text = records
        .iter()
        .map(|r| r.replace("\r\n", "\n"))
        .collect::<Vec<_>>()
        .join("\n");
    let parsed = softdist::parse(&text);
    let events = server::events(&parsed);
    let duplicates: Vec<&server::ServerEvent> = events
        .iter()
        .filter(|e| matches!(e.kind, ServerEventKind::DuplicateKey { .. }))
        .filter(|e| parsed[e.record].time.is_some_and(|t| t >= since))
        .collect();
    let latest = duplicates.iter().max_by_key(|e| parsed[e.record].time)?;
    let fault = events.iter().find_map(|e| match &e.kind {
        ServerEventKind::FaultRaised {
            id,
            error_line: Some(line),
            duplicate_key: true,
            ..
        } if *line == latest.line => Some(id.clone()),
        _ => None,
    });
    let n = duplicates.len();
    let record = &parsed[latest.record];
    let mut quote: String = record
        .raw
        .split('\t')
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_string();
    if quote.chars().count() > QUOTE_MAX {
        quote = quote.chars().take(QUOTE_MAX).collect::<String>() + "...";
    }
    let mut latest = format!("latest: {quote}");
    if let Some(id) = fault {
        latest.push_str(&format!(" (fault ID {id})"));
    }
    Some(LogEvidence {
        count: n,
        latest_time: record
            .time
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default(),
        count_line: format!(
            "SoftwareDistribution.log has {n} duplicate-key record{} since {} (KB 954960's failure of the client web service)",
            if n == 1 { "" } else { "s" },
            since.format("%Y-%m-%d %H:%M UTC")
        ),
        latest,
    })
}

fn short_id(update: &str) -> &str {
    update.split('-').next().unwrap_or(update)
}

fn group_name(id: &str) -> String {
    if id.eq_ignore_ascii_case(ALL_COMPUTERS_GROUP_ID) {
        format!("All Computers ({})", id.to_ascii_uppercase())
    } else {
        format!("target group {id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPDATE: &str = "D359F493-0AAD-43FA-AF5C-6763326CD98F";

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn since() -> DateTime<Utc> {
        t("2026-11-17T09:00:00Z")
    }

    fn record(time: &str) -> String {
        [
            &format!("{time}\tError\tw3wp.12\tClientImplementation.SyncUpdates\tSystem.ArgumentException: Item has already been added. Key in dictionary: '8862'  Key being added: '8862'"),
            "   at System.Collections.Hashtable.Insert(Object key, Object nvalue, Boolean add)",
            "   at Microsoft.UpdateServices.Internal.ClientImplementation.GetSyncInfo(DataAccess dataAccess)",
        ]
        .join("\r\n")
    }

    fn observed(version: WsusVersion, update: UpdateView, records: Vec<String>) -> Observed {
        Observed {
            version: Some(version),
            version_string: match version {
                WsusVersion::Rtm => "3.0.6000.273",
                WsusVersion::Sp1 => "3.1.6001.65",
                WsusVersion::Sp2 => "3.2.7600.226",
            }
            .into(),
            dll_version: (version == WsusVersion::Sp1).then(|| "3.1.6001.65".to_string()),
            update_id: UPDATE.into(),
            update,
            softdist_records: records,
        }
    }

    fn consistent() -> UpdateView {
        UpdateView::Synced {
            declined: true,
            duplicated_groups: Vec::new(),
        }
    }

    #[test]
    fn duplicated_approvals_name_the_group() {
        let o = observed(
            WsusVersion::Rtm,
            UpdateView::Synced {
                declined: false,
                duplicated_groups: vec![ALL_COMPUTERS_GROUP_ID.to_ascii_lowercase()],
            },
            Vec::new(),
        );
        let a = assess(&o, since(), FIXED_CLIENT_DLL);
        assert_eq!(a.affected, Affected::Affected);
        assert_eq!(
            a.evidence,
            [
                "update D359F493 is approved more than once for All Computers (A0A08746-4DBE-4A37-9ADF-9E7652C0B421) (the inconsistent approvals of KB 954960)"
            ]
        );
    }

    #[test]
    fn a_duplicate_key_record_in_the_window_is_quoted_with_its_time() {
        let o = observed(
            WsusVersion::Rtm,
            consistent(),
            vec![
                record("2026-11-20 08:00:00.000 UTC"),
                record("2026-11-24 08:31:02.123 UTC"),
            ],
        );
        let a = assess(&o, since(), FIXED_CLIENT_DLL);
        assert_eq!(a.affected, Affected::Affected);
        assert_eq!(
            a.evidence[0],
            "SoftwareDistribution.log has 2 duplicate-key records since 2026-11-17 09:00 UTC (KB 954960's failure of the client web service)"
        );
        assert_eq!(
            a.evidence[1],
            "latest: 2026-11-24 08:31:02.123 UTC Error w3wp.12 ClientImplementation.SyncUpdates System.ArgumentException: Item has already been added. Key in dictionary: '8862'  Key being added: '8862'"
        );
        assert_eq!(
            a.evidence[2],
            "the API shows consistent approvals now: if the server was repaired after 2026-11-24 08:31:02 UTC, these records predate the repair (narrow the window with --since)"
        );
    }

    #[test]
    fn the_fault_id_is_quoted_when_the_log_links_it() {
        let mut r = record("2026-11-24 08:31:02.123 UTC");
        r.push_str("\n2026-11-24 08:31:02.123 UTC\tWarning\tw3wp.12\tSoapUtilities.CreateException\tThrowException: actor = http://wsus/ClientWebService/client.asmx, ID=C0A7445F-B989-43FA-AC20-11F8CA65FA8C, ErrorCode=InternalServerError, Message=, Client=?");
        let o = observed(WsusVersion::Rtm, consistent(), vec![r]);
        let a = assess(&o, since(), FIXED_CLIENT_DLL);
        assert!(
            a.evidence[1].ends_with("(fault ID c0a7445f-b989-43fa-ac20-11f8ca65fa8c)"),
            "{:?}",
            a.evidence
        );
    }

    #[test]
    fn records_before_the_window_and_other_errors_do_not_count() {
        let other = "2026-11-24 08:00:00.000 UTC\tError\tWsusService.13\tCatalogSyncAgentCore.ExecuteSyncProtocol\tSystem.ArgumentException: Item has already been added. Key in dictionary: 'x'".to_string();
        let o = observed(
            WsusVersion::Rtm,
            consistent(),
            vec![record("2026-11-10 08:00:00.000 UTC"), other],
        );
        let a = assess(&o, since(), FIXED_CLIENT_DLL);
        assert_eq!(a.affected, Affected::NotAffected);
        assert_eq!(
            a.evidence,
            [
                "update D359F493 is declined; no target group holds two approvals of it, and SoftwareDistribution.log has no duplicate-key record since 2026-11-17 09:00 UTC"
            ]
        );
    }

    #[test]
    fn sp1_with_the_fixed_dll_is_not_affected_whatever_the_log_says() {
        let mut o = observed(
            WsusVersion::Sp1,
            consistent(),
            vec![record("2026-11-24 08:31:02.123 UTC")],
        );
        o.dll_version = Some(FIXED_CLIENT_DLL.into());
        let a = assess(&o, since(), FIXED_CLIENT_DLL);
        assert_eq!(a.affected, Affected::NotAffected);
        assert_eq!(
            a.evidence[0],
            "hotfix 954960 is installed: the client web service DLL is 3.1.6001.66"
        );
        assert_eq!(
            a.evidence[1],
            "SoftwareDistribution.log still has 1 duplicate-key record since 2026-11-17 09:00 UTC, the latest at 2026-11-24 08:31:02 UTC: from before the hotfix, unless it was installed wrongly"
        );
    }

    #[test]
    fn sp1_with_the_old_dll_and_the_symptom_says_why() {
        let o = observed(
            WsusVersion::Sp1,
            consistent(),
            vec![record("2026-11-24 08:31:02.123 UTC")],
        );
        let a = assess(&o, since(), FIXED_CLIENT_DLL);
        assert_eq!(a.affected, Affected::Affected);
        assert_eq!(
            a.evidence.last().unwrap(),
            "the client web service DLL is 3.1.6001.65, not 3.1.6001.66: hotfix 954960 is not installed, or installed wrongly"
        );
    }

    #[test]
    fn an_update_that_never_synced_is_not_affected() {
        let a = assess(
            &observed(WsusVersion::Rtm, UpdateView::NotSynced, Vec::new()),
            since(),
            FIXED_CLIENT_DLL,
        );
        assert_eq!(a.affected, Affected::NotAffected);
        assert_eq!(
            a.evidence,
            ["update D359F493 (Office 2003 SP1) never synchronised to this server"]
        );
    }

    #[test]
    fn sp2_contains_the_fix() {
        let a = assess(
            &observed(WsusVersion::Sp2, consistent(), Vec::new()),
            since(),
            FIXED_CLIENT_DLL,
        );
        assert_eq!(a.affected, Affected::NotAffected);
        assert!(a.evidence[0].starts_with("WSUS 3.0 SP2 (3.2.7600.226)"));
    }

    #[test]
    fn unreadable_facts_are_unknown_with_the_error() {
        let a = unreadable("127.0.1.2:5985: connection refused");
        assert_eq!(a.affected, Affected::Unknown);
        assert_eq!(
            a.evidence,
            ["facts could not be read: 127.0.1.2:5985: connection refused"]
        );
    }

    #[test]
    fn long_lines_are_cut() {
        let long = format!(
            "2026-11-24 08:31:02.123 UTC\tError\tw3wp.12\tClientImplementation.SyncUpdates\tSystem.ArgumentException: Item has already been added. Key in dictionary: '{0}'  Key being added: '{0}'",
            "9".repeat(400)
        );
        let a = assess(
            &observed(WsusVersion::Rtm, consistent(), vec![long]),
            since(),
            FIXED_CLIENT_DLL,
        );
        assert!(a.evidence[1].ends_with("..."));
        assert!(a.evidence[1].chars().count() < QUOTE_MAX + 20);
    }
}
