//! `wsusfix sim serve` and `wsusfix sim state`: the simulated fleet as a standalone service.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::exit;
use crate::sim::endpoint::Keytab;
use crate::sim::fleet::{Fleet, FleetConfig, write_atomically};
use crate::sim::scenario::Scenario;
use crate::util::credentials::Resolver;

/// Arguments of `sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// What to do.
    #[command(subcommand)]
    pub what: SimCommand,
}

/// The simulator's commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SimCommand {
    /// Serve an inventory's servers and clients over WinRM on their loopback addresses until Ctrl-C.
    Serve(ServeArgs),
    /// Print the simulated world's state as JSON (docs/simulator.md).
    State(StateArgs),
}

/// Arguments of `sim serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Inventory whose hosts to serve (addresses on 127.0.0.0/8).
    #[arg(short = 'i', long = "inventory", value_name = "INV")]
    pub inventory: PathBuf,
    /// Scenario: what is broken and which faults to inject (docs/simulator.md).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Where to keep the world's state for `sim state`.
    #[arg(long, value_name = "FILE", default_value = ".wsusfix/sim-state.json")]
    pub state_file: PathBuf,
    /// WinRM HTTP port on every host.
    #[arg(long, default_value_t = 5985)]
    pub http_port: u16,
    /// WinRM HTTPS port on every host (0: do not serve HTTPS).
    #[arg(long, default_value_t = 5986)]
    pub https_port: u16,
    /// Overrides the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// A keytab (MIT format) with the hosts' service keys (`HTTP/<host>`): a host whose `host:`
    /// (or DNS address) has keys there accepts Kerberos, with tickets from the realm's KDC.
    #[arg(long, value_name = "FILE")]
    pub keytab: Option<PathBuf>,
}

/// Arguments of `sim state`.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// The state file `sim serve` writes.
    #[arg(long, value_name = "FILE", default_value = ".wsusfix/sim-state.json")]
    pub state_file: PathBuf,
}

/// Runs `sim`.
pub fn run(args: &SimArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match &args.what {
        SimCommand::Serve(a) => serve(a, out, err),
        SimCommand::State(a) => match std::fs::read(&a.state_file) {
            Ok(b) => {
                let _ = out.write_all(&b);
                let _ = writeln!(out);
                exit::OK
            }
            Err(e) => {
                let _ = writeln!(
                    err,
                    "error: cannot read the simulator state {}: {e}\n  = help: `wsusfix sim serve` writes it while it runs",
                    a.state_file.display()
                );
                exit::INVALID
            }
        },
    }
}

/// Loads a scenario file, or the default scenario (every server affected).
pub fn load_scenario(path: Option<&Path>) -> Result<Scenario, String> {
    match path {
        None => Ok(Scenario::default()),
        Some(p) => {
            let text = super::inputs::read_text(p, "scenario")?;
            Scenario::parse(&text).map_err(|e| format!("{}:{e}", p.display()))
        }
    }
}

/// The servers' names and loopback addresses in the /etc/hosts format, for `discover --hosts`
/// (the simulated WSUS API reports each server by its inventory name).
pub fn hosts_file(inv: &crate::core::inventory::Inventory) -> String {
    let mut text = String::from("# wsusfix simulator: the WSUS servers it serves (ADDRESS NAME)\n");
    for s in inv.servers() {
        // The DNS name (`host:`) as an alias: the simulated WSUS API lists a server by it.
        match &s.spn_host {
            Some(h) if h != &s.name => {
                text.push_str(&format!("{} {} {h}\n", s.address, s.name));
            }
            _ => text.push_str(&format!("{} {}\n", s.address, s.name)),
        }
    }
    text
}

fn serve(a: &ServeArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let inputs = match super::inputs::load(err, &a.inventory, None) {
        Ok(i) => i,
        Err(code) => return code,
    };
    let mut scenario = match load_scenario(a.scenario.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return exit::INVALID;
        }
    };
    if a.seed.is_some() {
        scenario.seed = a.seed;
    }
    let base = a.inventory.parent().unwrap_or(Path::new("."));
    let resolver = Resolver::new(base);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(err, "error: cannot start the runtime: {e}");
            return exit::ERROR;
        }
    };
    let keytab = match &a.keytab {
        None => None,
        Some(p) => match Keytab::read(p) {
            Ok(k) => Some(k),
            Err(e) => {
                let _ = writeln!(
                    err,
                    "error: {e}\n  = help: `tests/kdc/realm.sh start` writes one (services.keytab); `kadmin ktadd` and `ktpass` do too"
                );
                return exit::INVALID;
            }
        },
    };
    let cfg = FleetConfig {
        http_port: a.http_port,
        https_port: (a.https_port != 0).then_some(a.https_port),
        state_file: Some(a.state_file.clone()),
        keytab,
    };
    rt.block_on(async {
        let fleet = match Fleet::start(&inputs.inventory, &scenario, &resolver, cfg).await {
            Ok(f) => f,
            Err(e) => {
                let _ = writeln!(err, "error: cannot start the simulator: {e}");
                return exit::ERROR;
            }
        };
        let ca = a.state_file.with_file_name("sim-ca.pem");
        if let Err(e) = write_atomically(&ca, fleet.endpoint().ca_pem().as_bytes()) {
            let _ = writeln!(
                err,
                "warning: cannot write the CA certificate to {}: {e}",
                ca.display()
            );
        }
        let inv = &inputs.inventory;
        let hosts = a.state_file.with_file_name("sim-hosts");
        if let Err(e) = write_atomically(&hosts, hosts_file(inv).as_bytes()) {
            let _ = writeln!(
                err,
                "warning: cannot write the hosts file to {}: {e}",
                hosts.display()
            );
        }
        let _ = writeln!(
            out,
            "wsusfix simulator: {} servers and {} clients of {} (seed {})",
            inv.servers().len(),
            inv.clients().count(),
            a.inventory.display(),
            scenario.seed.unwrap_or(954_960)
        );
        let width = fleet
            .endpoint()
            .hosts()
            .iter()
            .map(|h| h.name.len())
            .max()
            .unwrap_or(0);
        for h in fleet.endpoint().hosts() {
            let logons = fleet
                .endpoint()
                .logons(&h.name)
                .map(|l| format!("  ({l})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<width$}  {}{}{logons}",
                h.name,
                h.http_url(),
                h.https_url().map(|u| format!("  {u}")).unwrap_or_default()
            );
        }
        let _ = writeln!(out, "CA certificate for HTTPS: {}", ca.display());
        let _ = writeln!(
            out,
            "hosts file: {} (wsusfix discover --root NAME --hosts {})",
            hosts.display(),
            hosts.display()
        );
        let _ = writeln!(
            out,
            "state: {} (wsusfix sim state --state-file {})",
            a.state_file.display(),
            a.state_file.display()
        );
        let _ = writeln!(out, "ready; press Ctrl-C to stop");
        let _ = out.flush();
        let _ = tokio::signal::ctrl_c().await;
        let _ = writeln!(out, "stopping");
        fleet.shutdown().await;
        exit::OK
    })
}
