//! `wsusfix demo`: the whole story on the built-in simulator, with no setup and no prompt. A lab
//! hierarchy where every server holds KB 954960's inconsistent approvals; `diagnose` finds the
//! symptom in a client's log; the plan; the top-down repair with live progress; the clients
//! detecting again; the recap and the restore ledger. `--faults` adds a host that dies and a
//! flaky one; `--crash` kills the apply while a replica is held and resumes it; `--kerberos`
//! runs the lab in a Kerberos domain (an MIT KDC on loopback, every host refusing NTLM).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::core::diagnose::{self, LogInput};
use crate::core::hierarchy::Hierarchy;
use crate::core::logs::kind::LogKind;
use crate::core::plan::{self, PlanOptions};
use crate::core::{inventory, playbook, render};
use crate::exec::connect::WinrmConnector;
use crate::exec::run::RunConfig;
use crate::exec::session::{self, RunInputs, Session, Start};
use crate::exec::signals;
use crate::exit;
use crate::journal::paths::RunDir;
use crate::report::{self, Format};
use crate::sim::fleet::{Fleet, FleetConfig};
use crate::sim::scenario::Scenario;
use crate::util::credentials::Resolver;

/// The lab inventory the demo serves (the same file as inventory/lab.yaml).
const LAB: &str = include_str!("../../inventory/lab.yaml");
/// The lab in a Kerberos domain (inventory/lab-kerberos.yaml).
const LAB_KERBEROS: &str = include_str!("../../inventory/lab-kerberos.yaml");
/// The project's realm script (tests/kdc/realm.sh): the demo's domain controller.
const REALM_SCRIPT: &str = include_str!("../../tests/kdc/realm.sh");
/// The MIT programs the realm needs.
const KDC_TOOLS: &[&str] = &["krb5kdc", "kdb5_util", "kadmin.local"];

/// Arguments of `demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Add a host that dies mid-run (its subtree is blocked) and a flaky one (retried).
    #[arg(long, conflicts_with = "crash")]
    pub faults: bool,
    /// Kill the apply (SIGKILL; TerminateProcess on Windows) while a replica is held
    /// autonomous, then resume it.
    #[arg(long)]
    pub crash: bool,
    /// Serve the lab on 127.N.x.y instead of 127.0.x.y (to run beside another simulator).
    #[arg(long, default_value_t = 0, hide = true)]
    pub subnet: u8,
    /// Keep the demo's files (inventory, journals, simulator state) in DIR.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Output: text, or NDJSON events of the apply on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The lab in a Kerberos domain: an MIT KDC on loopback issues the tickets, every host
    /// refuses NTLM, messages are sealed with Kerberos (needs Debian's krb5-kdc and
    /// krb5-admin-server).
    #[arg(long)]
    pub kerberos: bool,
}

/// Where a program is on PATH (Debian puts the KDC's in /usr/sbin).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The demo's realm: started by the project's script, stopped when dropped.
struct DemoRealm {
    script: PathBuf,
    dir: PathBuf,
    kdc: String,
    keytab: PathBuf,
}

impl DemoRealm {
    /// Starts LAB.TEST with a service principal for every host of `inv`.
    fn start(dir: &Path, inv: &inventory::Inventory, kdc: &str) -> Result<DemoRealm, String> {
        let missing: Vec<&str> = KDC_TOOLS
            .iter()
            .copied()
            .filter(|t| find_program(t).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "demo --kerberos needs MIT Kerberos to play the domain controller, and {} {} not \
                 installed (or not on PATH)\n  = help: install Debian's krb5-kdc and krb5-admin-server \
                 (apt-get install krb5-kdc krb5-admin-server krb5-user, or \
                 tests/kdc/realm.sh install from the source tree), then run the demo again; \
                 `wsusfix demo` without --kerberos needs nothing",
                missing.join(", "),
                if missing.len() == 1 { "is" } else { "are" }
            ));
        }
        let script = dir.join("realm.sh");
        std::fs::write(&script, REALM_SCRIPT)
            .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
        let realm_dir = dir.join("realm");
        let password = std::env::var("WSUSFIX_PASSWORD").unwrap_or_default();
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(&script)
            .arg("start")
            .arg(&realm_dir)
            .args(["--realm", "LAB.TEST", "--kdc", kdc, "--user", "wsusfix"])
            .env("REALM_PASSWORD", password)
            .stdin(std::process::Stdio::null());
        let names = inv
            .servers()
            .iter()
            .filter_map(|s| s.spn_host.clone())
            .chain(inv.clients().filter_map(|(_, c)| c.spn_host.clone()));
        for h in names {
            cmd.arg("--service").arg(format!("HTTP/{h}"));
        }
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let realm = DemoRealm {
            script,
            dir: realm_dir.clone(),
            kdc: kdc.to_string(),
            keytab: realm_dir.join("services.keytab"),
        };
        if !out.status.success() {
            return Err(format!(
                "the demo's KDC did not start: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(realm)
    }
}

impl Drop for DemoRealm {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

fn scenario(faults: bool, kerberos: bool) -> Scenario {
    // Timings that make the progress visible and still finish in seconds.
    let mut text = String::from(
        "seed: 954960\n\
         defaults: { broken: true, declined: random, latency_ms: [40, 120], install_ms: [1500, 2500], sync_ms: [200, 500] }\n\
         client_defaults: { first_detection_after_repair_fails: 0.5, detect_ms: [300, 700] }\n",
    );
    if kerberos {
        // A hardened domain: no host takes NTLM, so every logon shown is Kerberos.
        text.push_str("transport_defaults: { ntlm: false }\n");
    }
    if faults {
        text.push_str(
            "transport:\n  \
             wsus-us: { dies_after_requests: 14 }\n  \
             wsus-eu-paris: { http500: 2, timed_out_storm: 2 }\n",
        );
    }
    Scenario::parse(&text).expect("the demo scenario is valid")
}

fn section(out: &mut dyn Write, n: u32, title: &str) {
    let _ = writeln!(out, "\n== {n}. {title}\n");
    let _ = out.flush();
}

/// Runs the demo.
pub fn run(a: &DemoArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    // The inventory refers to env:WSUSFIX_PASSWORD; the demo's simulator and its runs share one.
    if std::env::var_os("WSUSFIX_PASSWORD").is_none() {
        // SAFETY: no other thread exists yet (the runtime starts below).
        unsafe { std::env::set_var("WSUSFIX_PASSWORD", "Demo-Passw0rd!") };
    }
    let tmp;
    let dir: PathBuf = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = match tempfile::Builder::new().prefix("wsusfix-demo").tempdir() {
                Ok(t) => t,
                Err(e) => {
                    let _ = writeln!(err, "error: cannot create a folder for the demo: {e}");
                    return exit::ERROR;
                }
            };
            tmp.path().to_path_buf()
        }
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        let _ = writeln!(err, "error: cannot create {}: {e}", dir.display());
        return exit::ERROR;
    }
    let source = if a.kerberos { LAB_KERBEROS } else { LAB };
    let inv_text = source.replace("127.0.", &format!("127.{}.", a.subnet));
    let inv_path = dir.join(if a.kerberos {
        "lab-kerberos.yaml"
    } else {
        "lab.yaml"
    });
    if let Err(e) = std::fs::write(&inv_path, &inv_text) {
        let _ = writeln!(err, "error: cannot write {}: {e}", inv_path.display());
        return exit::ERROR;
    }
    let inv = inventory::load(&inv_text)
        .inventory
        .expect("the lab inventory is valid");
    let pb = playbook::load(playbook::DEFAULT_PLAYBOOK)
        .playbook
        .expect("the built-in playbook is valid");
    let h = Hierarchy::new(&inv);
    let plan = plan::plan(&inv, &h, &pb, &PlanOptions::default()).expect("the lab plans");
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(err, "error: cannot start the runtime: {e}");
            return exit::ERROR;
        }
    };
    let resolver = Arc::new(Resolver::new(&dir));
    let state_file = dir.join("sim-state.json");
    let realm = if a.kerberos {
        let kdc = format!("127.{}.0.1:18888", a.subnet);
        match DemoRealm::start(&dir, &inv, &kdc) {
            Ok(r) => Some(r),
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                return exit::ERROR;
            }
        }
    } else {
        None
    };
    let keytab = match &realm {
        Some(r) => match crate::sim::endpoint::Keytab::read(&r.keytab) {
            Ok(k) => Some(k),
            Err(e) => {
                let _ = writeln!(err, "error: the demo's realm wrote no usable keytab: {e}");
                return exit::ERROR;
            }
        },
        None => None,
    };
    let fleet = rt.block_on(Fleet::start(
        &inv,
        &scenario(a.faults, a.kerberos),
        &resolver,
        FleetConfig {
            http_port: 5985,
            https_port: None,
            state_file: Some(state_file.clone()),
            keytab,
        },
    ));
    let fleet = match fleet {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(
                err,
                "error: cannot start the simulated lab: {e}\n  = help: is another simulator serving 127.{}.x.y:5985? try `wsusfix demo --dir DIR` after stopping it",
                a.subnet
            );
            return exit::ERROR;
        }
    };
    let text = a.format == Format::Text;
    let say = |out: &mut dyn Write, s: &str| {
        if text {
            let _ = write!(out, "{s}");
            let _ = out.flush();
        }
    };
    let logon = match &realm {
        Some(r) => format!(
            "Kerberos with message encryption, tickets from an MIT KDC on {} for the realm LAB.TEST;\n\
             every host refuses NTLM, as in a hardened domain",
            r.kdc
        ),
        None => "NTLM with message encryption, as Windows speaks it".to_string(),
    };
    say(
        out,
        &format!(
            "wsusfix demo: Microsoft KB 954960 on a simulated WSUS 3.0 hierarchy of {} servers and {} clients,\n\
         each one a WinRM endpoint on its own loopback address ({logon}).\n\
         Every server holds the inconsistent approval state of the revised Office 2003 SP1 update.\n",
            inv.servers().len(),
            inv.clients().count()
        ),
    );

    // 1. The symptom, as an admin finds it.
    if text {
        section(
            out,
            1,
            "The symptom: a client of wsus-eu fails detection (wsusfix diagnose)",
        );
    }
    let (client_log, server_log) = {
        let w = fleet.world();
        let w = w.lock().expect("world");
        (
            w.clients["pc-eu-1"].log.join("\r\n"),
            w.servers["wsus-eu"].softdist.join("\r\n"),
        )
    };
    let _ = std::fs::write(dir.join("pc-eu-1-WindowsUpdate.log"), &client_log);
    let _ = std::fs::write(dir.join("wsus-eu-SoftwareDistribution.log"), &server_log);
    let d = diagnose::diagnose(&[
        LogInput {
            path: "pc-eu-1/WindowsUpdate.log",
            kind: LogKind::WindowsUpdate,
            text: &client_log,
        },
        LogInput {
            path: "wsus-eu/SoftwareDistribution.log",
            kind: LogKind::SoftwareDistribution,
            text: &server_log,
        },
    ]);
    say(out, &diagnose::render_text(&d));

    // 2. The plan.
    if text {
        section(
            out,
            2,
            "The plan: what apply will do, in which order (wsusfix plan)",
        );
    }
    say(out, &render::text(&plan));

    // 3. The run.
    if text {
        section(
            out,
            3,
            "Applying it: top-down, siblings in parallel, every replica held and restored (wsusfix apply)",
        );
    }
    let rd = RunDir::new(&dir.join("state"), &inv_path);
    let connector = Arc::new(WinrmConnector::new(resolver.clone(), &dir));
    let session = Session {
        run_dir: rd.clone(),
        connector,
        config: RunConfig::default(),
    };
    let run_inputs = RunInputs {
        inventory: &inv,
        playbook: &pb,
        inventory_path: &inv_path,
        playbook_path: None,
    };
    let code = if a.crash {
        crash_and_resume(
            &rt, &dir, &inv_path, &session, run_inputs, a.format, out, err,
        )
    } else {
        let run_id = crate::journal::paths::new_run_id();
        let mut sink = report::choose(a.format, &run_id);
        let outcome = rt.block_on(session.run(
            Start::Fresh(Box::new(plan.clone()), run_id),
            run_inputs,
            signals::none(),
            sink.as_mut(),
        ));
        if text
            && realm.is_some()
            && let session::Outcome::Ran(r) = &outcome
        {
            let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
            for (_, s) in &r.stats {
                let m = s.mechanism.map(|m| m.as_str()).unwrap_or("none");
                *by.entry(m).or_default() += 1;
            }
            let parts: Vec<String> = by.iter().map(|(m, n)| format!("{n} {m}")).collect();
            let _ = writeln!(
                out,
                "
Logons by protocol: {}",
                parts.join(", ")
            );
        }
        outcome.exit_code()
    };

    // 4. The proof.
    let view = fleet.world().lock().map(|w| w.view()).ok();
    rt.block_on(fleet.shutdown());
    drop(realm);
    let Some(view) = view else { return exit::ERROR };
    let consistent = view
        .servers
        .values()
        .filter(|s| s.approvals_consistent)
        .count();
    let replicas: Vec<&str> = inv
        .servers()
        .iter()
        .filter(|s| s.role == inventory::Role::Replica)
        .map(|s| s.name.as_str())
        .collect();
    let back = replicas
        .iter()
        .filter(|r| view.servers[**r].replica)
        .count();
    let detecting = view
        .clients
        .values()
        .filter(|c| c.last_detection == Some(crate::sim::world::DetectionResult::Succeeded))
        .count();
    if text {
        section(out, 4, "The proof, from the simulated world itself");
        let _ = writeln!(
            out,
            "servers with consistent approvals: {consistent}/{}\nreplicas back in replica mode:     {back}/{}\nclients detecting updates:         {detecting}/{}",
            view.servers.len(),
            replicas.len(),
            view.clients.len()
        );
        let _ = writeln!(
            out,
            "\nThe demo's files (inventory, journal, simulator state, the two logs) are in {}",
            dir.display()
        );
        if a.dir.is_none() {
            let _ = writeln!(
                out,
                "(a temporary folder, removed now; keep them with --dir DIR)"
            );
        }
    }
    let all_good = consistent == view.servers.len()
        && back == replicas.len()
        && detecting == view.clients.len();
    if a.faults {
        // The story of --faults: wsus-us dies, its subtree is blocked, everything else is
        // repaired, and no replica is left autonomous.
        let expected = back == replicas.len() && code == exit::FINDINGS;
        if text {
            let _ = writeln!(
                out,
                "\nAs expected with --faults: wsus-us died mid-run, so wsus-us-dallas (below it) was blocked and left alone;\n\
                 the flaky wsus-eu-paris was retried; every replica that was held is a replica again."
            );
        }
        return if expected { exit::OK } else { exit::ERROR };
    }
    if all_good && code == exit::OK {
        exit::OK
    } else {
        code.max(exit::ERROR)
    }
}

/// `--crash`: the apply runs as a child process and is killed with SIGKILL while a replica is
/// held autonomous; `status` shows the hold; `resume` restores it first and finishes the run.
#[allow(clippy::too_many_arguments)]
fn crash_and_resume(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    inv_path: &Path,
    session: &Session<WinrmConnector>,
    inputs: RunInputs<'_>,
    format: Format,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            let _ = writeln!(err, "error: cannot find the wsusfix executable: {e}");
            return exit::ERROR;
        }
    };
    let mut child = match std::process::Command::new(&exe)
        .arg("apply")
        .arg("-i")
        .arg(inv_path)
        .arg("--yes")
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "error: cannot start the apply: {e}");
            return exit::ERROR;
        }
    };
    let rd = &session.run_dir;
    // Wait until the journal shows a replica held autonomous, then kill the apply.
    let mut held = Vec::new();
    for _ in 0..600 {
        std::thread::sleep(Duration::from_millis(20));
        held = session::held_replicas(rd).into_keys().collect();
        if !held.is_empty() {
            break;
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = writeln!(
        out,
        "\n{} while {} held autonomous: no handler ran, no restore happened.\n",
        if cfg!(windows) {
            "TerminateProcess"
        } else {
            "kill -9"
        },
        if held.is_empty() {
            "no replica was".to_string()
        } else {
            format!("{} was", held.join(", "))
        }
    );
    let Some(run_id) = rd.latest() else {
        let _ = writeln!(
            err,
            "error: the apply was killed before it wrote its journal"
        );
        return exit::ERROR;
    };
    match session::inspect(rd, &run_id) {
        Ok(st) => {
            let _ = writeln!(out, "wsusfix status {run_id}:");
            let _ = writeln!(out, "{}", st.text());
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return exit::ERROR;
        }
    }
    let _ = writeln!(
        out,
        "wsusfix resume: restores what the crash left first, then finishes the run.\n"
    );
    let mut sink = report::choose(format, &run_id);
    let outcome = rt.block_on(session.run(
        Start::Resume(run_id),
        inputs,
        signals::none(),
        sink.as_mut(),
    ));
    if let session::Outcome::Refused(r) = &outcome {
        let _ = writeln!(err, "error: {}", r.message());
    }
    outcome.exit_code()
}
