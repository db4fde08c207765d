//! `wsusfix demo`: the whole story on the built-in simulator, with no setup and no prompt. A lab
//! hierarchy where every server holds KB 954960's inconsistent approvals; `diagnose` finds the
//! symptom in a client's log; the plan; the top-down repair with live progress; the clients
//! detecting again; the recap and the restore ledger. `--faults` adds a host that dies and a
//! flaky one; `--crash` kills the apply while a replica is held and resumes it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::core::diagnose::{self, LogInput};
use crate::core::hierarchy::Hierarchy;
use crate::core::logs::kind::LogKind;
use crate::core::plan::{self, PlanOptions};
use crate::core::{inventory, playbook, render};
use crate::exec::connect::WinrmConnector;
use crate::exec::run::{self, Job, RunConfig};
use crate::exit;
use crate::journal::paths::{self, RunDir};
use crate::journal::reader::{self, RunState};
use crate::journal::record::{JOURNAL_FORMAT_VERSION, Record, now};
use crate::journal::writer::JournalWriter;
use crate::report::{self, Format};
use crate::sim::fleet::{Fleet, FleetConfig};
use crate::sim::scenario::Scenario;
use crate::util::credentials::Resolver;

/// The lab inventory the demo serves (the same file as inventory/lab.yaml).
const LAB: &str = include_str!("../../inventory/lab.yaml");

/// Arguments of `demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Add a host that dies mid-run (its subtree is blocked) and a flaky one (retried).
    #[arg(long, conflicts_with = "crash")]
    pub faults: bool,
    /// Kill the apply (SIGKILL) while a replica is held autonomous, then resume it.
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
}

fn scenario(faults: bool) -> Scenario {
    // Timings that make the progress visible and still finish in seconds.
    let mut text = String::from(
        "seed: 954960\n\
         defaults: { broken: true, declined: random, latency_ms: [40, 120], install_ms: [1500, 2500], sync_ms: [200, 500] }\n\
         client_defaults: { first_detection_after_repair_fails: 0.5, detect_ms: [300, 700] }\n",
    );
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
    let inv_text = LAB.replace("127.0.", &format!("127.{}.", a.subnet));
    let inv_path = dir.join("lab.yaml");
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
    let fleet = rt.block_on(Fleet::start(
        &inv,
        &scenario(a.faults),
        &resolver,
        FleetConfig {
            http_port: 5985,
            https_port: None,
            state_file: Some(state_file.clone()),
            keytab: None,
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
    say(
        out,
        &format!(
            "wsusfix demo: Microsoft KB 954960 on a simulated WSUS 3.0 hierarchy of {} servers and {} clients,\n\
         each one a WinRM endpoint on its own loopback address (NTLM with message encryption, as Windows speaks it).\n\
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
    let code = if a.crash {
        crash_and_resume(
            &rt, &dir, &inv_path, &rd, &inv, &pb, connector, a.format, out, err,
        )
    } else {
        let run_id = paths::new_run_id();
        let header = Record::Header {
            format_version: JOURNAL_FORMAT_VERSION,
            run_id: run_id.clone(),
            fingerprint: plan.fingerprint.clone(),
            tool_version: plan::TOOL_VERSION.to_string(),
            inventory: inv_path.display().to_string(),
            playbook: None,
            at: now(),
            plan: Box::new(plan.clone()),
        };
        let journal = match JournalWriter::create(&rd.journal(&run_id), &header) {
            Ok(j) => j,
            Err(e) => {
                let _ = writeln!(err, "error: cannot create the journal: {e}");
                return exit::ERROR;
            }
        };
        let mut sink = report::choose(a.format, &run_id);
        let (_tx, rx) = watch::channel(0u32);
        let job = Job {
            command: "apply",
            plan: &plan,
            inventory: &inv,
            playbook: &pb,
            journal,
            resumed: None,
            connector,
            interrupts: rx,
        };
        rt.block_on(run::execute(job, RunConfig::default(), sink.as_mut()))
            .exit_code
    };

    // 4. The proof.
    let view = fleet.world().lock().map(|w| w.view()).ok();
    rt.block_on(fleet.shutdown());
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
    rd: &RunDir,
    inv: &inventory::Inventory,
    pb: &playbook::Playbook,
    connector: Arc<WinrmConnector>,
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
    // Wait until the journal shows a replica held autonomous, then kill the apply.
    let mut held = Vec::new();
    for _ in 0..600 {
        std::thread::sleep(Duration::from_millis(20));
        if let Some(id) = rd.latest()
            && let Ok(j) = reader::read(&rd.journal(&id))
        {
            let st = RunState::replay(&j.records);
            held = st
                .open_obligations()
                .iter()
                .filter(|o| o.id().starts_with("replica-hold:"))
                .map(|o| o.server().to_string())
                .collect();
            if !held.is_empty() {
                break;
            }
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = writeln!(
        out,
        "\nkill -9 while {} held autonomous: no handler ran, no restore happened.\n",
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
    let j = match reader::read(&rd.journal(&run_id)) {
        Ok(j) => j,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return exit::ERROR;
        }
    };
    let st = RunState::replay(&j.records);
    let _ = writeln!(out, "wsusfix status {run_id}:");
    let recap = run::recap_of(
        &st,
        &Default::default(),
        "interrupted",
        exit::RESTORES_PENDING,
        0,
    );
    let _ = writeln!(out, "{}", crate::report::recap::text(&recap, false));
    let _ = writeln!(
        out,
        "wsusfix resume: restores what the crash left first, then finishes the run.\n"
    );
    let writer = match JournalWriter::reopen(&rd.journal(&run_id), j.valid_len) {
        Ok(w) => w,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return exit::ERROR;
        }
    };
    let _ = writer.append_blocking(&Record::Resumed {
        by: "resume".into(),
        pid: std::process::id(),
        at: now(),
    });
    let mut sink = report::choose(format, &run_id);
    let (_tx, rx) = watch::channel(0u32);
    let job = Job {
        command: "resume",
        plan: &st.plan,
        inventory: inv,
        playbook: pb,
        journal: writer,
        resumed: Some(st.clone()),
        connector,
        interrupts: rx,
    };
    rt.block_on(run::execute(job, RunConfig::default(), sink.as_mut()))
        .exit_code
}
