//! `validate` and `plan` through the real binary: snapshots of the three formats, every example
//! file, `--limit`, `--out`, `--detailed-exitcode` and the exit codes of bad input.

mod common;

use common::{Run, root};

fn redact(s: &str) -> String {
    // The fingerprint includes the tool version; keep snapshots stable across releases.
    let re_fp = |s: &str| -> String {
        let mut out = String::new();
        for line in s.lines() {
            let mut l = line.to_string();
            for marker in [
                "fingerprint ",
                "\"fingerprint\": \"",
                "\"tool_version\": \"",
            ] {
                if let Some(i) = l.find(marker) {
                    let start = i + marker.len();
                    let end = l[start..]
                        .find(|c: char| !c.is_ascii_alphanumeric() && c != '.')
                        .map(|e| start + e)
                        .unwrap_or(l.len());
                    l.replace_range(start..end, "[redacted]");
                }
            }
            out.push_str(&l);
            out.push('\n');
        }
        out
    };
    re_fp(s)
}

#[test]
fn text_plan_of_the_lab() {
    let d = Run::new(["plan", "-i", "inventory/lab.yaml"]).run().code(0);
    insta::assert_snapshot!("lab_text", redact(&d.stdout));
}

#[test]
fn json_plan_of_the_lab() {
    let d = Run::new(["plan", "-i", "inventory/lab.yaml", "--format", "json"])
        .run()
        .code(0);
    let v: serde_json::Value = serde_json::from_str(&d.stdout).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["waves"][0], serde_json::json!(["wsus-hq"]));
    assert_eq!(v["servers"][1]["name"], "wsus-eu");
    assert_eq!(
        v["servers"][1]["steps"][0]["action"],
        "switch-to-autonomous"
    );
    assert_eq!(v["fingerprint"].as_str().unwrap().len(), 64);
    insta::assert_snapshot!("lab_json", redact(&d.stdout));
}

#[test]
fn dot_plan_of_the_lab() {
    let d = Run::new(["plan", "-i", "inventory/lab.yaml", "--format", "dot"])
        .run()
        .code(0);
    assert!(d.stdout.starts_with("digraph wsusfix {"));
    insta::assert_snapshot!("lab_dot", redact(&d.stdout));
}

#[test]
fn every_example_inventory_validates_and_plans() {
    let mut n = 0;
    for e in std::fs::read_dir(root().join("inventory")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        n += 1;
        let path = p.to_str().unwrap();
        Run::new(["validate", "-i", path])
            .run()
            .code(0)
            .stdout_has(": valid (");
        for format in ["text", "json", "dot"] {
            Run::new(["plan", "-i", path, "--format", format])
                .run()
                .code(0);
        }
    }
    assert!(n >= 2);
}

#[test]
fn every_example_playbook_validates_and_plans() {
    for e in std::fs::read_dir(root().join("playbooks")).unwrap() {
        let p = e.unwrap().path();
        let path = p.to_str().unwrap();
        Run::new(["validate", "-i", "inventory/contoso.yaml", "-p", path])
            .run()
            .code(0);
        Run::new(["plan", "-i", "inventory/contoso.yaml", "-p", path])
            .run()
            .code(0)
            .stdout_has("Summary: 40 servers");
    }
}

#[test]
fn the_built_in_playbook_is_the_file_in_playbooks() {
    let file = std::fs::read_to_string(root().join("playbooks/kb954960.yaml")).unwrap();
    assert_eq!(file, wsusfix::core::playbook::DEFAULT_PLAYBOOK);
}

#[test]
fn limit_plans_a_subtree_with_its_preconditions() {
    Run::new(["plan", "-i", "inventory/lab.yaml", "--limit", "wsus-eu"])
        .run()
        .code(0)
        .stdout_has("Preconditions (outside --limit, not touched by this plan):\n  wsus-hq: upstream of wsus-eu")
        .stdout_has("   1  wsus-eu\n   2  wsus-eu-berlin, wsus-eu-paris\n")
        .stdout_has("Summary: 3 servers");
    Run::new([
        "plan",
        "-i",
        "inventory/lab.yaml",
        "--limit",
        "wsus-eu-pari",
    ])
    .run()
    .code(3)
    .stderr_has("unknown server `wsus-eu-pari`")
    .stderr_has("did you mean `wsus-eu-paris`?");
}

#[test]
fn detailed_exitcode_says_whether_anything_would_change() {
    Run::new(["plan", "-i", "inventory/lab.yaml", "--detailed-exitcode"])
        .run()
        .code(2);
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("sp2.yaml");
    std::fs::write(
        &inv,
        "defaults: { username: u, password: prompt }\nservers:\n  w: { role: upstream, address: 127.0.1.1, version: 3.0-sp2 }\n",
    )
    .unwrap();
    Run::new(["plan", "-i", inv.to_str().unwrap(), "--detailed-exitcode"])
        .run()
        .code(0)
        .stdout_has("skipped: WSUS 3.0 SP2 already contains the fix");
    Run::new([
        "plan",
        "-i",
        "tests/invalid/inventory/cycle.yaml",
        "--detailed-exitcode",
    ])
    .run()
    .code(3);
}

#[test]
fn out_writes_the_plan_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan.json");
    let d = Run::new([
        "plan",
        "-i",
        "inventory/lab.yaml",
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ])
    .run()
    .code(0)
    .stderr_has("wrote the plan to");
    assert!(d.stdout.is_empty());
    let plan: wsusfix::core::plan::Plan =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(plan.servers.len(), 6);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
}

#[test]
fn invalid_input_points_at_the_spot_and_exits_3() {
    Run::new(["validate", "-i", "tests/invalid/inventory/unknown-upstream.yaml"])
        .run()
        .code(3)
        .stderr_has("error: server `wsus-eu` names an unknown upstream `wsus-hqq`\n  --> tests/invalid/inventory/unknown-upstream.yaml:4:39\n")
        .stderr_has("^^^^^^^^ did you mean `wsus-hq`?");
    Run::new([
        "plan",
        "-i",
        "inventory/lab.yaml",
        "-p",
        "tests/invalid/playbook/unknown-action.yaml",
    ])
    .run()
    .code(3)
    .stderr_has("unknown action `aprove-unchanged`")
    .stderr_has("did you mean `approve-unchanged`?");
}

#[test]
fn unreadable_files_and_bad_arguments_exit_3() {
    Run::new(["plan", "-i", "inventory/lab.yml"])
        .run()
        .code(3)
        .stderr_has("cannot read inventory inventory/lab.yml: no such file")
        .stderr_has(&format!(
            "did you mean {}?",
            std::path::Path::new("inventory").join("lab.yaml").display()
        ));
    Run::new(["plan", "-i", "inventory"])
        .run()
        .code(3)
        .stderr_has("it is a directory");
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin.yaml");
    std::fs::write(&bin, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    Run::new(["validate", "-i", bin.to_str().unwrap()])
        .run()
        .code(3)
        .stderr_has("is not UTF-8 text");
    Run::new(["plan", "--frobnicate"]).run().code(3);
    Run::new(["--help"])
        .run()
        .code(0)
        .stdout_has("Usage: wsusfix");
}
