//! `status --from-facts` and `restore --from-facts`: the way back without any journal. Every
//! server the inventory calls a replica is asked whether it is in replica mode; those that are
//! not are listed, and `restore` switches them back (through a run of its own, journaled).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use super::apply::{RestoreArgs, StatusArgs, confirm};
use super::inputs;
use super::remote::{base_dir, check_credentials, runtime};
use crate::exec::connect::{Target, WinrmConnector};
use crate::exec::facts::{ReplicaMode, replica_modes};
use crate::exec::retry::RetryPolicy;
use crate::exec::run::{RunConfig, update_of};
use crate::exec::session::{RunInputs, Session, Start};
use crate::exit;
use crate::journal::paths::{self, RunDir};
use crate::journal::record::Obligation;
use crate::report::{self, Format};
use crate::util::credentials::Resolver;

fn modes(
    inventory: &std::path::Path,
    err: &mut dyn Write,
) -> Result<
    (
        inputs::Inputs,
        std::collections::BTreeMap<String, ReplicaMode>,
    ),
    i32,
> {
    let inputs = inputs::load(err, inventory, None)?;
    let base = base_dir(inventory).to_path_buf();
    let resolver = Arc::new(Resolver::new(&base));
    check_credentials(Target::all(&inputs.inventory).values(), &resolver, err)?;
    let rt = runtime(err)?;
    let connector = Arc::new(WinrmConnector::new(resolver, &base));
    let update = update_of(&inputs.playbook);
    let found = rt.block_on(replica_modes(
        &inputs.inventory,
        connector,
        &update,
        16,
        RetryPolicy::default(),
    ));
    Ok((inputs, found))
}

fn report(found: &std::collections::BTreeMap<String, ReplicaMode>, out: &mut dyn Write) {
    for (name, mode) in found {
        let line = match mode {
            ReplicaMode::Replica => format!("  {name}: replica (as the inventory says)"),
            ReplicaMode::Autonomous => {
                format!("  {name}: AUTONOMOUS, but the inventory says replica")
            }
            ReplicaMode::Unknown(e) => format!("  {name}: unknown ({e})"),
        };
        let _ = writeln!(out, "{line}");
    }
}

/// `status -i INV --from-facts`: exit 4 when a replica is autonomous, 2 when some could not be
/// read, 0 when every replica is in replica mode.
pub fn status_from_facts(a: &StatusArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let Some(inv) = &a.select.inventory else {
        return exit::INVALID;
    };
    let (_, found) = match modes(inv, err) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let held: Vec<&String> = found
        .iter()
        .filter(|(_, m)| **m == ReplicaMode::Autonomous)
        .map(|(n, _)| n)
        .collect();
    let unknown = found.values().any(|m| matches!(m, ReplicaMode::Unknown(_)));
    match a.format {
        Format::Json => {
            let v = serde_json::json!({
                "autonomous": held,
                "unknown": found.iter().filter(|(_, m)| matches!(m, ReplicaMode::Unknown(_))).map(|(n, _)| n).collect::<Vec<_>>(),
                "replicas": found.len(),
            });
            let _ = writeln!(out, "{v}");
        }
        Format::Text => {
            let _ = writeln!(out, "replicas of {} by their live facts:", inv.display());
            report(&found, out);
            if !held.is_empty() {
                let _ = writeln!(
                    out,
                    "\n{} replica{} autonomous: `wsusfix restore -i {} --from-facts` switches {} back",
                    held.len(),
                    if held.len() == 1 { " is" } else { "s are" },
                    inv.display(),
                    if held.len() == 1 { "it" } else { "them" }
                );
            }
        }
    }
    if !held.is_empty() {
        exit::RESTORES_PENDING
    } else if unknown {
        exit::FINDINGS
    } else {
        exit::OK
    }
}

/// `restore -i INV --from-facts [--yes]`.
pub fn restore_from_facts(a: &RestoreArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let Some(inv) = &a.select.inventory else {
        return exit::INVALID;
    };
    let (inputs, found) = match modes(inv, err) {
        Ok(x) => x,
        Err(code) => return code,
    };
    report(&found, err);
    let held: Vec<Obligation> = found
        .iter()
        .filter(|(_, m)| **m == ReplicaMode::Autonomous)
        .map(|(n, _)| Obligation::ReplicaHold { server: n.clone() })
        .collect();
    if held.is_empty() {
        let _ = writeln!(
            err,
            "no replica of the inventory is autonomous: nothing to restore"
        );
        return if found.values().any(|m| matches!(m, ReplicaMode::Unknown(_))) {
            exit::RESTORES_PENDING
        } else {
            exit::OK
        };
    }
    if !a.yes {
        let question = format!(
            "Switch {} back to replica of {}?",
            held.iter()
                .map(Obligation::server)
                .collect::<Vec<_>>()
                .join(", "),
            if held.len() == 1 {
                "its upstream"
            } else {
                "their upstreams"
            }
        );
        match confirm(&question, "restore --from-facts", err) {
            Ok(true) => {}
            Ok(false) => {
                let _ = writeln!(err, "Nothing was done: the restore was not confirmed.");
                return exit::DECLINED;
            }
            Err(code) => return code,
        }
    }
    let base = base_dir(inv).to_path_buf();
    let rt = match runtime(err) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let run_id = paths::new_run_id();
    let mut sink = report::choose(a.run.format, &run_id);
    let session = Session {
        run_dir: RunDir::new(&paths::state_dir(a.run.state_dir.as_deref()), inv),
        connector: Arc::new(WinrmConnector::new(Arc::new(Resolver::new(&base)), &base)),
        config: RunConfig::default(),
    };
    let pb: Option<PathBuf> = None;
    let outcome = rt.block_on(async {
        let signals = crate::exec::signals::listen();
        session
            .run(
                Start::FromFacts(held, run_id),
                RunInputs {
                    inventory: &inputs.inventory,
                    playbook: &inputs.playbook,
                    inventory_path: inv,
                    playbook_path: pb.as_deref(),
                },
                signals,
                sink.as_mut(),
            )
            .await
    });
    let _ = out.flush();
    if let crate::exec::session::Outcome::Refused(r) = &outcome {
        let _ = writeln!(err, "error: {}", r.message());
    }
    outcome.exit_code()
}
