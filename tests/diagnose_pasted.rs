//! `wsusfix diagnose` on log text as admins paste it: the article's own sample in the forms its
//! localized pages print, excerpts from forums, mail and markdown, lone lines, excerpts that
//! begin mid-search; and, as properties, that no excerpt of another failure is called the
//! symptom however a paste mangles it, while KB 954960's own lines are found however it does.

use clap::Parser;
use proptest::prelude::*;
use wsusfix::cli::diagnose::{DiagnoseArgs, run};
use wsusfix::core::diagnose::{Grade, LogInput, diagnose};
use wsusfix::core::logs::kind;
use wsusfix::exit;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: DiagnoseArgs,
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn cli(args: &[&str]) -> Run {
    let cli = Cli::try_parse_from(std::iter::once("diagnose").chain(args.iter().copied()))
        .expect("arguments parse");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(&cli.args, &mut out, &mut err);
    Run {
        code,
        out: String::from_utf8(out).expect("stdout is UTF-8"),
        err: String::from_utf8(err).expect("stderr is UTF-8"),
    }
}

fn pasted(name: &str) -> String {
    format!("tests/fixtures/logs/pasted/{name}")
}

fn json(files: &[String]) -> (i32, serde_json::Value) {
    let mut args: Vec<&str> = files.iter().map(String::as_str).collect();
    args.extend(["--format", "json"]);
    let run = cli(&args);
    assert_eq!(run.err, "", "{files:?}");
    (run.code, serde_json::from_str(&run.out).expect("JSON"))
}

const ARTICLE_FAULT_ID: &str = "c0a7445f-b989-43fa-ac20-11f8ca65fa8c";

/// What one pasted file must give.
struct Expect {
    file: &'static str,
    kind: &'static str,
    grade: &'static str,
    placeholder: Option<&'static str>,
    fault_ids: &'static [&'static str],
    /// The forms some lenient line must show.
    forms: &'static [&'static str],
}

const EXPECTED: &[Expect] = &[
    Expect {
        file: "article-en.txt",
        kind: "windowsupdate",
        grade: "confirmed",
        placeholder: Some("Date Time"),
        fault_ids: &[ARTICLE_FAULT_ID],
        forms: &["placeholder-time"],
    },
    Expect {
        file: "article-cs.txt",
        kind: "windowsupdate",
        grade: "confirmed",
        placeholder: Some("Datum a čas"),
        fault_ids: &[ARTICLE_FAULT_ID],
        forms: &["placeholder-time"],
    },
    Expect {
        file: "article-no.txt",
        kind: "windowsupdate",
        grade: "confirmed",
        placeholder: Some("Dato Klokkeslett"),
        fault_ids: &[ARTICLE_FAULT_ID],
        forms: &["placeholder-time"],
    },
    Expect {
        file: "article-de.txt",
        kind: "windowsupdate",
        grade: "confirmed",
        placeholder: Some("Date Time"),
        fault_ids: &[ARTICLE_FAULT_ID],
        forms: &["placeholder-time", "run-together"],
    },
    Expect {
        file: "article-pl.txt",
        kind: "windowsupdate",
        grade: "confirmed",
        placeholder: Some("Data Godzina"),
        fault_ids: &[ARTICLE_FAULT_ID],
        forms: &["placeholder-time"],
    },
    Expect {
        file: "article-en-cut.txt",
        kind: "windowsupdate",
        grade: "likely",
        placeholder: Some("Date Time"),
        fault_ids: &[],
        forms: &["placeholder-time"],
    },
    Expect {
        file: "article-en-server.txt",
        kind: "softwaredistribution",
        grade: "confirmed",
        placeholder: Some("Date Time"),
        fault_ids: &[ARTICLE_FAULT_ID],
        forms: &["placeholder-time"],
    },
    Expect {
        file: "article-cs-server.txt",
        kind: "softwaredistribution",
        grade: "confirmed",
        placeholder: Some("Datum a čas"),
        fault_ids: &[ARTICLE_FAULT_ID],
        forms: &["placeholder-time"],
    },
    Expect {
        file: "lone-syncupdates-line.txt",
        kind: "windowsupdate",
        grade: "likely",
        placeholder: None,
        fault_ids: &[],
        forms: &["no-prefix"],
    },
    Expect {
        file: "fault-only-quoted.txt",
        kind: "windowsupdate",
        grade: "likely",
        placeholder: None,
        fault_ids: &[ARTICLE_FAULT_ID],
        forms: &["quoted", "no-prefix"],
    },
    Expect {
        file: "forum-dblayer.txt",
        kind: "softwaredistribution",
        grade: "not-found",
        placeholder: Some("<DATE> <TIME>"),
        fault_ids: &[],
        forms: &["placeholder-time"],
    },
    Expect {
        file: "forum-dblayer-split.txt",
        kind: "softwaredistribution",
        grade: "not-found",
        placeholder: None,
        fault_ids: &[],
        forms: &["placeholder-only", "no-time"],
    },
    Expect {
        file: "forum-bbcode.txt",
        kind: "windowsupdate",
        grade: "confirmed",
        placeholder: None,
        fault_ids: &["5e0b7c31-92a4-4d8f-b1e6-3fa2c9d47e08"],
        forms: &["markup"],
    },
    Expect {
        file: "email-quoted.txt",
        kind: "windowsupdate",
        grade: "confirmed",
        placeholder: None,
        fault_ids: &["3f2b9c1e-5d47-4a08-9e61-7c0d2a4b8f15"],
        forms: &["quoted", "run-together"],
    },
    Expect {
        file: "wrapped-mail.txt",
        kind: "windowsupdate",
        grade: "confirmed",
        placeholder: Some("Date Time"),
        fault_ids: &[ARTICLE_FAULT_ID],
        forms: &["placeholder-time"],
    },
    Expect {
        file: "wrapped-server.txt",
        kind: "softwaredistribution",
        grade: "confirmed",
        placeholder: Some("Date Time"),
        fault_ids: &[ARTICLE_FAULT_ID],
        forms: &["placeholder-time"],
    },
    Expect {
        file: "markdown.md",
        kind: "windowsupdate",
        grade: "confirmed",
        placeholder: None,
        fault_ids: &["9d41e6b2-0c7a-4f35-a8d1-6b2e90f3c417"],
        forms: &["markup"],
    },
];

#[test]
fn every_pasted_form_is_read_and_graded() {
    for e in EXPECTED {
        let (code, doc) = json(&[pasted(e.file)]);
        let file = &doc["files"][0];
        assert_eq!(file["kind"], e.kind, "{}", e.file);
        assert_eq!(file["grade"], e.grade, "{}: {file:#}", e.file);
        assert_eq!(doc["grade"], e.grade, "{}", e.file);
        let symptom = matches!(e.grade, "confirmed" | "likely");
        assert_eq!(file["symptom"], symptom, "{}", e.file);
        assert_eq!(
            code,
            if symptom { exit::FINDINGS } else { exit::OK },
            "{}",
            e.file
        );
        assert_eq!(file["reading"], "lenient", "{}", e.file);
        assert_eq!(
            file["placeholder"].as_str(),
            e.placeholder,
            "{}: placeholder",
            e.file
        );
        let ids: Vec<&str> = file["fault_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(ids, e.fault_ids, "{}", e.file);
        let forms: Vec<&str> = file["lenient_lines"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|l| l["forms"].as_array().unwrap())
            .map(|f| f.as_str().unwrap())
            .collect();
        for form in e.forms {
            assert!(forms.contains(form), "{}: {form} in {forms:?}", e.file);
        }
        // Evidence quotes the lines as written, by their numbers in the file.
        let text = std::fs::read_to_string(pasted(e.file)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for ev in file["evidence"].as_array().unwrap() {
            let n = ev["line"].as_u64().unwrap() as usize;
            assert_eq!(ev["text"], lines[n - 1], "{}", e.file);
        }
        if symptom {
            assert!(
                !file["evidence"].as_array().unwrap().is_empty(),
                "{}",
                e.file
            );
        }
    }
}

#[test]
fn the_article_s_sample_in_every_language_names_the_same_failure() {
    for file in [
        "article-en.txt",
        "article-cs.txt",
        "article-no.txt",
        "article-de.txt",
        "article-pl.txt",
    ] {
        let (_, doc) = json(&[pasted(file)]);
        let last = &doc["files"][0]["last_detection"];
        assert_eq!(last["outcome"], "failed-this-bug", "{file}");
        assert_eq!(last["pattern"], "complete", "{file}");
        assert_eq!(last["fault_id"], ARTICLE_FAULT_ID, "{file}");
        assert!(
            last["server_url"]
                .as_str()
                .unwrap()
                .ends_with("/ClientWebService/client.asmx"),
            "{file}"
        );
        assert_eq!(doc["files"][0]["detections"], 1, "{file}");
    }
}

#[test]
fn the_german_page_runs_nine_records_onto_two_lines() {
    let (_, doc) = json(&[pasted("article-de.txt")]);
    let file = &doc["files"][0];
    assert_eq!(
        file["lenient_lines"],
        serde_json::json!([
            {"line": 1, "forms": ["placeholder-time", "run-together"]},
            {"line": 2, "forms": ["placeholder-time", "run-together"]},
        ])
    );
    let evidence: Vec<u64> = file["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(evidence, [1, 2], "each line quoted once");
}

#[test]
fn the_text_report_says_which_lines_were_read_leniently_and_how_sure_it_is() {
    let run = cli(&[&pasted("article-cs.txt")]);
    assert_eq!(run.code, exit::FINDINGS);
    assert!(run.out.contains(
        "note: read as pasted text: placeholder in place of the date and time (\"Datum a čas\") on lines 2-10"
    ));
    assert!(run.out.starts_with(
        "== tests/fixtures/logs/pasted/article-cs.txt (WindowsUpdate.log)\nKB 954960 confirmed: "
    ));
    let run = cli(&[&pasted("lone-syncupdates-line.txt")]);
    assert_eq!(run.code, exit::FINDINGS);
    assert!(run.out.contains("KB 954960 likely: the last detection failed with \"SyncUpdates failure, error = 0x8024400E, soap client error = 7, soap error code = 400\", but the SOAP fault lines that confirm it"));
    assert!(
        run.out
            .ends_with("KB 954960 symptom found in 1 of 1 file (likely in 1).\n")
    );
    let run = cli(&[&pasted("fault-only-quoted.txt")]);
    assert!(run.out.contains("KB 954960 likely: the SOAP fault says InternalServerError in SyncUpdates, but the failure line before it"));
    assert!(
        run.out
            .contains("note: give the server's SoftwareDistribution.log with this file")
    );
}

/// Whole files stay whole files: nothing of them is read leniently.
#[test]
fn whole_files_are_still_read_strictly() {
    for name in [
        "client-kb954960.log",
        "client-kb954960-spaces.log",
        "client-fixed-after-retry.log",
        "client-other-0x8024400e.log",
        "server-kb954960.log",
        "server-other-errors.log",
    ] {
        let (_, doc) = json(&[format!("tests/fixtures/logs/{name}")]);
        assert_eq!(doc["files"][0]["reading"], "strict", "{name}");
        assert_eq!(
            doc["files"][0]["lenient_lines"],
            serde_json::json!([]),
            "{name}"
        );
    }
}

#[test]
fn a_likely_client_is_confirmed_by_the_server_log_with_its_fault_id() {
    let (code, doc) = json(&[
        pasted("fault-only-quoted.txt"),
        pasted("article-en-server.txt"),
    ]);
    assert_eq!(code, exit::FINDINGS);
    assert_eq!(doc["files"][0]["grade"], "confirmed");
    assert_eq!(doc["files"][1]["grade"], "confirmed");
    let m = &doc["matches"][0];
    assert_eq!(m["fault_id"], ARTICLE_FAULT_ID);
    assert_eq!(m["kb954960"], true);
    assert_eq!(m["duplicate_key"]["key"], "8862");
    assert_eq!(m["server"]["line"], 11);
    assert_eq!(
        m["server"]["time"],
        serde_json::Value::Null,
        "a placeholder has no time"
    );
    let notes = doc["files"][0]["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n
            .as_str()
            .unwrap()
            .starts_with("confirmed by fault ID c0a7445f")),
        "{notes:?}"
    );
    assert!(
        !notes
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("give the server's")),
        "no advice to do what was done"
    );
    // The article's two samples find each other the same way, whole or wrapped by a mail client.
    for (client, server) in [
        ("article-cs.txt", "article-cs-server.txt"),
        ("wrapped-mail.txt", "wrapped-server.txt"),
    ] {
        let (_, doc) = json(&[pasted(client), pasted(server)]);
        assert_eq!(doc["matches"][0]["kb954960"], true, "{client} {server}");
        assert_eq!(doc["matches"][0]["duplicate_key"]["key"], "8862");
    }
}

#[test]
fn an_excerpt_that_begins_mid_search_is_one_detection_named_by_its_own_code() {
    for (file, grade, code) in [
        (
            "mid-search-0x80244010.txt",
            "other-failure",
            Some("0x80244010"),
        ),
        (
            "mid-search-name-not-resolved.txt",
            "other-failure",
            Some("0x8024402C"),
        ),
        ("mid-search-kb954960.txt", "confirmed", None),
    ] {
        let (_, doc) = json(&[pasted(file)]);
        let f = &doc["files"][0];
        assert_eq!(f["grade"], grade, "{file}");
        assert_eq!(f["detections"], 1, "{file}: {f:#}");
        assert_eq!(f["last_detection"]["code"].as_str(), code, "{file}");
    }
    // The transport's own code is underneath, not the failure's.
    let (_, doc) = json(&[pasted("mid-search-name-not-resolved.txt")]);
    let codes = &doc["files"][0]["other_failures"];
    assert_eq!(codes.as_array().unwrap().len(), 1);
    assert_eq!(codes[0]["code"], "0x8024402C");
}

// ---------------------------------------------------------------------------------------------
// Properties: pasted excerpts of other failures are never the symptom; pasted excerpts of
// KB 954960's failure always are.

/// Logs and excerpts of failures that are not KB 954960: whole client logs, a server log of
/// other errors, pasted excerpts, and real Windows 10 logs that fail with near codes.
const OTHER_FAILURES: [&str; 14] = [
    "client-other-0x80244010.log",
    "client-other-0x80072ee2.log",
    "client-other-0x8024400d.log",
    "client-other-0x8024400e.log",
    "client-other-0x80244007.log",
    "client-other-0x8024000e.log",
    "client-other-0x8024401b-proxy.log",
    "server-other-errors.log",
    "pasted/mid-search-0x80244010.txt",
    "pasted/mid-search-name-not-resolved.txt",
    "pasted/forum-dblayer.txt",
    "pasted/forum-dblayer-split.txt",
    "real/12-clean-win10-dashdate-8024402f.log",
    "real/13-clean-win10-bom-8024000e.log",
];

fn fixture_lines(name: &str) -> Vec<String> {
    std::fs::read_to_string(format!("tests/fixtures/logs/{name}"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The prefix fields of a whole-file line (client: date, time, PID, TID, component; server:
/// date, time, `UTC`, level, source) and the rest, or `None` for a line without them.
fn split_prefix(line: &str) -> Option<(Vec<&str>, &str)> {
    let mut fields = Vec::new();
    let mut rest = line;
    for _ in 0..5 {
        rest = rest.trim_start_matches([' ', '\t']);
        let end = rest.find([' ', '\t'])?;
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let rest = rest.strip_prefix([' ', '\t']).unwrap_or(rest);
    let dated = fields[0].len() == 10 && fields[0].as_bytes()[4] == b'-';
    dated.then_some((fields, rest))
}

/// What a paste does to the prefix of a line.
#[derive(Debug, Clone)]
enum Prefix {
    Keep,
    /// Tabs become spaces, as on a web page.
    Spaces,
    /// Words in place of the date and time.
    Placeholder(&'static str),
    /// The date and time dropped.
    NoTime,
    /// Only the component (client) or nothing (server) left before the message.
    ComponentOnly,
    /// The whole prefix dropped.
    MessageOnly,
}

/// What a paste puts around a line.
#[derive(Debug, Clone)]
enum Wrap {
    None,
    Quote,
    BbCode,
    Backticks,
    MarkdownEscapes,
    NonBreakingSpaces,
}

const PLACEHOLDERS: [&str; 6] = [
    "Date Time",
    "Datum a čas",
    "Dato Klokkeslett",
    "Data Godzina",
    "<DATE> <TIME>",
    "Datum Uhrzeit",
];

fn prefix_strategy() -> impl Strategy<Value = Prefix> {
    prop_oneof![
        Just(Prefix::Keep),
        Just(Prefix::Spaces),
        proptest::sample::select(PLACEHOLDERS.to_vec()).prop_map(Prefix::Placeholder),
        Just(Prefix::NoTime),
        Just(Prefix::ComponentOnly),
        Just(Prefix::MessageOnly),
    ]
}

fn wrap_strategy() -> impl Strategy<Value = Wrap> {
    prop_oneof![
        3 => Just(Wrap::None),
        1 => Just(Wrap::Quote),
        1 => Just(Wrap::BbCode),
        1 => Just(Wrap::Backticks),
        1 => Just(Wrap::MarkdownEscapes),
        1 => Just(Wrap::NonBreakingSpaces),
    ]
}

fn apply_prefix(line: &str, prefix: &Prefix) -> String {
    let Some((fields, rest)) = split_prefix(line) else {
        return line.trim_end().to_string();
    };
    let server = fields[2] == "UTC";
    let tail = fields[2..].join(" ");
    match prefix {
        Prefix::Keep => line.to_string(),
        Prefix::Spaces => format!("{} {}", fields.join(" "), rest),
        Prefix::Placeholder(words) => format!("{words} {tail} {rest}"),
        Prefix::NoTime => format!("{tail} {rest}"),
        Prefix::ComponentOnly if server => rest.to_string(),
        Prefix::ComponentOnly => format!("{} {rest}", fields[4]),
        Prefix::MessageOnly => rest.to_string(),
    }
}

fn apply_wrap(line: String, wrap: &Wrap) -> String {
    match wrap {
        Wrap::None => line,
        Wrap::Quote => format!("> {line}"),
        Wrap::BbCode => format!("[code]{line}[/code]"),
        Wrap::Backticks => format!("`{line}`"),
        Wrap::MarkdownEscapes => line.replace('*', "\\*").replace('_', "\\_"),
        Wrap::NonBreakingSpaces => line.replace(' ', "\u{a0}"),
    }
}

/// Joins runs of `group` lines into one, as a page that drops line ends shows them.
fn run_together(lines: Vec<String>, group: usize) -> Vec<String> {
    lines
        .chunks(group.max(1))
        .map(|chunk| chunk.join(" "))
        .collect()
}

/// The grade `diagnose` gives `text`, or `None` when it is refused as no log of ours.
fn grade_of(text: &str) -> Option<Grade> {
    let detected = kind::examine(text).ok()?;
    let d = diagnose(&[LogInput {
        path: "pasted.txt",
        kind: detected.kind,
        text,
    }]);
    Some(d.files[0].grade)
}

/// A pasted excerpt of `lines`: a window, each line's prefix and wrapping chosen apart, then
/// runs of lines joined.
fn excerpt(
    lines: &[String],
    window: (usize, usize),
    per_line: &[(Prefix, Wrap)],
    group: usize,
) -> String {
    let start = window.0 % lines.len();
    let end = (start + window.1.max(1)).min(lines.len());
    let pasted: Vec<String> = lines[start..end]
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let (prefix, wrap) = &per_line[i % per_line.len()];
            apply_wrap(apply_prefix(line, prefix), wrap)
        })
        .collect();
    run_together(pasted, group).join("\n")
}

proptest! {

    /// No excerpt of another failure is called the symptom: prefixes removed or replaced by
    /// placeholders, lines quoted, marked up and run together, each line its own way.
    #[test]
    fn no_excerpt_of_another_failure_is_the_symptom(
        which in 0..OTHER_FAILURES.len(),
        window in (0usize..200, 1usize..120),
        per_line in proptest::collection::vec((prefix_strategy(), wrap_strategy()), 1..8),
        group in prop_oneof![3 => Just(1usize), 1 => 2usize..7],
    ) {
        let lines = fixture_lines(OTHER_FAILURES[which]);
        let text = excerpt(&lines, window, &per_line, group);
        if let Some(grade) = grade_of(&text) {
            prop_assert!(
                !grade.is_symptom(),
                "{} read as {grade:?}:\n{text}",
                OTHER_FAILURES[which]
            );
        }
    }

    /// The same pastes of KB 954960's failure find it, when the excerpt holds the failure line
    /// or the fault that says InternalServerError in SyncUpdates: a page prints every line of
    /// an excerpt the same way.
    #[test]
    fn every_excerpt_of_kb954960_s_failure_is_the_symptom(
        fixture in proptest::sample::select(vec!["client-kb954960.log", "client-kb954960-spaces.log"]),
        before in 0usize..12,
        after in 0usize..12,
        prefix in prefix_strategy(),
        wrap in wrap_strategy(),
        group in prop_oneof![2 => Just(1usize), 1 => 2usize..7],
    ) {
        let lines = fixture_lines(fixture);
        let failure = lines
            .iter()
            .position(|l| l.contains("SyncUpdates failure, error = 0x8024400E"))
            .unwrap();
        let id = lines.iter().position(|l| l.contains("ID:")).unwrap();
        let start = failure.saturating_sub(before);
        let end = (id + 1 + after).min(lines.len());
        let text = excerpt(&lines, (start, end - start), &[(prefix.clone(), wrap.clone())], group);
        let grade = grade_of(&text);
        prop_assert_eq!(grade, Some(Grade::Confirmed), "{:?} {:?} {}:\n{}", prefix, wrap, group, text);
    }

    /// Cut before its fault lines, the failure line is `likely`; the fault alone, `likely` too.
    #[test]
    fn a_part_of_kb954960_s_failure_is_likely(
        prefix in prefix_strategy(),
        wrap in wrap_strategy(),
        before in 0usize..6,
        fault_only in any::<bool>(),
    ) {
        let lines = fixture_lines("client-kb954960.log");
        let failure = lines
            .iter()
            .position(|l| l.contains("SyncUpdates failure, error = 0x8024400E"))
            .unwrap();
        let id = lines.iter().position(|l| l.contains("ID:")).unwrap();
        let window = if fault_only {
            let error_code = lines.iter().position(|l| l.contains("ErrorCode:")).unwrap();
            (error_code, id + 1 - error_code)
        } else {
            (failure.saturating_sub(before), before.min(failure) + 1)
        };
        let text = excerpt(&lines, window, &[(prefix.clone(), wrap.clone())], 1);
        prop_assert_eq!(grade_of(&text), Some(Grade::Likely), "{:?} {:?}:\n{}", prefix, wrap, text);
    }
}
