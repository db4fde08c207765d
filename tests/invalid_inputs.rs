//! The corpus of invalid inventories and playbooks: each file under tests/invalid/ ends with
//! `# expect: LINE:COL message` lines (`-` for a whole-file problem), and validation must report
//! exactly those diagnostics, in that order.

use std::path::Path;

use wsusfix::core::diag::Diagnostic;
use wsusfix::core::{inventory, playbook};

fn expectations(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(str::to_string)
        .collect()
}

fn actual(diags: &[Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .map(|d| {
            let pos = match d.line_col() {
                Some((l, c)) => format!("{l}:{c}"),
                None => "-".into(),
            };
            format!("{pos} {}", d.message)
        })
        .collect()
}

fn check_dir(dir: &str, load: fn(&str) -> (bool, Vec<Diagnostic>)) -> usize {
    let mut files: Vec<_> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let want = expectations(&text);
        assert!(!want.is_empty(), "{} has no `# expect:` line", f.display());
        let (valid, diags) = load(&text);
        let got = actual(&diags);
        if valid || got != want {
            failures.push(format!(
                "{}:\n  want {want:#?}\n  got  {got:#?} (valid: {valid})",
                f.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    files.len()
}

#[test]
fn every_invalid_inventory_is_reported_where_it_is_wrong() {
    let n = check_dir("tests/invalid/inventory", |t| {
        let l = inventory::load(t);
        (l.inventory.is_some(), l.diagnostics)
    });
    assert!(n >= 25, "the inventory corpus has {n} files");
}

#[test]
fn every_invalid_playbook_is_reported_where_it_is_wrong() {
    let n = check_dir("tests/invalid/playbook", |t| {
        let l = playbook::load(t);
        (l.playbook.is_some(), l.diagnostics)
    });
    assert!(n >= 10, "the playbook corpus has {n} files");
}
