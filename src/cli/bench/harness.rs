//! The parent side of a run benchmark: start the simulator (one process per shard), run wsusfix
//! in its own process against it, stop the simulator, and collect what each process measured.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::Value;

use super::children::open_files_limit;
use super::workload::{PASSWORD, PASSWORD_VAR, Workload};

/// Descriptors a process keeps besides its sockets (stdio, the runtime, the journal, libraries).
const SPARE_FDS: u64 = 200;

/// One benchmark run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Servers.
    pub servers: usize,
    /// Tiers.
    pub tiers: usize,
    /// Seed.
    pub seed: u64,
    /// WinRM port.
    pub port: u16,
    /// Servers worked on at once.
    pub parallel: usize,
    /// Replicas of one upstream held autonomous at once (`None`: no cap).
    pub max_held: Option<usize>,
}

/// What the processes measured.
#[derive(Debug)]
pub struct Measured {
    /// The run's line (children::run_child).
    pub run: Value,
    /// Each simulator shard's final line.
    pub sims: Vec<Value>,
}

impl RunSpec {
    fn args(&self) -> Vec<String> {
        vec![
            "--servers".into(),
            self.servers.to_string(),
            "--tiers".into(),
            self.tiers.to_string(),
            "--seed".into(),
            self.seed.to_string(),
            "--port".into(),
            self.port.to_string(),
        ]
    }
}

/// The most hosts one simulator process can serve: each needs a listening socket and the
/// connection the executor keeps open to it.
pub fn hosts_per_simulator() -> usize {
    (open_files_limit().saturating_sub(SPARE_FDS) / 2) as usize
}

struct Sim {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// Its stderr goes to a file, so that nothing it writes can block it.
    stderr: PathBuf,
}

fn exe() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("cannot find the wsusfix executable: {e}"))
}

fn read_line(sim: &mut Sim, what: &str) -> Result<Value, String> {
    let mut line = String::new();
    match sim.stdout.read_line(&mut line) {
        Ok(n) if n > 0 => {
            serde_json::from_str(&line).map_err(|e| format!("unreadable {what}: {e}: {line}"))
        }
        _ => {
            let _ = sim.child.kill();
            let _ = sim.child.wait();
            Err(format!(
                "the simulator ended before its {what}: {}",
                std::fs::read_to_string(&sim.stderr)
                    .unwrap_or_default()
                    .trim()
            ))
        }
    }
}

fn stop(sims: &mut [Sim]) {
    for s in sims.iter_mut() {
        let _ = s.child.kill();
        let _ = s.child.wait();
        let _ = std::fs::remove_file(&s.stderr);
    }
}

/// Runs one benchmark: the simulator's shards, then the run.
pub fn measure(spec: &RunSpec) -> Result<Measured, String> {
    let exe = exe()?;
    let limit = open_files_limit();
    if spec.servers as u64 + SPARE_FDS > limit {
        return Err(format!(
            "the run keeps one connection per server: {} servers need about {} open files, and the limit here is {limit}",
            spec.servers,
            spec.servers as u64 + SPARE_FDS
        ));
    }
    let max_hosts = hosts_per_simulator();
    let w = Workload::new(spec.servers, spec.tiers, spec.seed, spec.port);
    let shards = w.shards(max_hosts)?.len();
    let mut sims: Vec<Sim> = Vec::new();
    for shard in 0..shards {
        let stderr = std::env::temp_dir().join(format!(
            "wsusfix-bench-sim-{}-{shard}.err",
            std::process::id()
        ));
        let file = match std::fs::File::create(&stderr) {
            Ok(f) => f,
            Err(e) => {
                stop(&mut sims);
                return Err(format!("cannot create {}: {e}", stderr.display()));
            }
        };
        let spawned = Command::new(&exe)
            .args(["bench", "sim-child"])
            .args(spec.args())
            .args([
                "--shard",
                &shard.to_string(),
                "--max-hosts",
                &max_hosts.to_string(),
            ])
            .env(PASSWORD_VAR, PASSWORD)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file))
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                stop(&mut sims);
                return Err(format!("cannot start the simulator: {e}"));
            }
        };
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        sims.push(Sim {
            child,
            stdin,
            stdout,
            stderr,
        });
        let last = sims.last_mut().expect("just pushed");
        if let Err(e) = read_line(last, "ready line") {
            stop(&mut sims);
            return Err(e);
        }
    }
    let run = Command::new(&exe)
        .args(["bench", "run-child"])
        .args(spec.args())
        .args(["--parallel", &spec.parallel.to_string()])
        .args(
            spec.max_held
                .map(|m| vec!["--max-held".to_string(), m.to_string()])
                .unwrap_or_default(),
        )
        .env(PASSWORD_VAR, PASSWORD)
        .stdin(Stdio::null())
        .output();
    let run = match run {
        Ok(o) if o.status.success() => serde_json::from_slice::<Value>(&o.stdout)
            .map_err(|e| format!("unreadable run measurement: {e}")),
        Ok(o) => Err(format!(
            "the run failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("cannot start the run: {e}")),
    };
    let run = match run {
        Ok(v) => v,
        Err(e) => {
            stop(&mut sims);
            return Err(e);
        }
    };
    let mut finals = Vec::new();
    for s in sims.iter_mut() {
        drop(s.stdin.take());
    }
    for s in sims.iter_mut() {
        match read_line(s, "final line") {
            Ok(v) => finals.push(v),
            Err(e) => {
                stop(&mut sims);
                return Err(e);
            }
        }
        let _ = s.child.wait();
        let _ = std::fs::remove_file(&s.stderr);
    }
    Ok(Measured { run, sims: finals })
}
