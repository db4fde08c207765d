//! Every real log in `tests/fixtures/logs/real/` gives the result its README labels it with:
//! `clean` exits 0, `symptom` exits 2, `refuse` exits 3. A file without a label, or a label
//! without its file, fails the test.

use std::collections::BTreeMap;

use clap::Parser;
use wsusfix::cli::diagnose::{DiagnoseArgs, run};
use wsusfix::exit;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: DiagnoseArgs,
}

const DIR: &str = "tests/fixtures/logs/real";

struct Run {
    code: i32,
    out: String,
    err: String,
}

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

/// The README's table: file name to label.
fn labels() -> BTreeMap<String, String> {
    let readme = std::fs::read_to_string(format!("{DIR}/README.md")).expect("README");
    readme
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            match cells.as_slice() {
                ["", file, label, ..] if matches!(*label, "clean" | "symptom" | "refuse") => {
                    Some((file.to_string(), label.to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

#[test]
fn every_real_log_gives_its_labelled_result() {
    let labels = labels();
    let files: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "README.md")
        .collect();
    assert_eq!(
        files.len(),
        labels.len(),
        "every file has a label and every label a file: {files:?} {labels:?}"
    );
    for (file, label) in &labels {
        let path = format!("{DIR}/{file}");
        let json = diagnose(&[&path, "--format", "json"]);
        let expected = match label.as_str() {
            "clean" => exit::OK,
            "symptom" => exit::FINDINGS,
            "refuse" => exit::INVALID,
            other => panic!("unknown label {other}"),
        };
        assert_eq!(
            json.code, expected,
            "{file} is labelled {label}: {}",
            json.err
        );
        let doc: serde_json::Value = serde_json::from_str(&json.out).unwrap();
        match label.as_str() {
            "refuse" => {
                assert_eq!(doc["files"], serde_json::json!([]), "{file}");
                assert!(
                    json.err.starts_with(&format!(
                        "error: {path}: not a WindowsUpdate.log or SoftwareDistribution.log"
                    )),
                    "{file}: {}",
                    json.err
                );
            }
            "clean" => {
                assert_eq!(doc["symptom"], false, "{file}");
                let grade = doc["files"][0]["grade"].as_str().unwrap();
                assert!(
                    ["not-found", "other-failure", "not-analysed"].contains(&grade),
                    "{file}: {grade}"
                );
            }
            _ => assert_eq!(doc["symptom"], true, "{file}"),
        }
        // The text report agrees with the JSON.
        assert_eq!(diagnose(&[&path]).code, expected, "{file}");
    }
}

fn report(file: &str) -> serde_json::Value {
    let run = diagnose(&[&format!("{DIR}/{file}"), "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    doc["files"][0].clone()
}

#[test]
fn the_whole_windows_7_log_is_read_strictly_and_its_last_search_succeeded() {
    let file = report("10-clean-win7-full.log.gz");
    assert_eq!(file["kind"], "windowsupdate");
    assert_eq!(file["reading"], "strict");
    assert_eq!(file["lenient_lines"], serde_json::json!([]));
    assert_eq!(file["grade"], "not-found");
    assert_eq!(file["last_detection"]["outcome"], "succeeded");
    assert_eq!(file["kb954960_detections"], 0);
    assert_eq!(file["detections"], 5, "the five searches of the log");
    assert_eq!(file["other_failures"], serde_json::json!([]));
}

#[test]
fn windows_10_logs_are_recognised_in_their_date_forms_and_not_analysed() {
    for name in [
        "11-clean-win10-wsus-etw.log",
        "12-clean-win10-dashdate-8024402f.log",
        "13-clean-win10-bom-8024000e.log",
    ] {
        let file = report(name);
        assert_eq!(file["kind"], "windowsupdate-etw", "{name}");
        assert_eq!(file["grade"], "not-analysed", "{name}");
        assert!(
            file["notes"][0]
                .as_str()
                .unwrap()
                .contains("not analysed for KB 954960"),
            "{name}"
        );
    }
    let dashes = report("12-clean-win10-dashdate-8024402f.log");
    assert_eq!(
        dashes["notes"][1],
        "its last search (line 101) ended with 0x8024402F (WU_E_PT_ECP_SUCCEEDED_WITH_ERRORS: \
         external cab file processing completed with errors)"
    );
}

#[test]
fn other_logs_are_refused_as_other_logs() {
    for name in [
        "26-refuse-iis-w3svc1.log",
        "28-refuse-cbs.log",
        "29-refuse-wuahandler.log",
    ] {
        let run = diagnose(&[&format!("{DIR}/{name}")]);
        assert_eq!(run.code, exit::INVALID, "{name}");
        assert_eq!(run.out, "", "{name}");
        assert!(
            run.err
                .contains("its lines are the records of another log (IIS, CBS, CMTrace"),
            "{name}: {}",
            run.err
        );
    }
}

/// A refused file does not hide what the others show.
#[test]
fn a_refused_file_among_readable_ones() {
    let run = diagnose(&[
        &format!("{DIR}/28-refuse-cbs.log"),
        "tests/fixtures/logs/client-kb954960.log",
    ]);
    assert_eq!(run.code, exit::INVALID);
    assert!(run.out.contains("KB 954960 confirmed"));
    assert_eq!(run.err.lines().count(), 1);
}
