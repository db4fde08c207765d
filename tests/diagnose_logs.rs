//! The pure log parsers and the detection verdict on the fixture logs.

use wsusfix::core::logs::detection::{DetectionOutcome, NotRunReason, summarize_detection};
use wsusfix::core::logs::hresult::HResult;
use wsusfix::core::logs::kind::{self, LogKind};
use wsusfix::core::logs::server::{self, ServerEventKind};
use wsusfix::core::logs::{softdist, windowsupdate};

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("tests/fixtures/logs/{name}")).expect("fixture")
}

#[test]
fn kinds_of_the_fixtures() {
    for (name, expected) in [
        ("client-kb954960.log", Some(LogKind::WindowsUpdate)),
        ("client-kb954960-spaces.log", Some(LogKind::WindowsUpdate)),
        ("client-detection-not-run.log", Some(LogKind::WindowsUpdate)),
        ("server-kb954960.log", Some(LogKind::SoftwareDistribution)),
        (
            "server-other-errors.log",
            Some(LogKind::SoftwareDistribution),
        ),
        ("windows10-etw.log", Some(LogKind::WindowsUpdateEtw)),
        ("article-placeholders.txt", Some(LogKind::WindowsUpdate)),
        ("empty.log", None),
    ] {
        assert_eq!(kind::detect(&read(name)), expected, "{name}");
    }
}

#[test]
fn a_windows_10_log_is_not_read_as_either_old_format() {
    let text = read("windows10-etw.log");
    assert!(text.contains("8024400E"));
    assert_eq!(windowsupdate::parse(&text), vec![]);
    assert_eq!(softdist::parse(&text), vec![]);
    assert_eq!(
        summarize_detection(&text).outcome,
        DetectionOutcome::NotRun {
            reason: NotRunReason::NoDetectionSeen
        }
    );
}

#[test]
fn tab_separated_client_log() {
    let text = read("client-kb954960.log");
    let records = windowsupdate::parse(&text);
    assert_eq!(records.len(), text.lines().count(), "one record per line");
    assert!(records.iter().all(|r| r.continuation.is_empty()));
    let offset = records[0].utc_offset.map(|o| o.local_minus_utc());
    assert_eq!(offset, Some(3600), "tz: +0100");
    // REPORT EVENT text holds tabs of its own: only the first five fields are split.
    let report = records.last().unwrap();
    assert_eq!(report.component, "Report");
    assert!(report.text.starts_with("REPORT EVENT: {8A5C1E36"));
    assert_eq!(report.text.matches('\t').count(), 11);
}

#[test]
fn space_separated_copy_with_wrapped_lines() {
    let text = read("client-kb954960-spaces.log");
    let records = windowsupdate::parse(&text);
    assert_eq!(records.len(), text.lines().count() - 2);
    let wrapped: Vec<(usize, Vec<usize>)> = records
        .iter()
        .filter(|r| !r.continuation.is_empty())
        .map(|r| (r.line, r.continuation.iter().map(|l| l.number).collect()))
        .collect();
    assert_eq!(wrapped, vec![(7, vec![8]), (9, vec![10])]);
    assert_eq!(records[0].pid, Some(788));
    assert_eq!(records[0].tid, Some(0xee4));
    assert_eq!(records[0].utc_offset, None, "no Logging initialized record");
    assert_eq!(
        records[6].full_text(),
        "+ ServiceId = {3DA21691-E39D-4DA6-8A4B-B43877BCB1B7}, Server URL = \
         http://wsus-branch.contoso.local/ClientWebService/client.asmx"
    );
}

#[test]
fn verdicts_on_whole_client_logs() {
    let fault = |id: &str| DetectionOutcome::FailedThisBug {
        fault_id: Some(id.to_string()),
    };
    let other = |code: u32| DetectionOutcome::FailedOther {
        code: HResult(code),
    };
    for (name, expected) in [
        (
            "client-kb954960.log",
            fault("3f2b9c1e-5d47-4a08-9e61-7c0d2a4b8f15"),
        ),
        (
            "client-kb954960-spaces.log",
            fault("a81e40c2-6b3d-4f9a-8c25-d094e7f1b306"),
        ),
        (
            "client-fixed-after-retry.log",
            DetectionOutcome::Succeeded {
                updates: 4,
                categories: 52,
            },
        ),
        ("client-other-0x80244010.log", other(0x80244010)),
        ("client-other-0x80072ee2.log", other(0x80072EE2)),
        ("client-other-0x8024400d.log", other(0x8024400D)),
        ("client-other-0x8024400e.log", other(0x8024400E)),
        (
            "client-detection-not-run.log",
            DetectionOutcome::NotRun {
                reason: NotRunReason::DetectNowRejected,
            },
        ),
    ] {
        assert_eq!(summarize_detection(&read(name)).outcome, expected, "{name}");
    }
}

/// Verifying a client: the lines written since each `wuauclt /detectnow`.
#[test]
fn verdicts_on_the_lines_since_a_detectnow() {
    let text = read("client-fixed-after-retry.log");
    let lines: Vec<&str> = text.lines().collect();
    let triggers: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("Triggering AU detection through DetectNow API"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(triggers.len(), 2);
    let since = |from: usize, to: usize| lines[from..to].join("\r\n");

    // The first detection after the repair still fails (the article warns of it).
    let first = summarize_detection(&since(triggers[0], triggers[1]));
    assert_eq!(
        first.outcome,
        DetectionOutcome::FailedThisBug {
            fault_id: Some("e4b7a9d2-3c51-4f06-b8e3-91d0c6a2f574".into())
        }
    );
    assert_eq!(
        first.server_url.as_deref(),
        Some("http://wsus01/ClientWebService/client.asmx")
    );
    let start = first.evidence[0];
    assert!(
        lines[triggers[0] + start - 1].contains("** START **"),
        "numbered from the window"
    );

    // The second succeeds.
    let second = summarize_detection(&since(triggers[1], lines.len()));
    assert_eq!(
        second.outcome,
        DetectionOutcome::Succeeded {
            updates: 4,
            categories: 52
        }
    );
    let found = *second.evidence.iter().rev().nth(1).unwrap();
    assert!(lines[triggers[1] + found - 1].contains("Found 4 updates and 52 categories"));

    // Before any search starts, the detection is pending.
    let pending = summarize_detection(&since(triggers[1], triggers[1] + 2));
    assert!(matches!(
        pending.outcome,
        DetectionOutcome::Inconclusive { .. }
    ));
}

#[test]
fn server_log_events() {
    let text = read("server-kb954960.log");
    let records = softdist::parse(&text);
    let stack: Vec<usize> = records[4].continuation.iter().map(|l| l.number).collect();
    assert_eq!(stack, (6..=11).collect::<Vec<_>>());
    let events = server::events(&records);
    let duplicates: Vec<usize> = events
        .iter()
        .filter(|e| matches!(e.kind, ServerEventKind::DuplicateKey { .. }))
        .map(|e| e.line)
        .collect();
    assert_eq!(duplicates, vec![5, 17]);
    let faults: Vec<(String, Option<usize>, bool)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            ServerEventKind::FaultRaised {
                id,
                error_line,
                duplicate_key,
                ..
            } => Some((id[..8].to_string(), *error_line, *duplicate_key)),
            _ => None,
        })
        .collect();
    assert_eq!(
        faults,
        vec![
            ("a81e40c2".to_string(), Some(5), true),
            ("19f6b3e8".to_string(), Some(14), false),
            ("3f2b9c1e".to_string(), Some(17), true),
        ]
    );
    let other = server::events(&softdist::parse(&read("server-other-errors.log")));
    assert!(
        other
            .iter()
            .all(|e| !matches!(e.kind, ServerEventKind::DuplicateKey { .. }))
    );
}
