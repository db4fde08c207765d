//! "Know before and prove after" through the real binary against the simulator on loopback:
//! `plan --facts` marks exactly the broken servers affected, `verify` fails before `apply` and
//! passes after it, and `discover` walks the lab back into an inventory. Each test serves its own
//! lab on its own 127.15x.0.0/16 subnet.

mod common;

use std::path::{Path, PathBuf};

use common::{Lab, PASSWORD, Run, root};
use serde_json::Value;
use wsusfix::core::inventory::{self, Inventory, Role, Scheme};

/// Two servers broken, the rest healthy, one server that refuses connections.
const TWO_BROKEN: &str = "\
seed: 3
defaults: { broken: false }
servers:
  wsus-eu: { broken: true }
  wsus-us: { broken: true }
transport:
  wsus-eu-berlin: { refuse: true }
";

/// `wsusfix ARGS...` with the lab's password, for commands that take no --state-dir.
fn wsusfix(args: &[&str]) -> Run {
    Run::new(args)
        .env("WSUSFIX_PASSWORD", PASSWORD)
        .env("WSUSFIX_CLIENT_PASSWORD", PASSWORD)
}

fn inv(lab: &Lab) -> String {
    lab.inventory.display().to_string()
}

fn server<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in the plan"))
}

fn verdicts(plan: &Value) -> Vec<(String, String)> {
    plan["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["facts"]["affected"]
                    .as_str()
                    .unwrap_or("none")
                    .to_string(),
            )
        })
        .collect()
}

/// The default playbook with `unaffected: skip`.
fn skipping_playbook(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("playbooks/kb954960.yaml")).unwrap();
    assert!(text.contains("unaffected: fix"));
    let path = dir.join("skip-unaffected.yaml");
    std::fs::write(&path, text.replace("unaffected: fix", "unaffected: skip")).unwrap();
    path
}

fn load(path: &Path) -> Inventory {
    let text = std::fs::read_to_string(path).unwrap();
    let loaded = inventory::load(&text);
    loaded.inventory.unwrap_or_else(|| {
        panic!(
            "{} does not validate: {:?}",
            path.display(),
            loaded.diagnostics
        )
    })
}

#[test]
fn plan_facts_marks_exactly_the_broken_servers_affected() {
    let lab = Lab::start("lab.yaml", 150, Some(TWO_BROKEN));
    let d = wsusfix(&["plan", "-i", &inv(&lab), "--facts", "--format", "json"])
        .run()
        .code(0)
        .stderr_has("facts of 6 servers")
        .stderr_has("2 affected, 3 not affected, 1 unknown");
    let plan: Value = serde_json::from_str(&d.stdout).unwrap();
    let mut got = verdicts(&plan);
    got.sort();
    let want: Vec<(String, String)> = [
        ("wsus-eu", "affected"),
        ("wsus-eu-berlin", "unknown"),
        ("wsus-eu-paris", "not-affected"),
        ("wsus-hq", "not-affected"),
        ("wsus-us", "affected"),
        ("wsus-us-dallas", "not-affected"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);

    // The evidence: the duplicated group and the server log's record, each quoted.
    let eu = &server(&plan, "wsus-eu")["facts"]["evidence"];
    let eu: Vec<&str> = eu
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        eu.iter()
            .any(|e| e.contains("approved more than once for All Computers"))
            || eu.iter().any(|e| e.contains("duplicate-key record")),
        "{eu:?}"
    );
    assert!(
        eu.iter().any(|e| e.starts_with("latest: ")
            && e.contains("UTC Error w3wp.")
            && e.contains("Item has already been added")),
        "{eu:?}"
    );
    let berlin = &server(&plan, "wsus-eu-berlin")["facts"]["evidence"][0];
    assert!(
        berlin
            .as_str()
            .unwrap()
            .starts_with("facts could not be read: "),
        "{berlin}"
    );
    assert!(berlin.as_str().unwrap().contains("127.150.1.5"), "{berlin}");

    // The default playbook fixes unaffected servers too; the version came from the facts.
    for s in plan["servers"].as_array().unwrap() {
        assert_eq!(s["skip"], Value::Null, "{}", s["name"]);
    }
    assert_eq!(server(&plan, "wsus-us-dallas")["path_source"], "facts");
    let dallas = server(&plan, "wsus-us-dallas");
    assert_ne!(dallas["path"], "runtime");
    assert_eq!(dallas["path"], dallas["facts"]["version"]);
    assert_eq!(server(&plan, "wsus-eu-berlin")["path_source"], "inventory");

    // The text plan shows the same, with the evidence under each server.
    wsusfix(&["plan", "-i", &inv(&lab), "--facts", "--since", "2d"])
        .run()
        .code(0)
        .stdout_has("wsus-hq  [upstream, 3.0 SP1 from live facts]")
        .stdout_has("      facts: not affected\n")
        .stdout_has("facts: affected\n")
        .stdout_has("facts: unknown\n")
        .stdout_has("duplicate-key record since ")
        .stderr_has("2 affected, 3 not affected, 1 unknown");
}

#[test]
fn a_playbook_that_skips_unaffected_servers_leaves_them_alone() {
    let lab = Lab::start("lab.yaml", 151, Some(TWO_BROKEN));
    let pb = skipping_playbook(lab.dir.path());
    let pb = pb.display().to_string();
    let plan_file = lab.dir.path().join("plan.json");
    let plan_path = plan_file.display().to_string();
    wsusfix(&[
        "plan",
        "-i",
        &inv(&lab),
        "-p",
        &pb,
        "--facts",
        "--format",
        "json",
        "--out",
        &plan_path,
    ])
    .run()
    .code(0);
    let plan: Value = serde_json::from_slice(&std::fs::read(&plan_file).unwrap()).unwrap();
    for name in ["wsus-hq", "wsus-eu-paris", "wsus-us-dallas"] {
        let s = server(&plan, name);
        assert_eq!(
            s["skip"], "not affected (the playbook skips unaffected servers)",
            "{name}"
        );
        assert_eq!(s["steps"], Value::Array(Vec::new()), "{name}");
    }
    for name in ["wsus-eu", "wsus-us", "wsus-eu-berlin"] {
        assert_eq!(server(&plan, name)["skip"], Value::Null, "{name}");
    }
    assert_eq!(plan["summary"]["skipped"], 3);

    // apply --plan runs that plan as written: the skipped servers are not touched.
    let d = lab
        .wsusfix("apply", &["-p", &pb, "--plan", &plan_path, "--yes"])
        .run()
        .code(2);
    assert!(d.stdout.contains("wsus-eu-berlin"), "{}", d.stdout);
    let state = lab.sim.state();
    assert_eq!(state["servers"]["wsus-hq"]["hotfix_installs"], 0);
    assert_eq!(state["servers"]["wsus-eu-paris"]["mode_switches"], 0);
    assert_eq!(state["servers"]["wsus-us"]["hotfix_installs"], 1);
    assert_eq!(state["servers"]["wsus-eu"]["approvals_consistent"], true);
}

#[test]
fn facts_that_contradict_the_inventory_skip_the_server_in_the_plan() {
    let scenario =
        std::fs::read_to_string(root().join("tests/fixtures/scenarios/contradicts-inventory.yaml"))
            .unwrap();
    let lab = Lab::start("lab.yaml", 152, Some(&scenario));
    let d = wsusfix(&["plan", "-i", &inv(&lab), "--facts", "--format", "json"])
        .run()
        .code(0)
        .stderr_has("2 contradicting the inventory");
    let plan: Value = serde_json::from_str(&d.stdout).unwrap();
    let berlin = server(&plan, "wsus-eu-berlin");
    assert_eq!(
        berlin["facts"]["contradictions"][0],
        "the inventory says autonomous, but the server is a replica"
    );
    assert!(
        berlin["skip"]
            .as_str()
            .unwrap()
            .starts_with("facts contradict the inventory: ")
    );
    assert!(
        server(&plan, "wsus-eu")["facts"]["contradictions"][0]
            .as_str()
            .unwrap()
            .contains("the inventory says WSUS 3.0 RTM, but the server runs 3.0 SP1")
    );
    assert_eq!(server(&plan, "wsus-hq")["skip"], Value::Null);
    // No version in the inventory, SP2 on the server: the facts choose the SP2 path, skipped.
    let dallas = server(&plan, "wsus-us-dallas");
    assert_eq!(dallas["facts"]["affected"], "not-affected");
    assert_eq!(dallas["path"], "3.0-sp2");
    assert_eq!(dallas["path_source"], "facts");
    assert_eq!(dallas["skip"], "WSUS 3.0 SP2 already contains the fix");
}

#[test]
fn verify_fails_before_apply_and_passes_after_it() {
    let lab = Lab::start("lab.yaml", 153, None);
    let before = wsusfix(&["verify", "-i", &inv(&lab)])
        .run()
        .code(2)
        .stdout_has("FAILED")
        .stdout_has("0x8024400E SyncUpdates failure of KB 954960 (fault ID ")
        .stdout_has("PT WARNING: SyncUpdates failure, error = 0x8024400E")
        .stdout_has(
            "Result: 0 of 6 canary clients detect, 6 fail (up to 2 detections each; exit 2)",
        );
    assert!(
        before.stdout.contains("2 of 2 detections"),
        "{}",
        before.stdout
    );

    lab.wsusfix("apply", &["--yes"]).run().code(0);

    let after = wsusfix(&["verify", "-i", &inv(&lab), "--format", "json"])
        .run()
        .code(0);
    let v: Value = serde_json::from_str(&after.stdout).unwrap();
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["summary"]["succeeded"], 6);
    for c in v["clients"].as_array().unwrap() {
        assert_eq!(c["succeeded"], true, "{c}");
        assert_eq!(c["detection"]["outcome"], "succeeded", "{c}");
        assert!(
            c["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l.as_str().unwrap().contains("Found ")),
            "{c}"
        );
    }
    // Top-down order: the top server's client first.
    assert_eq!(v["clients"][0]["client"], "pc-hq-1");
}

#[test]
fn verify_names_unreachable_clients_and_bad_input() {
    let lab = Lab::start(
        "lab.yaml",
        154,
        Some("seed: 1\ndefaults: { broken: false }\ntransport:\n  pc-paris-1: { refuse: true }\n"),
    );
    let d = wsusfix(&["verify", "-i", &inv(&lab), "--limit", "wsus-eu"])
        .run()
        .code(2)
        .stdout_has("Result: 2 of 3 canary clients detect, 1 fails");
    let paris = d
        .stdout
        .lines()
        .find(|l| l.starts_with("pc-paris-1 "))
        .unwrap_or_else(|| panic!("{}", d.stdout));
    assert!(
        paris.contains("(wsus-eu-paris)")
            && paris.contains("FAILED     0 detections run: not reached: "),
        "{paris}"
    );
    assert!(
        paris.contains("cannot connect: connection refused"),
        "{paris}"
    );
    wsusfix(&["verify", "-i", &inv(&lab), "--limit", "wsus-us"])
        .run()
        .code(0)
        .stdout_has("Result: 2 of 2 canary clients detect (");
    wsusfix(&["verify", "-i", &inv(&lab), "--limit", "wsus-uss"])
        .run()
        .code(3)
        .stderr_has("unknown server `wsus-uss`")
        .stderr_has("did you mean `wsus-us`?");
    // An inventory without canary clients has nothing to verify on.
    let bare = lab.dir.path().join("bare.yaml");
    std::fs::write(
        &bare,
        "defaults: { username: u, password: env:WSUSFIX_PASSWORD }\nservers:\n  hq: { role: upstream, address: 127.154.9.1 }\n",
    )
    .unwrap();
    wsusfix(&["verify", "-i", &bare.display().to_string()])
        .run()
        .code(3)
        .stderr_has("no canary clients");
    // A password reference that does not resolve is an input error before anything connects.
    let unset = lab.dir.path().join("unset.yaml");
    std::fs::write(
        &unset,
        "defaults: { username: u, password: env:WSUSFIX_TEST_SURELY_UNSET_PASSWORD }\nservers:\n  hq: { role: upstream, address: 127.154.9.1, clients: { pc: { address: 127.154.9.2 } } }\n",
    )
    .unwrap();
    wsusfix(&["verify", "-i", &unset.display().to_string()])
        .run()
        .code(3)
        .stderr_has(
            "env:WSUSFIX_TEST_SURELY_UNSET_PASSWORD names an environment variable that is not set",
        );
}

#[test]
fn discover_from_the_top_server_reproduces_the_lab() {
    let lab = Lab::start(
        "lab.yaml",
        155,
        Some("seed: 1\ndefaults: { broken: false }\n"),
    );
    let hosts = lab.dir.path().join("sim-hosts");
    assert!(
        lab.sim
            .banner
            .contains(&format!("hosts file: {}", hosts.display())),
        "{}",
        lab.sim.banner
    );
    let out = lab.dir.path().join("found.yaml");
    wsusfix(&[
        "discover",
        "--root",
        "wsus-hq",
        "--hosts",
        &hosts.display().to_string(),
        "--username",
        "LAB\\wsusfix",
        "--out",
        &out.display().to_string(),
    ])
    .run()
    .code(0)
    .stderr_has("discovered 6 servers from wsus-hq; wrote ");
    let found = load(&out);
    let lab_inv = load(&lab.inventory);
    let shape = |i: &Inventory| -> Vec<(String, Role, Option<String>, String)> {
        i.servers()
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.role,
                    s.upstream.clone(),
                    s.address.clone(),
                )
            })
            .collect()
    };
    assert_eq!(shape(&found), shape(&lab_inv));
    for s in found.servers() {
        assert_eq!(s.credentials.username, "LAB\\wsusfix");
        assert_eq!(s.credentials.password.to_string(), "env:WSUSFIX_PASSWORD");
        assert_eq!(s.wsus.port, 8530, "{}", s.name);
        assert!(s.clients.is_empty());
        assert!(s.version.is_some(), "{}", s.name);
    }
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("# - canary clients: "), "{text}");
    assert!(text.contains("# - credentials: every host logs on as LAB\\wsusfix with the password from env:WSUSFIX_PASSWORD;"), "{text}");
    assert!(
        !text.contains(PASSWORD),
        "the password itself is never written"
    );
    // The output validates, and plans.
    let found_path = out.display().to_string();
    wsusfix(&["validate", "-i", &found_path]).run().code(0);
    wsusfix(&["plan", "-i", &found_path])
        .run()
        .code(0)
        .stdout_has("Summary: 6 servers");
    // Without --out it goes to standard output.
    wsusfix(&[
        "discover",
        "--root",
        "wsus-hq",
        "--hosts",
        &hosts.display().to_string(),
        "--username",
        "LAB\\wsusfix",
    ])
    .run()
    .code(0)
    .stdout_has("servers:\n  wsus-hq:\n    role: upstream\n");
    // Over HTTPS, trusting the simulator's CA: the file is written into the inventory, and
    // the inventory it wrote reaches every server with it.
    let https = lab.dir.path().join("found-https.yaml");
    wsusfix(&[
        "discover",
        "--root",
        "wsus-hq",
        "--hosts",
        &hosts.display().to_string(),
        "--username",
        "LAB\\wsusfix",
        "--scheme",
        "https",
        "--ca-file",
        &lab.sim.ca.display().to_string(),
        "--out",
        &https.display().to_string(),
    ])
    .run()
    .code(0)
    .stderr_has("discovered 6 servers from wsus-hq; wrote ");
    let found = load(&https);
    assert_eq!(shape(&found), shape(&lab_inv));
    let ca = std::fs::canonicalize(&lab.sim.ca).unwrap();
    for s in found.servers() {
        assert_eq!(s.winrm.scheme, Scheme::Https, "{}", s.name);
        assert_eq!(s.winrm.port, 5986, "{}", s.name);
        assert_eq!(s.winrm.ca_file.as_deref(), Some(ca.to_str().unwrap()));
    }
    Run::new(["plan", "--facts", "-i", &https.display().to_string()])
        .env("WSUSFIX_PASSWORD", PASSWORD)
        .run()
        .code(0)
        .stdout_has("Summary: 6 servers");
}

#[test]
fn discover_walks_contoso_and_learns_the_wsus_sites_of_upstream_servers() {
    let lab = Lab::start(
        "contoso.yaml",
        158,
        Some("seed: 1\ndefaults: { broken: false }\n"),
    );
    let hosts = lab.dir.path().join("sim-hosts").display().to_string();
    let out = lab.dir.path().join("found.yaml");
    wsusfix(&[
        "discover",
        "--root",
        "wsus-hq",
        "--hosts",
        &hosts,
        "--username",
        "CONTOSO\\svc-wsusfix",
        "--out",
        &out.display().to_string(),
    ])
    .run()
    .code(0)
    .stderr_has("discovered 40 servers from wsus-hq");
    let found = load(&out);
    let want = load(&lab.inventory);
    assert_eq!(found.servers().len(), want.servers().len());
    for w in want.servers() {
        let f = found
            .get(&w.name)
            .unwrap_or_else(|| panic!("{} not found", w.name));
        assert_eq!(
            (f.role, &f.upstream, &f.address),
            (w.role, &w.upstream, &w.address),
            "{}",
            w.name
        );
        // A server's WSUS site is learned from its downstream servers' configuration.
        if want
            .servers()
            .iter()
            .any(|c| c.upstream.as_ref() == Some(&w.name))
        {
            assert_eq!(f.wsus, w.wsus, "{}", w.name);
        }
    }
}

#[test]
fn discover_keeps_a_child_it_cannot_reach_with_a_comment() {
    let lab = Lab::start(
        "lab.yaml",
        156,
        Some("seed: 1\ndefaults: { broken: false }\ntransport:\n  wsus-eu: { refuse: true }\n"),
    );
    let hosts = lab.dir.path().join("sim-hosts").display().to_string();
    let out = lab.dir.path().join("found.yaml");
    wsusfix(&[
        "discover",
        "--root",
        "wsus-hq",
        "--hosts",
        &hosts,
        "--username",
        "LAB\\wsusfix",
        "--out",
        &out.display().to_string(),
    ])
    .run()
    .code(2)
    .stderr_has("discovered 4 servers from wsus-hq; 1 could not be read (see the comments)")
    .stderr_has("wsus-eu: not read: ");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("  wsus-eu:\n    # NOT REACHED: "), "{text}");
    assert!(
        text.contains("run `wsusfix discover --root wsus-eu` for its subtree"),
        "{text}"
    );
    let found = load(&out);
    let eu = found.get("wsus-eu").unwrap();
    assert_eq!(
        (eu.role, eu.upstream.as_deref()),
        (Role::Replica, Some("wsus-hq"))
    );
    assert!(
        found.get("wsus-eu-paris").is_none(),
        "below the unreachable server"
    );
    assert!(found.get("wsus-us-dallas").is_some());
}

/// A child outside the allow-list is named, not logged on to, and not written as a server: here
/// the hosts file lists the root and one branch, and nothing is allowed by --allow.
#[test]
fn discover_logs_on_only_inside_the_allow_list() {
    let lab = Lab::start(
        "lab.yaml",
        201,
        Some("seed: 1\ndefaults: { broken: false }\n"),
    );
    let all = std::fs::read_to_string(lab.dir.path().join("sim-hosts")).unwrap();
    let partial: String = all
        .lines()
        .filter(|l| l.ends_with(" wsus-hq") || l.ends_with(" wsus-us"))
        .map(|l| format!("{l}\n"))
        .collect();
    let hosts = lab.dir.path().join("partial-hosts");
    std::fs::write(&hosts, partial).unwrap();
    let out = lab.dir.path().join("found.yaml");
    let done = wsusfix(&[
        "discover",
        "--root",
        "wsus-hq",
        "--hosts",
        &hosts.display().to_string(),
        "--username",
        "LAB\\wsusfix",
        "--out",
        &out.display().to_string(),
    ])
    .run()
    .code(2)
    .stderr_has("discovered 2 servers from wsus-hq")
    .stderr_has("2 servers found but not contacted (outside the allow-list; see the comments):")
    .stderr_has("  wsus-eu (listed by wsus-hq): outside the allow-list")
    .stderr_has("  wsus-us-dallas (listed by wsus-us): outside the allow-list");
    assert!(done.stderr.contains("--allow SUFFIX"), "{}", done.stderr);
    let found = load(&out);
    let names: Vec<&str> = found.servers().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["wsus-hq", "wsus-us"]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains(
            "# - not contacted: 2 servers listed as downstream are outside the allow-list"
        ),
        "{text}"
    );
    assert!(
        text.contains("#     wsus-eu (replica of wsus-hq, 3.0 RTM): outside the allow-list"),
        "{text}"
    );
    wsusfix(&[
        "discover",
        "--root",
        "wsus-hq",
        "--username",
        "u",
        "--allow",
        "10.0.0.0/33",
    ])
    .run()
    .code(3)
    .stderr_has("error: --allow `10.0.0.0/33`: the prefix length must be 0 to 32");
}

#[test]
fn discover_refuses_bad_input_and_an_unreachable_root() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        "127.157.1.1 wsus-hq\n127.157.1 wsus-eu\n\n127.157.1.3\n",
    )
    .unwrap();
    let h = hosts.display().to_string();
    wsusfix(&[
        "discover",
        "--root",
        "wsus-hq",
        "--hosts",
        &h,
        "--username",
        "u",
    ])
    .run()
    .code(3)
    .stderr_has(&format!(
        "error: {h}:2: `127.157.1` is not an IP address (a line is ADDRESS NAME [ALIAS...])"
    ))
    .stderr_has(&format!("error: {h}:4: 127.157.1.3 has no name after it"));
    wsusfix(&[
        "discover",
        "--root",
        "wsus-hq",
        "--hosts",
        "no/such/hosts",
        "--username",
        "u",
    ])
    .run()
    .code(3)
    .stderr_has("cannot read hosts file no/such/hosts");
    // Nothing listens on 127.157.1.1: the root cannot be read, and nothing is written.
    std::fs::write(&hosts, "127.157.1.1 wsus-hq\n").unwrap();
    let out = dir.path().join("found.yaml");
    wsusfix(&[
        "discover",
        "--root",
        "wsus-hq",
        "--hosts",
        &h,
        "--username",
        "u",
        "--out",
        &out.display().to_string(),
    ])
    .run()
    .code(1)
    .stderr_has("error: cannot read the root wsus-hq at 127.157.1.1: ")
    .stderr_has("nothing was written");
    assert!(!out.exists());
    wsusfix(&[
        "discover",
        "--root",
        "wsus-hq",
        "--username",
        "u",
        "--password",
        "Secret1",
    ])
    .run()
    .code(3)
    .stderr_has("--password takes a reference, not a password");
    wsusfix(&[
        "discover",
        "--root",
        "wsus-hq",
        "--username",
        "u",
        "--auth",
        "basic",
    ])
    .run()
    .code(3)
    .stderr_has("--auth basic over --scheme http");
    wsusfix(&[
        "discover",
        "--root",
        "wsus-hq",
        "--username",
        "u",
        "--ca-file",
        &h,
    ])
    .run()
    .code(3)
    .stderr_has("--ca-file only applies with --scheme https");
    wsusfix(&[
        "discover",
        "--root",
        "wsus-hq",
        "--username",
        "u",
        "--scheme",
        "https",
        "--ca-file",
        "no/such/ca.pem",
    ])
    .run()
    .code(3)
    .stderr_has("cannot read the CA file no/such/ca.pem");
    Run::new(["discover", "--root", "wsus-hq"])
        .env("WSUSFIX_PASSWORD", PASSWORD)
        .run()
        .code(3)
        .stderr_has("--username");
}
