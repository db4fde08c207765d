//! The operation scripts, checked with the PowerShell grammar of tree-sitter: each rendered
//! script parses cleanly, uses nothing newer than PowerShell 2.0, calls the API members its
//! operation claims, carries exactly its marker's arguments as literals, and holds hostile values
//! only inside correctly quoted literals (or refuses them).

use std::collections::BTreeMap;

use tree_sitter::{Node, Parser, Tree};
use wsusfix::core::playbook::ALL_COMPUTERS_GROUP_ID;
use wsusfix::wsus::op::templates;
use wsusfix::wsus::quote::{quote, unquote_prefix};
use wsusfix::wsus::{Connection, Op, OpName, render, render_via};

const UPDATE: &str = "D359F493-0AAD-43FA-AF5C-6763326CD98F";
const SHA: &str = "3285d17c9cd37ab7c2058da526a79b182907b1dc194af691ca8eeca051edebaa";
const DLL: &str =
    "WebServices\\ClientWebService\\bin\\Microsoft.UpdateServices.WebServices.Client.dll";

// ---------------------------------------------------------------------------------------------
// Tree helpers

fn parse(src: &str) -> Tree {
    let mut parser = Parser::new();
    // tree-sitter 0.24 compiles against this grammar but fails here: keep the call checked.
    parser
        .set_language(&tree_sitter_powershell::LANGUAGE.into())
        .expect("the PowerShell grammar loads");
    parser.parse(src, None).expect("a tree")
}

fn each<'t>(node: Node<'t>, f: &mut impl FnMut(Node<'t>)) {
    f(node);
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        each(child, f);
    }
}

fn text<'s>(node: Node<'_>, src: &'s str) -> &'s str {
    &src[node.byte_range()]
}

fn at(node: Node<'_>) -> String {
    let p = node.start_position();
    format!("{}:{}", p.row + 1, p.column + 1)
}

/// Every ERROR or MISSING node, with its position.
fn syntax_errors(src: &str) -> Vec<String> {
    let tree = parse(src);
    let mut found = Vec::new();
    each(tree.root_node(), &mut |n| {
        if n.is_error() || n.is_missing() {
            let t: String = text(n, src).chars().take(40).collect();
            found.push(format!(
                "{} {} {t:?}",
                at(n),
                if n.is_missing() { "missing" } else { "error" }
            ));
        }
    });
    found
}

/// The member names of every method call (`invokation_expression`), with their byte offsets.
fn method_calls(src: &str) -> Vec<(String, usize)> {
    let tree = parse(src);
    let mut calls = Vec::new();
    each(tree.root_node(), &mut |n| {
        if n.kind() == "invokation_expression" {
            let mut cursor = n.walk();
            for child in n.children(&mut cursor) {
                if child.kind() == "member_name" {
                    calls.push((text(child, src).to_string(), n.start_byte()));
                }
            }
        }
    });
    calls
}

fn first_call(src: &str, member: &str) -> Option<usize> {
    method_calls(src)
        .into_iter()
        .find(|(m, _)| m.eq_ignore_ascii_case(member))
        .map(|(_, at)| at)
}

fn calls(src: &str, member: &str) -> bool {
    first_call(src, member).is_some()
}

/// Properties assigned to (`$x.Prop = ...`).
fn assigned_members(src: &str) -> Vec<String> {
    let tree = parse(src);
    let mut found = Vec::new();
    each(tree.root_node(), &mut |n| {
        if n.kind() == "assignment_expression"
            && let Some(left) = n.child(0)
        {
            let mut target = left;
            while target.named_child_count() == 1 && target.kind() != "member_access" {
                target = target.named_child(0).unwrap();
            }
            if target.kind() == "member_access"
                && let Some(name) = target.named_child(target.named_child_count() as u32 - 1)
            {
                found.push(text(name, src).to_string());
            }
        }
    });
    found
}

/// Command names in command position.
fn commands(src: &str) -> Vec<String> {
    let tree = parse(src);
    let mut found = Vec::new();
    each(tree.root_node(), &mut |n| {
        if n.kind() == "command_name" {
            found.push(text(n, src).to_string());
        }
    });
    found
}

// ---------------------------------------------------------------------------------------------
// The PowerShell 2.0 checker

/// Cmdlets that do not exist on a WSUS 3.0 server's PowerShell 2.0 (later PowerShell versions,
/// or modules of Windows Server 2012 and later).
const NEWER_COMMANDS: &[&str] = &[
    "convertto-json",
    "convertfrom-json",
    "invoke-webrequest",
    "invoke-restmethod",
    "get-ciminstance",
    "set-ciminstance",
    "new-ciminstance",
    "remove-ciminstance",
    "invoke-cimmethod",
    "get-cimclass",
    "new-cimsession",
    "get-cimassociatedinstance",
    "register-cimindicationevent",
    "get-filehash",
    "new-temporaryfile",
    "unblock-file",
    "expand-archive",
    "compress-archive",
    "convertfrom-string",
    "set-culture",
    "set-winsystemlocale",
    "get-winsystemlocale",
    "set-winuserlanguagelist",
    "get-winuserlanguagelist",
    "set-winhomelocation",
    "get-wsusserver",
    "get-wsusupdate",
    "approve-wsusupdate",
    "deny-wsusupdate",
    "set-wsusserversynchronization",
    "test-netconnection",
    "resolve-dnsname",
];

/// Everything in `src` that PowerShell 2.0 would not run, with positions.
fn newer_than_v2(src: &str) -> Vec<String> {
    let tree = parse(src);
    let mut found = Vec::new();
    each(tree.root_node(), &mut |n| {
        let t = text(n, src);
        let lower = t.to_ascii_lowercase();
        let mut bad = |what: &str| found.push(format!("{} {what}: {t:?}", at(n)));
        match n.kind() {
            "class_statement" => bad("class (5.0)"),
            "enum_statement" => bad("enum (5.0)"),
            "pipeline_chain_tail" => bad("&& / || (7.0)"),
            "parallel_statement" | "inlinescript_statement" => bad("workflow (3.0)"),
            "function_statement" if lower.starts_with("workflow") => bad("workflow (3.0)"),
            "type_literal" => {
                let name = lower.trim_matches(['[', ']']).trim();
                if matches!(
                    name,
                    "ordered" | "pscustomobject" | "system.management.automation.pscustomobject"
                ) {
                    bad("type accelerator of 3.0");
                }
            }
            "invokation_expression" => {
                let mut c = n.walk();
                let kids: Vec<Node> = n.children(&mut c).collect();
                let static_call = kids.first().is_some_and(|k| k.kind() == "type_literal");
                let member = kids
                    .iter()
                    .find(|k| k.kind() == "member_name")
                    .map(|k| text(*k, src).to_ascii_lowercase());
                if static_call && member.as_deref() == Some("new") {
                    bad("[T]::new() (5.0)");
                }
                if matches!(member.as_deref(), Some("where" | "foreach")) {
                    bad(".Where()/.ForEach() (4.0)");
                }
            }
            "comparison_operator" => {
                if matches!(
                    lower.as_str(),
                    "-in" | "-notin" | "-iin" | "-cin" | "-inotin" | "-cnotin" | "-shl" | "-shr"
                ) {
                    bad("operator of 3.0");
                }
            }
            "variable" | "braced_variable" => {
                let name = lower.trim_start_matches('$').trim_matches(['{', '}']);
                if matches!(name, "psitem" | "pscommandpath" | "psscriptroot")
                    || name.starts_with("using:")
                {
                    bad("automatic variable of 3.0 (or module-only in 2.0)");
                }
            }
            "command" => {
                let name = n
                    .child(0)
                    .map(|c| text(c, src).to_ascii_lowercase())
                    .unwrap_or_default();
                let mut params = Vec::new();
                let mut script_block = false;
                each(n, &mut |d| match d.kind() {
                    "command_parameter" => params.push(text(d, src).to_ascii_lowercase()),
                    "script_block_expression" => script_block = true,
                    _ => {}
                });
                if NEWER_COMMANDS.contains(&name.as_str()) {
                    bad("cmdlet not in PowerShell 2.0");
                }
                if name == "using" {
                    bad("using statement (5.0)");
                }
                if matches!(name.as_str(), "get-content" | "gc" | "cat" | "type")
                    && params.iter().any(|p| p == "-raw" || p == "-tail")
                {
                    bad("Get-Content -Raw/-Tail (3.0)");
                }
                if matches!(
                    name.as_str(),
                    "where-object" | "where" | "?" | "foreach-object" | "%"
                ) && !script_block
                {
                    bad("simplified Where-Object/ForEach-Object syntax (3.0)");
                }
            }
            _ => {}
        }
    });
    found
}

#[test]
fn the_grammar_loads_and_flags_broken_powershell() {
    assert!(syntax_errors("$a = 'x'\nif ($a) { Write-Output $a }\n").is_empty());
    for broken in [
        "if ($a) { x",
        "$a = 'unclosed",
        "$a = $(1 + ",
        "}",
        "$a = @'\nno end",
        "foo(",
    ] {
        assert!(!syntax_errors(broken).is_empty(), "{broken:?}");
    }
}

#[test]
fn the_call_finder_sees_calls_only() {
    assert!(calls("$u.Decline()", "Decline"));
    assert!(calls("[void]$u.Approve($a, $g)", "approve"));
    assert!(calls(
        "[Microsoft.UpdateServices.Administration.AdminProxy]::GetUpdateServer()",
        "GetUpdateServer"
    ));
    // Not a call: a comment, a string, a property, a function of that name.
    assert!(!calls("# $u.Decline()", "Decline"));
    assert!(!calls("$s = '$u.Decline()'", "Decline"));
    assert!(!calls("$d = $u.IsDeclined", "IsDeclined"));
    assert!(!calls("Decline $u", "Decline"));
    assert_eq!(
        assigned_members("$c.IsReplicaServer = $true\n$x = $c.IsReplicaServer"),
        ["IsReplicaServer"]
    );
}

#[test]
fn the_v2_checker_rejects_each_newer_construct() {
    let bad = [
        "$x = [System.Text.StringBuilder]::new()",
        "$h = [ordered]@{ a = 1 }",
        "$o = [pscustomobject]@{ a = 1 }",
        "class Foo { }",
        "enum Color { Red }",
        "a && b",
        "a || b",
        "$j = $o | ConvertTo-Json",
        "$o = '{}' | ConvertFrom-Json",
        "Get-CimInstance Win32_Service",
        "if ($a -in $b) { }",
        "if ($a -notin $b) { }",
        "Invoke-WebRequest http://x",
        "Get-Content -Raw C:\\x.txt",
        "Get-Content C:\\x.txt -Tail 10",
        "$PSItem",
        "${PSItem}",
        "$using:foo",
        "using namespace System.Text",
        "Get-FileHash C:\\x.exe",
        "$x | Where-Object Name -eq 'a'",
        "$x | ForEach-Object Name",
        "workflow W { parallel { a } }",
        "$v = 1 -shl 2",
        "$PSScriptRoot",
    ];
    for snippet in bad {
        let found = newer_than_v2(snippet);
        assert!(!found.is_empty(), "not rejected: {snippet:?}");
    }
    let fine = [
        "$x = New-Object System.Text.StringBuilder",
        "$h = @{ a = 1 }",
        "$o = New-Object PSObject -Property @{ a = 1 }",
        "if ($b -contains $a) { }",
        "$x | Where-Object { $_.Name -eq 'a' }",
        "$x | ForEach-Object { $_.Name }",
        "$s = Get-Content C:\\x.txt",
        "$y = @('a', 'b') -join '|'",
        "[void][Reflection.Assembly]::LoadWithPartialName('x')",
        "$t = [DateTime]::UtcNow",
        "try { a } catch { b } finally { c }",
    ];
    for snippet in fine {
        assert_eq!(newer_than_v2(snippet), Vec::<String>::new(), "{snippet:?}");
        assert_eq!(syntax_errors(snippet), Vec::<String>::new(), "{snippet:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Every operation's script

fn sample(name: OpName) -> Op {
    match name {
        OpName::Facts => Op::facts(UPDATE, None, &["W3SVC", "MSFTPSVC", "NNTPSVC", "SMTPSVC"]),
        OpName::SetReplica => Op::set_replica(false, 300),
        OpName::EnsureDeclined => Op::ensure_declined(UPDATE),
        OpName::ApproveUnchanged => Op::approve_unchanged(UPDATE, ALL_COMPUTERS_GROUP_ID),
        OpName::Decline => Op::decline(UPDATE),
        OpName::InstallHotfix => Op::install_hotfix(
            954960,
            "\\\\fileserver\\wsusfix\\KB954960\\WSUS3SP1-KB954960-x64.exe",
            SHA,
            "/q",
            1800,
        ),
        OpName::FileVersion => Op::file_version(DLL),
        OpName::Services => Op::services(
            &["W3SVC", "MSFTPSVC", "NNTPSVC", "SMTPSVC"],
            &["W3SVC", "SMTPSVC"],
            180,
        ),
        OpName::SyncNow => Op::sync_now(3600),
        OpName::ChildServers => Ok(Op::ChildServers),
        OpName::SetCulture => Op::set_culture("en-US"),
        OpName::DetectNow => Op::detect_now(600),
    }
    .unwrap()
}

fn connections() -> [Connection; 2] {
    [
        Connection::Local,
        Connection::named("wsus-hq.contoso.com", 8531, true).unwrap(),
    ]
}

#[test]
fn every_template_parses_on_its_own() {
    // Unrendered `{{name}}` placeholders parse as script blocks, so templates can be checked
    // before any value is filled in.
    for (file, text) in templates() {
        assert_eq!(syntax_errors(text), Vec::<String>::new(), "{file}");
        assert_eq!(newer_than_v2(text), Vec::<String>::new(), "{file}");
    }
}

#[test]
fn every_rendered_script_parses_and_is_powershell_2() {
    for name in OpName::ALL {
        for conn in connections() {
            let script = render_via(&sample(name), &conn);
            assert_eq!(syntax_errors(&script), Vec::<String>::new(), "{name}");
            assert_eq!(newer_than_v2(&script), Vec::<String>::new(), "{name}");
            // Preferences first, and an explicit exit at the end: powershell.exe would exit 0
            // after an unhandled error otherwise.
            assert!(script.contains("$ErrorActionPreference = 'Stop'"), "{name}");
            assert!(
                script.contains("$ProgressPreference = 'SilentlyContinue'"),
                "{name}"
            );
            assert!(script.trim_end().ends_with("exit 1"), "{name}");
            assert!(commands(&script).iter().any(|c| c == "Set-StrictMode"));
        }
    }
}

/// The API members (and commands) each operation must use, and those it must not.
fn claims(name: OpName) -> (&'static [&'static str], &'static [&'static str]) {
    const MUTATING: &[&str] = &[
        "Save",
        "Decline",
        "Approve",
        "StartSynchronization",
        "Start",
    ];
    match name {
        OpName::Facts => (
            &[
                "LoadWithPartialName",
                "GetUpdateServer",
                "GetConfiguration",
                "GetUpdateServerConfigurationState",
                "GetSubscription",
                "GetSynchronizationStatus",
                "GetLastSynchronizationInfo",
                "GetUpdate",
                "GetUpdateApprovals",
                "GetVersionInfo",
                "OpenSubKey",
            ],
            MUTATING,
        ),
        OpName::SetReplica => (
            &[
                "GetConfiguration",
                "GetUpdateServerConfigurationState",
                "Save",
            ],
            &["Decline", "Approve", "StartSynchronization", "Start"],
        ),
        OpName::EnsureDeclined => (
            &["GetUpdate", "Decline", "Refresh"],
            &["Approve", "Save", "Start"],
        ),
        OpName::ApproveUnchanged => (
            &["GetUpdate", "GetComputerTargetGroup", "Approve"],
            &["Decline", "Save", "Start"],
        ),
        OpName::Decline => (
            &["GetUpdate", "Decline", "Refresh"],
            &["Approve", "Save", "Start"],
        ),
        OpName::InstallHotfix => (
            &["ComputeHash", "Start", "WaitForExit"],
            &["Save", "Decline", "Approve", "StartSynchronization"],
        ),
        OpName::FileVersion => (&["OpenSubKey", "GetVersionInfo"], MUTATING),
        OpName::Services => (&[], MUTATING),
        OpName::SyncNow => (
            &[
                "GetSubscription",
                "GetSynchronizationStatus",
                "StartSynchronization",
                "GetLastSynchronizationInfo",
            ],
            &["Save", "Decline", "Approve", "Start"],
        ),
        OpName::ChildServers => (&["GetChildServers"], MUTATING),
        OpName::SetCulture => (
            &["OpenSubKey", "Start", "WriteAllText"],
            &["Save", "Decline", "Approve", "StartSynchronization"],
        ),
        OpName::DetectNow => (
            &["Start", "WaitForExit"],
            &["Save", "Decline", "Approve", "StartSynchronization"],
        ),
    }
}

#[test]
fn every_script_calls_what_its_operation_claims() {
    for name in OpName::ALL {
        let script = render(&sample(name));
        let (must, must_not) = claims(name);
        for member in must {
            assert!(calls(&script, member), "{name} does not call {member}");
        }
        for member in must_not {
            assert!(!calls(&script, member), "{name} calls {member}");
        }
    }
}

#[test]
fn the_specific_claims() {
    // set_replica sets IsReplicaServer, waits for the configuration state, and saves.
    let s = render(&sample(OpName::SetReplica));
    assert!(assigned_members(&s).iter().any(|m| m == "IsReplicaServer"));
    assert!(
        first_call(&s, "GetUpdateServerConfigurationState") < first_call(&s, "Save"),
        "the state is checked before saving"
    );

    // ensure_declined reads IsDeclined before deciding to decline.
    let s = render(&sample(OpName::EnsureDeclined));
    let body = s.find("$ArgUpdate =").unwrap();
    assert!(s[body..].find("IsDeclined") < s[body..].find(".Decline()"));

    // approve_unchanged approves with NotApproved for the group found by ID, never by name.
    let s = render(&sample(OpName::ApproveUnchanged));
    assert!(
        s.contains("[Microsoft.UpdateServices.Administration.UpdateApprovalAction]::NotApproved")
    );
    assert!(!calls(&s, "GetComputerTargetGroups"));

    // install_hotfix hashes the package, compares, and only then starts the installer.
    let s = render(&sample(OpName::InstallHotfix));
    let hash = first_call(&s, "ComputeHash").unwrap();
    let compare = s.find("$actual -ne $ArgSha256").unwrap();
    let start = first_call(&s, "Start").unwrap();
    assert!(
        hash < compare && compare < start,
        "{hash} {compare} {start}"
    );
    assert!(s.contains("SHA256Managed") && s.contains("IO.FileStream"));
    assert!(s.contains("$code -eq 0 -or $code -eq 3010 -or $code -eq 1641"));

    // facts reads the Win32 FileVersion parts, not an AssemblyVersion.
    let s = render(&sample(OpName::Facts));
    assert!(s.contains("FileMajorPart") && !s.contains("GetAssemblyName"));
    assert!(s.contains("InstalledUICulture"));

    // The local connection uses GetUpdateServer() and the named one the three-argument form.
    let local = render(&sample(OpName::Decline));
    assert!(local.contains("AdminProxy]::GetUpdateServer()"));
    let named = render_via(&sample(OpName::Decline), &connections()[1]);
    assert!(named.contains("AdminProxy]::GetUpdateServer($ArgServer, $ArgSsl, $ArgPort)"));

    // sync_now starts a synchronisation only after the one running ended.
    let s = render(&sample(OpName::SyncNow));
    assert!(first_call(&s, "GetSynchronizationStatus") < first_call(&s, "StartSynchronization"));

    // detect_now runs wuauclt.exe /detectnow.
    let s = render(&sample(OpName::DetectNow));
    assert!(s.contains("'wuauclt.exe'") && s.contains("'/detectnow'"));
}

// ---------------------------------------------------------------------------------------------
// Marker and literals

/// `update` -> `$ArgUpdate`, `wait_running` -> `$ArgWaitRunning`.
fn arg_variable(key: &str) -> String {
    let mut v = String::from("$Arg");
    for part in key.split('_') {
        let mut chars = part.chars();
        if let Some(c) = chars.next() {
            v.push(c.to_ascii_uppercase());
            v.extend(chars);
        }
    }
    v
}

/// Each single-quoted literal under `node`, read the way PowerShell reads it. Panics unless the
/// literal is one closed token that PowerShell would also end exactly where the grammar does.
fn literals_under(node: Node<'_>, src: &str) -> Vec<String> {
    let mut found = Vec::new();
    each(node, &mut |n| {
        if n.kind() == "verbatim_string_characters" {
            let t = text(n, src);
            let (value, len) = unquote_prefix(t).unwrap_or_else(|| panic!("unclosed {t:?}"));
            assert_eq!(len, t.len(), "PowerShell ends the literal early: {t:?}");
            found.push(value);
        }
    });
    found
}

/// `$Arg...` variable -> the literals assigned to it.
fn arg_literals(script: &str) -> BTreeMap<String, Vec<String>> {
    let tree = parse(script);
    let mut found = BTreeMap::new();
    each(tree.root_node(), &mut |n| {
        if n.kind() == "assignment_expression" {
            let left = text(n.child(0).unwrap(), script);
            if left.starts_with("$Arg") {
                let right = n.child(n.child_count() as u32 - 1).unwrap();
                let prev = found.insert(left.to_string(), literals_under(right, script));
                assert!(prev.is_none(), "{left} assigned twice");
            }
        }
    });
    found
}

fn json_strings(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Number(n) => vec![n.to_string()],
        serde_json::Value::Bool(b) => vec![b.to_string()],
        serde_json::Value::Array(items) => items.iter().flat_map(json_strings).collect(),
        other => panic!("unexpected JSON argument {other}"),
    }
}

fn marker(script: &str) -> (String, serde_json::Map<String, serde_json::Value>) {
    let first = script.lines().next().unwrap();
    let rest = first
        .strip_prefix("# wsusfix-op: ")
        .expect("the marker line");
    let (name, json) = rest.split_once(' ').unwrap();
    let serde_json::Value::Object(args) = serde_json::from_str(json).unwrap() else {
        panic!("arguments are not an object: {json}");
    };
    (name.to_string(), args)
}

/// The marker's arguments are exactly the literals of the `$Arg...` assignments.
fn assert_marker_matches_body(script: &str) {
    let (_, args) = marker(script);
    let expected: BTreeMap<String, Vec<String>> = args
        .iter()
        .map(|(k, v)| (arg_variable(k), json_strings(v)))
        .collect();
    assert_eq!(arg_literals(script), expected, "{script}");
}

#[test]
fn marker_first_and_its_json_equals_the_literals_in_the_body() {
    for name in OpName::ALL {
        for conn in connections() {
            let script = render_via(&sample(name), &conn);
            let (marker_name, _) = marker(&script);
            assert_eq!(marker_name, name.as_str());
            assert_marker_matches_body(&script);
        }
    }
    // Optional and list arguments.
    let since = chrono::DateTime::parse_from_rfc3339("2026-11-24T09:30:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    for op in [
        Op::facts(UPDATE, Some(since), &["W3SVC"]).unwrap(),
        Op::facts::<&str>(UPDATE, None, &[]).unwrap(),
        Op::services::<&str, &str>(&[], &[], 1).unwrap(),
        Op::install_hotfix(1, "C:\\Program Files (x86)\\x.msp", SHA, "", 1).unwrap(),
    ] {
        assert_marker_matches_body(&render(&op));
    }
}

// ---------------------------------------------------------------------------------------------
// Injection

fn corpus() -> Vec<String> {
    let mut c: Vec<String> = [
        "O'Brien",
        "x'; Remove-Item C:\\ -Recurse; '",
        "\u{2019}; calc; \u{2019}",
        "\u{2018}$(calc)\u{2018}",
        "\u{201A}x\u{201B}",
        "''",
        "\"; calc; \"",
        "$(Invoke-Expression 'calc')",
        "`$x`n",
        "a;b",
        "a|b",
        "a&b",
        "line\nbreak",
        "carriage\rreturn",
        "nul\0byte",
        "tab\there",
        "${env:x}",
        "$env:SystemRoot",
        "@(1)",
        "Zürich-Straße",
        "日本語",
        "\u{202E}exe.txt",
        "x\u{2028}y",
        "#comment",
        "<#",
        "}",
        "W3SVC",
        "MSSQL$MICROSOFT##SSEE",
        "en-US",
        "C:\\Program Files (x86)\\Update Services\\fix.exe",
        "C:\\Temp\\%TEMP%\\fix.msp",
        "\\\\fileserver\\wsusfix\\KB954960\\WSUS3SP1-KB954960-x86.exe",
        "WebServices\\ClientWebService\\bin\\x.dll",
        "/q /norestart",
        "d359f493-0aad-43fa-af5c-6763326cd98f",
        SHA,
        "wsus-hq.contoso.com",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    c.push("x".repeat(10_000));
    c.push(format!("C:\\{}.exe", "a".repeat(300)));
    c.push("'".repeat(500));
    c
}

/// Every string-valued argument of every operation, as a way to build an op (or a
/// connection) from one value.
#[allow(clippy::type_complexity)]
fn string_slots() -> Vec<(&'static str, Box<dyn Fn(&str) -> Option<String>>)> {
    fn ok(op: Result<Op, wsusfix::wsus::arg::InvalidArg>) -> Option<String> {
        op.ok().map(|op| render(&op))
    }
    vec![
        (
            "facts.update",
            Box::new(|v| ok(Op::facts::<&str>(v, None, &[]))),
        ),
        (
            "facts.services",
            Box::new(|v| ok(Op::facts(UPDATE, None, &[v]))),
        ),
        (
            "ensure_declined.update",
            Box::new(|v| ok(Op::ensure_declined(v))),
        ),
        (
            "approve_unchanged.group",
            Box::new(|v| ok(Op::approve_unchanged(UPDATE, v))),
        ),
        ("decline.update", Box::new(|v| ok(Op::decline(v)))),
        (
            "install_hotfix.path",
            Box::new(|v| ok(Op::install_hotfix(1, v, SHA, "/q", 60))),
        ),
        (
            "install_hotfix.sha256",
            Box::new(|v| ok(Op::install_hotfix(1, "C:\\x.exe", v, "/q", 60))),
        ),
        (
            "install_hotfix.args",
            Box::new(|v| ok(Op::install_hotfix(1, "C:\\x.exe", SHA, v, 60))),
        ),
        ("file_version.path", Box::new(|v| ok(Op::file_version(v)))),
        (
            "services.names",
            Box::new(|v| ok(Op::services(&[v], &[v], 60))),
        ),
        ("set_culture.culture", Box::new(|v| ok(Op::set_culture(v)))),
        (
            "connection.server",
            Box::new(|v| {
                Connection::named(v, 8530, false)
                    .ok()
                    .map(|c| render_via(&Op::ChildServers, &c))
            }),
        ),
    ]
}

#[test]
fn hostile_values_are_refused_or_stay_inside_one_literal() {
    let mut accepted = 0;
    let mut refused = 0;
    for (slot, build) in string_slots() {
        for value in corpus() {
            let Some(script) = build(&value) else {
                refused += 1;
                continue;
            };
            accepted += 1;
            assert_eq!(
                syntax_errors(&script),
                Vec::<String>::new(),
                "{slot} {value:?}"
            );
            // The marker holds the value (normalised only in case, for GUIDs and digests)...
            let (_, args) = marker(&script);
            let arg = slot.split('.').nth(1).unwrap();
            let in_json = json_strings(&args[arg]);
            assert!(
                in_json.iter().all(|j| j.eq_ignore_ascii_case(&value)),
                "{slot} {value:?} {in_json:?}"
            );
            // ...and the body holds exactly the marker's values as literals.
            assert_marker_matches_body(&script);
        }
    }
    assert!(
        accepted >= 12,
        "the accepted branch is exercised: {accepted}"
    );
    assert!(refused >= 300, "{refused}");
}

/// `quote(value)` parses back, in the grammar and by PowerShell's own rule, as exactly one
/// single-quoted string token whose content is `value`.
fn assert_one_literal(value: &str) {
    let literal = quote(value);
    let script = format!("$ArgX = {literal}\nexit 0\n");
    let start = "$ArgX = ".len();
    // The grammar stops at NUL; PowerShell reads on (its tokenizer ends only at the end of the
    // text). The validators refuse NUL anyway, so only PowerShell's rule is checked for it.
    if !value.contains('\0') {
        assert_one_grammar_token(&script, start, literal.len(), value);
    }
    // The grammar treats only ASCII ' as a quote; PowerShell also treats U+2018..U+201B as one,
    // so the content is read again by PowerShell's rule.
    assert_eq!(
        unquote_prefix(&script[start..]),
        Some((value.to_string(), literal.len())),
        "{value:?}"
    );
}

fn assert_one_grammar_token(script: &str, start: usize, len: usize, value: &str) {
    let tree = parse(script);
    assert_eq!(syntax_errors(script), Vec::<String>::new(), "{value:?}");
    let mut tokens = Vec::new();
    each(tree.root_node(), &mut |n| {
        if n.kind() == "verbatim_string_characters" {
            tokens.push((n.start_byte(), n.end_byte()));
        }
    });
    assert_eq!(tokens, [(start, start + len)], "{value:?}");
}

#[test]
fn quoted_corpus_values_are_one_literal_each() {
    for value in corpus() {
        assert_one_literal(&value);
    }
}

#[test]
fn the_literal_check_catches_a_quoter_that_forgets_typographic_quotes() {
    let naive = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let value = "\u{2019}; calc; \u{2019}";
    let literal = naive(value);
    // The grammar alone is fooled (it sees one token)...
    let script = format!("$ArgX = {literal}\n");
    assert!(syntax_errors(&script).is_empty());
    // ...PowerShell's rule is not: the literal ends at the first U+2019.
    assert_ne!(
        unquote_prefix(&literal),
        Some((value.to_string(), literal.len()))
    );
}

mod props {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_string_quotes_to_one_literal(
            value in "([a-zA-Z0-9 $`\"';|&(){}@#<>\\\\\u{2018}\u{2019}\u{201A}\u{201B}\u{201C}\u{201D}\n\r\tä日]){0,40}"
        ) {
            super::assert_one_literal(&value);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots of what goes to Windows

#[test]
fn rendered_scripts_snapshot() {
    insta::with_settings!({ snapshot_path => "fixtures/wsus/snapshots", prepend_module_to_snapshot => false }, {
        for name in OpName::ALL {
            insta::assert_snapshot!(name.as_str(), render(&sample(name)));
        }
        insta::assert_snapshot!(
            "decline_named_connection",
            render_via(&sample(OpName::Decline), &connections()[1])
        );
    });
}
