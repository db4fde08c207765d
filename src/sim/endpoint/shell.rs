//! The WinRS shells and commands of one host: creation under the per-user quota, commands run
//! through the world model, stdin, output handed out over successive Receives, signals, deletion
//! and the idle timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::cmdline::{self, Invocation};
use super::host::{ScriptHost, ScriptOutcome};
use super::soap::{self, Fault, SendStream};

/// Exit code of a process stopped by Ctrl+C (STATUS_CONTROL_C_EXIT, 0xC000013A).
pub(crate) const CTRL_C_EXIT: i32 = 0xC000_013Au32 as i32;

/// Raw bytes per `rsp:Stream` element of a Receive reply.
const STREAM_CHUNK: usize = 8 * 1024;

/// Per-host event counts, kept with atomics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub auth_failures: AtomicU64,
    pub ntlm_logons: AtomicU64,
    pub kerberos_logons: AtomicU64,
    pub ntlm_refused: AtomicU64,
    pub shells_created: AtomicU64,
    pub shells_deleted: AtomicU64,
    pub commands: AtomicU64,
    pub timed_out: AtomicU64,
    pub injected_errors: AtomicU64,
    pub connections_refused: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Output {
    stdout: Vec<u8>,
    stdout_sent: usize,
    stderr: Vec<u8>,
    stderr_sent: usize,
    exit_code: Option<i32>,
    stdin: Vec<u8>,
    stdin_closed: bool,
    /// TimedOut faults still to give before the next answer of a storm.
    storm_left: Option<u32>,
}

impl Output {
    fn pending(&self) -> bool {
        self.stdout_sent < self.stdout.len()
            || self.stderr_sent < self.stderr.len()
            || self.exit_code.is_some()
    }
}

/// One command of a shell.
pub(crate) struct Command {
    output: Mutex<Output>,
    changed: watch::Sender<u64>,
    task: Mutex<Option<AbortHandle>>,
}

impl Command {
    fn new() -> Arc<Self> {
        Arc::new(Command {
            output: Mutex::new(Output::default()),
            changed: watch::Sender::new(0),
            task: Mutex::new(None),
        })
    }

    fn update(&self, f: impl FnOnce(&mut Output)) {
        f(&mut self.output.lock().expect("command lock"));
        self.changed.send_modify(|v| *v += 1);
    }

    fn finish(&self, outcome: ScriptOutcome) {
        self.update(|o| {
            if o.exit_code.is_none() {
                o.stdout.extend_from_slice(&outcome.stdout);
                o.stderr.extend_from_slice(&outcome.stderr);
                o.exit_code = Some(outcome.exit_code);
            }
        });
    }

    fn abort(&self) {
        if let Some(task) = self.task.lock().expect("task lock").take() {
            task.abort();
        }
    }

    fn is_done(&self) -> bool {
        self.output
            .lock()
            .expect("command lock")
            .exit_code
            .is_some()
    }

    async fn stdin_when_closed(&self) -> Vec<u8> {
        let mut rx = self.changed.subscribe();
        loop {
            {
                let o = self.output.lock().expect("command lock");
                if o.stdin_closed {
                    return o.stdin.clone();
                }
            }
            if rx.changed().await.is_err() {
                return Vec::new();
            }
        }
    }
}

struct Shell {
    owner: String,
    last_used: Instant,
    commands: HashMap<String, Arc<Command>>,
}

/// How long a Receive may wait, how much it may carry, and the TimedOut storm in force.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReceiveLimits {
    pub timeout: Duration,
    pub budget: usize,
    pub storm: u32,
}

/// What a Receive comes to.
pub(crate) enum Received {
    /// Output (possibly none) and, once everything is out, the exit code.
    Chunk {
        streams: Vec<(&'static str, Vec<u8>)>,
        exit_code: Option<i32>,
    },
    /// Nothing to say within the operation timeout (or a TimedOut storm).
    TimedOut,
}

/// The shells of one host.
pub(crate) struct Shells {
    host: String,
    handler: Arc<dyn ScriptHost>,
    counters: Arc<Counters>,
    shells: Mutex<HashMap<String, Shell>>,
}

fn owner_key(user: &str) -> String {
    super::ntlm::account_part(user).to_lowercase()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

impl Shells {
    pub fn new(host: String, handler: Arc<dyn ScriptHost>, counters: Arc<Counters>) -> Self {
        Shells {
            host,
            handler,
            counters,
            shells: Mutex::new(HashMap::new()),
        }
    }

    fn with_shell<T>(
        &self,
        shell_id: &str,
        user: &str,
        f: impl FnOnce(&mut Shell) -> Result<T, Fault>,
    ) -> Result<T, Fault> {
        let mut shells = self.shells.lock().expect("shells lock");
        match shells.get_mut(shell_id) {
            Some(shell) if shell.owner == owner_key(user) => {
                shell.last_used = Instant::now();
                f(shell)
            }
            _ => Err(Fault::shell_not_found(shell_id)),
        }
    }

    fn command(&self, shell_id: &str, user: &str, command_id: &str) -> Result<Arc<Command>, Fault> {
        self.with_shell(shell_id, user, |shell| {
            shell
                .commands
                .get(command_id)
                .cloned()
                .ok_or_else(Fault::command_not_found)
        })
    }

    /// Creates a shell for `user`, unless the user already has `limit` of them. Shells idle for
    /// `idle` with nothing running are dropped first.
    pub fn create(&self, user: &str, limit: usize, idle: Duration) -> Result<String, Fault> {
        let mut shells = self.shells.lock().expect("shells lock");
        shells.retain(|_, shell| {
            let keep =
                shell.last_used.elapsed() < idle || shell.commands.values().any(|c| !c.is_done());
            if !keep {
                shell.commands.values().for_each(|c| c.abort());
            }
            keep
        });
        let key = owner_key(user);
        if shells.values().filter(|s| s.owner == key).count() >= limit {
            return Err(Fault::shell_quota(limit));
        }
        let id = new_id();
        shells.insert(
            id.clone(),
            Shell {
                owner: key,
                last_used: Instant::now(),
                commands: HashMap::new(),
            },
        );
        Counters::bump(&self.counters.shells_created);
        Ok(id)
    }

    /// Starts a command line in a shell; returns its CommandId.
    pub fn start(
        &self,
        shell_id: &str,
        user: &str,
        command: &str,
        arguments: &[String],
    ) -> Result<String, Fault> {
        let invocation = cmdline::interpret(command, arguments);
        let cmd = Command::new();
        let id = new_id();
        self.with_shell(shell_id, user, |shell| {
            shell.commands.insert(id.clone(), Arc::clone(&cmd));
            Ok(())
        })?;
        Counters::bump(&self.counters.commands);
        let (handler, host, runner) = (
            Arc::clone(&self.handler),
            self.host.clone(),
            Arc::clone(&cmd),
        );
        let task = tokio::spawn(async move {
            let outcome = match invocation {
                Invocation::Immediate(outcome) => outcome,
                Invocation::Script(script) => run_script(&*handler, &host, script).await,
                Invocation::Bootstrap => {
                    let stdin = runner.stdin_when_closed().await;
                    match cmdline::bootstrap_script(&stdin) {
                        Ok(script) => run_script(&*handler, &host, script).await,
                        Err(outcome) => outcome,
                    }
                }
            };
            runner.finish(outcome);
        });
        *cmd.task.lock().expect("task lock") = Some(task.abort_handle());
        Ok(id)
    }

    /// Appends stdin data (Send).
    pub fn send(&self, shell_id: &str, user: &str, streams: &[SendStream]) -> Result<(), Fault> {
        for stream in streams {
            if stream.name != "stdin" {
                return Err(Fault::schema("only the stdin stream can be sent"));
            }
            let cmd = self.command(shell_id, user, &stream.command_id)?;
            cmd.update(|o| {
                if !o.stdin_closed {
                    o.stdin.extend_from_slice(&stream.data);
                    o.stdin_closed = stream.end;
                }
            });
        }
        Ok(())
    }

    /// Waits up to the timeout for output or completion and hands out at most about the budget
    /// of raw bytes; a TimedOut storm answers TimedOut that many times first. `stop` (endpoint
    /// shutdown) ends the wait with TimedOut.
    pub async fn receive(
        &self,
        shell_id: &str,
        user: &str,
        command_id: &str,
        limits: ReceiveLimits,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Received, Fault> {
        let ReceiveLimits {
            timeout,
            budget,
            storm,
        } = limits;
        let cmd = self.command(shell_id, user, command_id)?;
        let mut rx = cmd.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let mut o = cmd.output.lock().expect("command lock");
                if o.pending() {
                    let left = o.storm_left.get_or_insert(storm);
                    if *left > 0 {
                        *left -= 1;
                        return Ok(Received::TimedOut);
                    }
                    o.storm_left = None;
                    return Ok(take_chunk(&mut o, budget));
                }
            }
            tokio::select! {
                changed = tokio::time::timeout_at(deadline, rx.changed()) => match changed {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => return Ok(Received::TimedOut),
                },
                _ = super::server::switched_on(&mut stop) => return Ok(Received::TimedOut),
            }
        }
    }

    /// Signal: `terminate` forgets the command, `ctrl_c` stops it (exit 0xC000013A).
    pub fn signal(
        &self,
        shell_id: &str,
        user: &str,
        command_id: &str,
        code: &str,
    ) -> Result<(), Fault> {
        if code != soap::SIGNAL_TERMINATE && code != soap::SIGNAL_CTRL_C {
            return Err(Fault::schema(&format!("unknown signal code {code}")));
        }
        let cmd = self.command(shell_id, user, command_id)?;
        cmd.abort();
        if code == soap::SIGNAL_TERMINATE {
            self.with_shell(shell_id, user, |shell| {
                shell.commands.remove(command_id);
                Ok(())
            })?;
        }
        cmd.update(|o| {
            if o.exit_code.is_none() {
                o.exit_code = Some(CTRL_C_EXIT);
            }
            o.stdin_closed = true;
        });
        Ok(())
    }

    /// Deletes a shell and stops its commands.
    pub fn delete(&self, shell_id: &str, user: &str) -> Result<(), Fault> {
        let mut shells = self.shells.lock().expect("shells lock");
        match shells.get(shell_id) {
            Some(shell) if shell.owner == owner_key(user) => {
                let shell = shells.remove(shell_id).expect("present");
                shell.commands.values().for_each(|c| c.abort());
                Counters::bump(&self.counters.shells_deleted);
                Ok(())
            }
            _ => Err(Fault::shell_not_found(shell_id)),
        }
    }

    /// Stops every command (endpoint shutdown).
    pub fn stop_all(&self) {
        let mut shells = self.shells.lock().expect("shells lock");
        for shell in shells.values() {
            shell.commands.values().for_each(|c| c.abort());
        }
        shells.clear();
    }

    /// How many shells are open.
    pub fn open(&self) -> usize {
        self.shells.lock().expect("shells lock").len()
    }
}

/// Aborts the task it holds when dropped (the command was stopped).
struct AbortOnDrop(tokio::task::JoinHandle<ScriptOutcome>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs a script on its own task, so that a panic in the world model ends the command (exit
/// code -1, the panic named on stderr) instead of leaving it running forever.
async fn run_script(handler: &dyn ScriptHost, host: &str, script: String) -> ScriptOutcome {
    let mut task = AbortOnDrop(tokio::spawn(handler.run(host, script)));
    match (&mut task.0).await {
        Ok(outcome) => outcome,
        Err(e) => ScriptOutcome {
            exit_code: -1,
            stdout: Vec::new(),
            stderr: format!("simulator: the script host failed: {e}\r\n").into_bytes(),
        },
    }
}

/// Takes up to `budget` bytes of unsent output, stdout first, in `STREAM_CHUNK` pieces; the
/// exit code comes with the last piece.
fn take_chunk(o: &mut Output, budget: usize) -> Received {
    let mut left = budget.max(1);
    let mut streams = Vec::new();
    for name in ["stdout", "stderr"] {
        let (buf, sent) = match name {
            "stdout" => (&o.stdout, &mut o.stdout_sent),
            _ => (&o.stderr, &mut o.stderr_sent),
        };
        while *sent < buf.len() && left > 0 {
            let n = (buf.len() - *sent).min(STREAM_CHUNK).min(left);
            streams.push((name, buf[*sent..*sent + n].to_vec()));
            *sent += n;
            left -= n;
        }
    }
    let all_out = o.stdout_sent == o.stdout.len() && o.stderr_sent == o.stderr.len();
    Received::Chunk {
        streams,
        exit_code: if all_out { o.exit_code } else { None },
    }
}

/// The raw output bytes a Receive reply may carry when the client allows `max_envelope` bytes:
/// whole `STREAM_CHUNK` elements (base64 plus markup) after room for the envelope itself.
pub(crate) fn receive_budget(max_envelope: usize) -> usize {
    let room = max_envelope.saturating_sub(2048);
    let per_element = STREAM_CHUNK * 4 / 3 + 160;
    if room >= per_element {
        (room / per_element) * STREAM_CHUNK
    } else {
        (room.saturating_sub(160) * 3 / 4).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_the_budget_and_end_with_the_exit_code() {
        let mut o = Output {
            stdout: vec![b'a'; 20_000],
            stderr: b"err".to_vec(),
            exit_code: Some(4),
            ..Output::default()
        };
        let Received::Chunk { streams, exit_code } = take_chunk(&mut o, 16 * 1024) else {
            panic!()
        };
        assert_eq!(streams.len(), 2);
        assert!(
            streams
                .iter()
                .all(|(n, b)| *n == "stdout" && b.len() == STREAM_CHUNK)
        );
        assert_eq!(exit_code, None);
        let Received::Chunk { streams, exit_code } = take_chunk(&mut o, 16 * 1024) else {
            panic!()
        };
        assert_eq!(streams[0].1.len(), 20_000 - 2 * STREAM_CHUNK);
        assert_eq!(streams[1], ("stderr", b"err".to_vec()));
        assert_eq!(exit_code, Some(4));
        assert!(!o.pending() || o.exit_code.is_some());
    }

    #[tokio::test]
    async fn a_panicking_script_host_ends_the_command() {
        let handler: Arc<dyn ScriptHost> =
            Arc::new(|_: &str, _: String| async { panic!("world model bug") });
        let out = run_script(&*handler, "h", "x".into()).await;
        assert_eq!(out.exit_code, -1);
        assert!(String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }

    #[test]
    fn budget_fits_the_envelope() {
        let budget = receive_budget(153_600);
        assert!(budget >= 100 * 1024, "{budget}");
        assert!(budget * 4 / 3 + 2048 < 153_600);
        assert!(receive_budget(8192) > 0);
        assert!(receive_budget(8192) * 4 / 3 < 8192);
    }
}
