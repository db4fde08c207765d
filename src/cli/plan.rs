//! `wsusfix plan`: the dry run. Shows the waves, each server's path and steps, the replica holds
//! and their guaranteed restores; touches nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::InputArgs;
use crate::core::plan::{self, PlanOptions};
use crate::core::render;
use crate::exit;

/// Output format of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// Waves, a tree of servers with their steps, legend and summary.
    Text,
    /// Versioned JSON (docs/plan-format.md); what `apply --plan` reads.
    Json,
    /// Graphviz DOT of the hierarchy, colored by path.
    Dot,
}

/// Arguments of `plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Write the plan to FILE (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Restrict the plan to a server's subtree (repeatable); its ancestors become preconditions.
    #[arg(long, value_name = "NAME")]
    pub limit: Vec<String>,
    /// Exit 0 when there is nothing to do, 2 when changes are planned, 3 when the input is invalid.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

/// Writes `text` to `path` through a temporary file and a rename, so a reader never sees half a plan.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("plan");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Runs `plan`.
pub fn run(args: &PlanArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let inputs =
        match super::inputs::load(err, &args.input.inventory, args.input.playbook.as_deref()) {
            Ok(i) => i,
            Err(code) => return code,
        };
    let opts = PlanOptions {
        limit: args.limit.clone(),
        ..PlanOptions::default()
    };
    let plan = match plan::plan(
        &inputs.inventory,
        &inputs.hierarchy,
        &inputs.playbook,
        &opts,
    ) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(err, "error: {}", e.message);
            if let Some(h) = e.help {
                let _ = writeln!(err, "  = help: {h}");
            }
            return exit::INVALID;
        }
    };
    let rendered = match args.format {
        PlanFormat::Text => render::text(&plan),
        PlanFormat::Json => render::json(&plan),
        PlanFormat::Dot => render::dot(&plan),
    };
    match &args.out {
        Some(path) => {
            if let Err(e) = write_atomically(path, &rendered) {
                let _ = writeln!(
                    err,
                    "error: cannot write the plan to {}: {e}",
                    path.display()
                );
                return exit::ERROR;
            }
            let _ = writeln!(
                err,
                "wrote the plan to {} (fingerprint {})",
                path.display(),
                &plan.fingerprint[..12]
            );
        }
        None => {
            let _ = out.write_all(rendered.as_bytes());
        }
    }
    if args.detailed_exitcode && plan.has_changes() {
        exit::FINDINGS
    } else {
        exit::OK
    }
}
