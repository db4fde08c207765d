//! `wsusfix validate`: check the inventory and the playbook, report every problem.

use std::io::Write;

use super::InputArgs;
use crate::exit;

/// Arguments of `validate`.
#[derive(Debug, Clone, clap::Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub input: InputArgs,
}

/// Runs `validate`: exit 0 when valid (warnings allowed), 3 when invalid.
pub fn run(args: &ValidateArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match super::inputs::load(err, &args.input.inventory, args.input.playbook.as_deref()) {
        Err(code) => code,
        Ok(inputs) => {
            let servers = inputs.inventory.servers().len();
            let clients = inputs.inventory.clients().count();
            let _ = writeln!(
                out,
                "{}: valid ({servers} server{}, {clients} canary client{}, {} tier{}); playbook {}: valid{}",
                inputs.inventory_path.display(),
                if servers == 1 { "" } else { "s" },
                if clients == 1 { "" } else { "s" },
                inputs.hierarchy.tiers(),
                if inputs.hierarchy.tiers() == 1 {
                    ""
                } else {
                    "s"
                },
                inputs.playbook.name,
                match inputs.warnings {
                    0 => String::new(),
                    1 => " (1 warning)".into(),
                    n => format!(" ({n} warnings)"),
                }
            );
            exit::OK
        }
    }
}
