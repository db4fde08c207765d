//! `wsusfix diagnose` end to end through `cli::diagnose::run`: the reports (snapshots), the JSON
//! document, the encodings and compressions it reads, and every exit code.

use std::io::Write as _;
use std::path::Path;

use clap::Parser;
use wsusfix::cli::diagnose::{DiagnoseArgs, run};
use wsusfix::exit;

/// `wsusfix diagnose` as the top-level command line will mount it.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: DiagnoseArgs,
}

/// What one run printed and returned.
struct Run {
    code: i32,
    out: String,
    err: String,
}

/// Runs `diagnose` with `args` (fixture names are resolved by [`fixture`]).
fn diagnose(args: &[&str]) -> Run {
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

fn fixture(name: &str) -> String {
    format!("tests/fixtures/logs/{name}")
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.out).expect("stdout is JSON")
}

const BOTH_SIDES: [&str; 3] = [
    "client-kb954960.log",
    "client-kb954960-spaces.log",
    "server-kb954960.log",
];

fn both_sides(format: Option<&str>) -> Run {
    let files: Vec<String> = BOTH_SIDES.iter().map(|f| fixture(f)).collect();
    let mut args: Vec<&str> = files.iter().map(String::as_str).collect();
    if let Some(format) = format {
        args.extend(["--format", format]);
    }
    diagnose(&args)
}

#[test]
fn symptom_on_both_sides_text() {
    let run = both_sides(None);
    assert_eq!(run.code, exit::FINDINGS);
    assert_eq!(run.err, "");
    insta::assert_snapshot!(run.out);
}

#[test]
fn symptom_on_both_sides_json() {
    let run = both_sides(Some("json"));
    assert_eq!(run.code, exit::FINDINGS);
    insta::assert_snapshot!(run.out);
}

#[test]
fn json_has_the_documented_shape() {
    let doc = json(&both_sides(Some("json")));
    assert_eq!(doc["format_version"], 2);
    assert_eq!(doc["symptom"], true);
    assert_eq!(doc["grade"], "confirmed");
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for file in files {
        assert!(file["path"].is_string());
        assert!(
            ["windowsupdate", "softwaredistribution"].contains(&file["kind"].as_str().unwrap())
        );
        assert_eq!(file["symptom"], true);
        assert_eq!(file["grade"], "confirmed");
        assert_eq!(file["reading"], "strict");
        assert_eq!(file["lenient_lines"], serde_json::json!([]));
        assert!(!file["fault_ids"].as_array().unwrap().is_empty());
        let evidence = file["evidence"].as_array().unwrap();
        assert!(!evidence.is_empty());
        let lines: Vec<u64> = evidence
            .iter()
            .map(|e| e["line"].as_u64().unwrap())
            .collect();
        assert!(lines.windows(2).all(|w| w[0] < w[1]), "evidence ascends");
        assert!(evidence.iter().all(|e| e["text"].is_string()));
    }
    let matches = doc["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 2, "both client fault IDs are on the server");
    for m in matches {
        assert_eq!(m["kb954960"], true);
        assert_eq!(m["duplicate_key"]["key"], "8862");
        assert!(
            m["server"]["path"]
                .as_str()
                .unwrap()
                .ends_with("server-kb954960.log")
        );
    }
    assert_eq!(doc["errors"], serde_json::json!([]));
}

#[test]
fn evidence_quotes_the_lines_as_numbered_in_the_file() {
    let doc = json(&both_sides(Some("json")));
    for file in doc["files"].as_array().unwrap() {
        let text = std::fs::read_to_string(file["path"].as_str().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for e in file["evidence"].as_array().unwrap() {
            let n = e["line"].as_u64().unwrap() as usize;
            assert_eq!(e["text"].as_str().unwrap(), lines[n - 1]);
        }
    }
}

#[test]
fn repaired_client_is_not_a_finding() {
    let run = diagnose(&[&fixture("client-fixed-after-retry.log")]);
    assert_eq!(run.code, exit::OK);
    insta::assert_snapshot!(run.out);
}

#[test]
fn other_failures_are_not_called_kb954960() {
    let files: Vec<String> = [
        "client-other-0x80244010.log",
        "client-other-0x80072ee2.log",
        "client-other-0x8024400d.log",
        "client-other-0x8024400e.log",
        "server-other-errors.log",
    ]
    .iter()
    .map(|f| fixture(f))
    .collect();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let run = diagnose(&args);
    assert_eq!(run.code, exit::OK);
    insta::assert_snapshot!(run.out);
    let doc = json(&diagnose(
        &[args.as_slice(), &["--format", "json"]].concat(),
    ));
    assert_eq!(doc["symptom"], false);
    let codes: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["last_detection"]["code"].as_str())
        .collect();
    assert_eq!(
        codes,
        ["0x80244010", "0x80072EE2", "0x8024400D", "0x8024400E"]
    );
    let m = &doc["matches"][0];
    assert_eq!(m["fault_id"], "0b9d2e64-8a17-4c3f-b5e2-7d41c08a96f3");
    assert_eq!(m["kb954960"], false);
}

#[test]
fn detection_not_run_and_windows_10_logs() {
    let run = diagnose(&[
        &fixture("client-detection-not-run.log"),
        &fixture("windows10-etw.log"),
    ]);
    assert_eq!(run.code, exit::OK);
    insta::assert_snapshot!(run.out);
}

#[test]
fn unreadable_inputs_are_named_and_the_rest_still_reported() {
    let run = diagnose(&[
        &fixture("client-fixed-after-retry.log"),
        &fixture("empty.log"),
        "--format",
        "json",
    ]);
    assert_eq!(run.code, exit::INVALID);
    assert_eq!(
        run.err,
        "error: tests/fixtures/logs/empty.log: empty file: not a WindowsUpdate.log or \
         SoftwareDistribution.log\n"
    );
    insta::assert_snapshot!(run.out);
}

#[test]
fn an_unreadable_input_outranks_the_symptom() {
    let run = diagnose(&[&fixture("client-kb954960.log"), &fixture("missing.log")]);
    assert_eq!(run.code, exit::INVALID);
    assert!(run.out.contains("KB 954960 confirmed: "));
    assert!(run.out.ends_with(
        "KB 954960 symptom found in 1 of 1 file (confirmed in 1); 1 file could not be read.\n"
    ));
    assert!(
        run.err
            .starts_with("error: tests/fixtures/logs/missing.log: cannot read: ")
    );
}

#[test]
fn exit_codes() {
    assert_eq!(
        diagnose(&[&fixture("client-kb954960.log")]).code,
        exit::FINDINGS
    );
    assert_eq!(
        diagnose(&[&fixture("server-kb954960.log")]).code,
        exit::FINDINGS
    );
    assert_eq!(
        diagnose(&[&fixture("client-fixed-after-retry.log")]).code,
        exit::OK
    );
    assert_eq!(
        diagnose(&[&fixture("server-other-errors.log")]).code,
        exit::OK
    );
    assert_eq!(diagnose(&[&fixture("windows10-etw.log")]).code, exit::OK);
    assert_eq!(diagnose(&[&fixture("empty.log")]).code, exit::INVALID);
}

/// Each way a file can be unreadable: exit 3, nothing on stdout, one line naming the file.
#[test]
fn every_unreadable_input_exits_3_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    };
    let client = std::fs::read(fixture("client-kb954960.log")).unwrap();
    let truncated_gz = {
        let gz = std::fs::read(fixture("client-kb954960.log.gz")).unwrap();
        write("truncated.log.gz", &gz[..gz.len() / 2])
    };
    let cases = [
        (fixture("missing.log"), "cannot read: "),
        (fixture("empty.log"), "empty file"),
        (fixture("binary.bin"), "binary data, not a text log"),
        (
            write(
                "prose.txt",
                b"Some computers do not receive updates from the WSUS server.\r\nDate Time PID TID Component Text\r\n",
            ),
            "not a WindowsUpdate.log or SoftwareDistribution.log: no line reads as a record",
        ),
        (
            "tests/fixtures/logs/real/28-refuse-cbs.log".to_string(),
            "not a WindowsUpdate.log or SoftwareDistribution.log: its lines are the records of another log",
        ),
        (
            write("plain.log.gz", &client),
            "named .gz but not gzip data",
        ),
        (truncated_gz, "corrupt gzip data"),
        (
            write("surrogate.log", b"\xff\xfe2\x000\x00\x00\xd8"),
            "undecodable UTF-16LE text",
        ),
        (
            write("blank.log", b"\r\n\r\n   \r\n"),
            "not a WindowsUpdate.log",
        ),
    ];
    for (path, message) in cases {
        let run = diagnose(&[&path]);
        assert_eq!(run.code, exit::INVALID, "{path}");
        assert_eq!(run.out, "", "{path}");
        let expected = format!("error: {path}: {message}");
        assert!(run.err.starts_with(&expected), "{path}: {}", run.err);
        assert_eq!(run.err.lines().count(), 1, "{path}");
    }
}

/// The report of `path`, with the path itself blanked so that copies compare equal.
fn report_of(path: &str) -> serde_json::Value {
    let run = diagnose(&[path, "--format", "json"]);
    assert_eq!(run.code, exit::FINDINGS, "{path}: {}", run.err);
    let mut doc = json(&run);
    doc["files"][0]["path"] = serde_json::Value::Null;
    doc
}

#[test]
fn reads_gzip_and_every_encoding_windows_writes() {
    let plain = report_of(&fixture("client-kb954960.log"));
    assert_eq!(report_of(&fixture("client-kb954960-utf16le.log")), plain);
    assert_eq!(report_of(&fixture("client-kb954960.log.gz")), plain);

    let text = std::fs::read_to_string(fixture("client-kb954960.log")).unwrap();
    let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let gzip = |bytes: &[u8]| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let copies: [(&str, Vec<u8>); 6] = [
        (
            "utf8-bom.log",
            [b"\xef\xbb\xbf".as_slice(), text.as_bytes()].concat(),
        ),
        ("utf16le-no-bom.log", le.clone()),
        ("utf16be-bom.log", [b"\xfe\xff".as_slice(), &be].concat()),
        ("utf16be-no-bom.log", be),
        // gzip is recognised by its magic bytes, whatever the name
        (
            "utf16le-gzip.log",
            gzip(&[b"\xff\xfe".as_slice(), &le].concat()),
        ),
        ("WindowsUpdate.LOG.GZ", gzip(text.as_bytes())),
    ];
    for (name, bytes) in copies {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(report_of(&path.display().to_string()), plain, "{name}");
    }
}

#[test]
fn the_encoded_fixtures_are_copies_of_the_plain_one() {
    use std::io::Read as _;
    let plain = std::fs::read(fixture("client-kb954960.log")).unwrap();
    let utf16 = std::fs::read(fixture("client-kb954960-utf16le.log")).unwrap();
    let expected: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(
            std::str::from_utf8(&plain)
                .unwrap()
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        )
        .collect();
    assert_eq!(utf16, expected);
    let mut gunzipped = Vec::new();
    flate2::read::GzDecoder::new(&std::fs::read(fixture("client-kb954960.log.gz")).unwrap()[..])
        .read_to_end(&mut gunzipped)
        .unwrap();
    assert_eq!(gunzipped, plain);
}

#[test]
fn text_output_prints_nothing_when_no_file_could_be_read() {
    let run = diagnose(&[&fixture("empty.log"), &fixture("binary.bin")]);
    assert_eq!(run.code, exit::INVALID);
    assert_eq!(run.out, "");
    assert_eq!(run.err.lines().count(), 2);
    let run = diagnose(&[&fixture("empty.log"), "--format", "json"]);
    assert_eq!(json(&run)["files"], serde_json::json!([]));
    assert_eq!(json(&run)["errors"][0]["path"], fixture("empty.log"));
}

#[test]
fn arguments() {
    let parse = |args: &[&str]| {
        Cli::try_parse_from(std::iter::once("diagnose").chain(args.iter().copied()))
    };
    assert!(parse(&[]).is_err(), "at least one file");
    assert!(parse(&["a.log", "--format", "xml"]).is_err());
    let cli = parse(&["a.log", "b.log.gz", "--format", "json"]).unwrap();
    assert_eq!(cli.args.files, [Path::new("a.log"), Path::new("b.log.gz")]);
    let none = DiagnoseArgs {
        files: Vec::new(),
        ..cli.args
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(run(&none, &mut out, &mut err), exit::INVALID);
    assert_eq!(
        String::from_utf8(err).unwrap(),
        "error: no log files given\n"
    );
}
