//! The WinRS command cycle on one reusable shell: Create (once), Command, Send (stdin),
//! Receive until Done, Signal terminate; Delete on error, on deadline and on close.
//!
//! The cycle runs over an [`Exchange`] (one SOAP request in, one parsed reply out), so it can be
//! driven by a scripted exchange in tests. Rules it keeps:
//! - a Receive answered with the OperationTimeout fault (2150858793) is simply sent again, until
//!   the command's own deadline; a Receive answered *at once* without new output (Windows waits
//!   up to OperationTimeout before it says so) is sent again only after a growing pause, so a
//!   broken or hostile server cannot make us spin, and after twice the OperationTimeout of
//!   nothing else the command fails;
//! - the output of one command is capped ([`ShellConfig::max_output`]): past it the command is
//!   stopped and the error says so;
//! - a Command refused because the reused shell is gone (idle timeout, service restart) gets a new
//!   shell and is sent once more;
//! - after the command, Signal terminate always goes out; after a failure or a deadline the shell
//!   is deleted as well (its state is unknown), except when the credentials were rejected: more
//!   attempts would only count against the account's lockout threshold.

use std::time::Duration;

use tokio::time::Instant;

use super::error::{ErrorKind, Failure, Limit, Operation, TimeoutCause, WinrmError};
use super::powershell::{CommandPlan, STDIN_CHUNK};
use super::reply::{self, ReceiveChunk};
use super::soap::{self, RequestContext};
use super::transport::Transport;
use super::xml::{Document, Limits};

/// Extra time an HTTP request gets beyond the OperationTimeout the server works with.
pub(crate) const REQUEST_GRACE: Duration = Duration::from_secs(10);

/// One SOAP request and its parsed, checked reply.
pub(crate) trait Exchange {
    /// `host:port`, for errors.
    fn authority(&self) -> &str;
    /// Listener URL, for `a:To`.
    fn url(&self) -> &str;
    /// Until when replies may take to parse (`None`: no limit besides their size).
    fn set_deadline(&mut self, _deadline: Option<std::time::Instant>) {}
    /// Sends `soap` and returns the reply envelope (its `a:RelatesTo` checked against
    /// `message_id`); a SOAP fault comes back as a [`Failure::Fault`] error.
    async fn exchange(
        &mut self,
        operation: Operation,
        soap: &str,
        message_id: &str,
        timeout: Duration,
    ) -> Result<Document, WinrmError>;
}

/// [`Exchange`] over the real HTTP transport.
pub(crate) struct WsmanClient {
    transport: Transport,
    deadline: Option<std::time::Instant>,
}

impl WsmanClient {
    pub fn new(transport: Transport) -> Self {
        WsmanClient {
            transport,
            deadline: None,
        }
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }
}

impl Exchange for WsmanClient {
    fn authority(&self) -> &str {
        self.transport.authority()
    }

    fn url(&self) -> &str {
        self.transport.url()
    }

    fn set_deadline(&mut self, deadline: Option<std::time::Instant>) {
        self.deadline = deadline;
    }

    async fn exchange(
        &mut self,
        operation: Operation,
        soap: &str,
        message_id: &str,
        timeout: Duration,
    ) -> Result<Document, WinrmError> {
        let reply = self.transport.post(operation, soap, timeout).await?;
        let authority = self.transport.authority().to_string();
        let error = |failure| WinrmError::new(authority.clone(), operation, failure);
        let parsed = if reply.body.is_empty() {
            Err("empty body".to_string())
        } else {
            Document::parse_within(&reply.body, &Limits::REPLY, self.deadline)
        };
        match (reply.status, parsed) {
            (200, Ok(doc)) => {
                if let Some(fault) = reply::fault(&doc) {
                    return Err(error(Failure::Fault(Box::new(fault))));
                }
                reply::check_relates_to(&doc, message_id)
                    .map_err(|m| error(Failure::Protocol(m)))?;
                Ok(doc)
            }
            (200, Err(m)) => Err(error(Failure::Protocol(m))),
            (status, Ok(doc)) if reply::fault(&doc).is_some() => {
                let fault = reply::fault(&doc).expect("checked");
                tracing::debug!(host = %authority, %operation, status, code = ?fault.wsman_code, "SOAP fault");
                Err(error(Failure::Fault(Box::new(fault))))
            }
            (413, _) => Err(error(Failure::Http {
                status: 413,
                hint: Some(super::error::HINT_413),
            })),
            (status, _) => Err(error(Failure::Http { status, hint: None })),
        }
    }
}

/// Raw result of one command.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RawOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Shell settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShellConfig {
    pub codepage: u32,
    pub operation_timeout_secs: u64,
    /// The most stdout and stderr bytes one command may produce in all.
    pub max_output: u64,
}

/// The pauses before a Receive that follows one answered at once without new output: 50 ms,
/// doubling up to 2 s. Any output starts the series again. After twice the OperationTimeout of
/// nothing but such answers, the command fails.
#[derive(Debug, Clone)]
pub(crate) struct IdleBackoff {
    next: Duration,
}

impl IdleBackoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(2);

    pub fn new() -> Self {
        IdleBackoff { next: Self::FIRST }
    }
}

impl Iterator for IdleBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (delay * 2).min(Self::MAX);
        Some(delay)
    }
}

/// The command cycle on one reusable shell.
pub(crate) struct ShellDriver<E> {
    exchange: E,
    config: ShellConfig,
    shell_id: Option<String>,
    command_id: Option<String>,
    stage: Operation,
}

impl<E: Exchange> ShellDriver<E> {
    pub fn new(exchange: E, config: ShellConfig) -> Self {
        ShellDriver {
            exchange,
            config,
            shell_id: None,
            command_id: None,
            stage: Operation::CreateShell,
        }
    }

    pub fn exchange(&self) -> &E {
        &self.exchange
    }

    /// The id of the open shell, if any.
    pub fn shell_id(&self) -> Option<&str> {
        self.shell_id.as_deref()
    }

    fn request_timeout(&self, operation_timeout_secs: u64) -> Duration {
        // The server answers within its OperationTimeout; the grace covers the network and a
        // busy server, up to REQUEST_GRACE, but never more than the timeout itself (a silent
        // host then costs twice the operation timeout per request, not ten seconds more).
        let op = Duration::from_secs(operation_timeout_secs);
        op + REQUEST_GRACE.min(op.max(Duration::from_secs(2)))
    }

    async fn call(
        &mut self,
        operation: Operation,
        operation_timeout_secs: u64,
        build: impl FnOnce(&RequestContext<'_>) -> String,
    ) -> Result<Document, WinrmError> {
        let message_id = soap::new_message_id();
        let url = self.exchange.url().to_string();
        let ctx = RequestContext {
            to: &url,
            message_id: &message_id,
            operation_timeout_secs,
        };
        let xml = build(&ctx);
        let timeout = self.request_timeout(operation_timeout_secs);
        self.exchange
            .exchange(operation, &xml, &message_id, timeout)
            .await
    }

    async fn create_shell(&mut self) -> Result<String, WinrmError> {
        self.stage = Operation::CreateShell;
        let codepage = self.config.codepage;
        let secs = self.config.operation_timeout_secs;
        let doc = self
            .call(Operation::CreateShell, secs, |c| {
                soap::create_shell(c, codepage)
            })
            .await?;
        let id = reply::shell_id(&doc).map_err(|m| self.protocol(Operation::CreateShell, m))?;
        tracing::debug!(host = %self.exchange.authority(), shell = %id, "shell created");
        self.shell_id = Some(id.clone());
        Ok(id)
    }

    async fn start_command(
        &mut self,
        shell: &str,
        plan: &CommandPlan,
    ) -> Result<String, WinrmError> {
        self.stage = Operation::RunCommand;
        let secs = self.config.operation_timeout_secs;
        let console_mode_stdin = plan.stdin.is_none();
        let doc = self
            .call(Operation::RunCommand, secs, |c| {
                soap::command(c, shell, &plan.command_line, console_mode_stdin)
            })
            .await?;
        reply::command_id(&doc).map_err(|m| self.protocol(Operation::RunCommand, m))
    }

    fn protocol(&self, operation: Operation, message: String) -> WinrmError {
        WinrmError::new(
            self.exchange.authority().to_string(),
            operation,
            Failure::Protocol(message),
        )
    }

    /// Runs one command within `deadline` and cleans up after it.
    pub async fn run(
        &mut self,
        plan: &CommandPlan,
        deadline: Duration,
    ) -> Result<RawOutput, WinrmError> {
        let until = Instant::now() + deadline;
        self.command_id = None;
        self.exchange.set_deadline(Some(until.into_std()));
        let result = tokio::time::timeout_at(until, self.execute(plan, until)).await;
        // Cleanup runs after the deadline too; its replies are bounded by their size alone.
        self.exchange.set_deadline(None);
        let result = match result {
            Ok(result) => result,
            Err(_elapsed) => Err(WinrmError::new(
                self.exchange.authority().to_string(),
                self.stage,
                Failure::Timeout {
                    cause: TimeoutCause::Deadline,
                    after: deadline,
                },
            )),
        };
        match &result {
            Ok(_) => {
                if let Err(e) = self.signal_terminate().await {
                    tracing::warn!(error = %e, "signal after a finished command failed; dropping the shell");
                    self.delete_best_effort().await;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::Auth | ErrorKind::Config) => {
                // Nothing more to say to a server that refuses us; forget the shell.
                self.command_id = None;
                self.shell_id = None;
            }
            Err(_) => {
                if let Err(e) = self.signal_terminate().await {
                    tracing::debug!(error = %e, "signal after a failed command failed");
                }
                self.delete_best_effort().await;
            }
        }
        result
    }

    async fn execute(
        &mut self,
        plan: &CommandPlan,
        until: Instant,
    ) -> Result<RawOutput, WinrmError> {
        let (shell, reused) = match self.shell_id.clone() {
            Some(id) => (id, true),
            None => (self.create_shell().await?, false),
        };
        let (shell, command) = match self.start_command(&shell, plan).await {
            Ok(command) => (shell, command),
            Err(e) if reused && e.fault().is_some_and(|f| f.shell_needs_reset()) => {
                tracing::debug!(host = %self.exchange.authority(), "shell is gone; creating a new one");
                self.shell_id = None;
                let shell = self.create_shell().await?;
                let command = self.start_command(&shell, plan).await?;
                (shell, command)
            }
            Err(e) => return Err(e),
        };
        self.command_id = Some(command.clone());

        if let Some(stdin) = &plan.stdin {
            self.stage = Operation::SendInput;
            let secs = self.config.operation_timeout_secs;
            let chunks: Vec<&[u8]> = stdin.chunks(STDIN_CHUNK).collect();
            let last = chunks.len().saturating_sub(1);
            if chunks.is_empty() {
                self.call(Operation::SendInput, secs, |c| {
                    soap::send(c, &shell, &command, b"", true)
                })
                .await?;
            }
            for (i, chunk) in chunks.into_iter().enumerate() {
                self.call(Operation::SendInput, secs, |c| {
                    soap::send(c, &shell, &command, chunk, i == last)
                })
                .await?;
            }
        }

        self.stage = Operation::ReceiveOutput;
        let mut output = RawOutput::default();
        let mut backoff = IdleBackoff::new();
        // Since when every Receive came back at once without output, and how many did.
        let mut idle: Option<(Instant, u32)> = None;
        let op_timeout = self.config.operation_timeout_secs;
        loop {
            // Ask the server to answer before our deadline, so the connection stays usable.
            let remaining = until.saturating_duration_since(Instant::now()).as_secs();
            let secs = self.config.operation_timeout_secs.min(remaining.max(1));
            let asked = Instant::now();
            let result = self
                .call(Operation::ReceiveOutput, secs, |c| {
                    soap::receive(c, &shell, &command)
                })
                .await;
            let progress = match result {
                Ok(doc) => {
                    let ReceiveChunk {
                        stdout,
                        stderr,
                        done,
                    } = reply::receive(&doc, &command)
                        .map_err(|m| self.protocol(Operation::ReceiveOutput, m))?;
                    let progress = !stdout.is_empty() || !stderr.is_empty();
                    output.stdout.extend(stdout);
                    output.stderr.extend(stderr);
                    let produced = (output.stdout.len() + output.stderr.len()) as u64;
                    if produced > self.config.max_output {
                        return Err(WinrmError::new(
                            self.exchange.authority().to_string(),
                            Operation::ReceiveOutput,
                            Failure::Limit(Limit::Output {
                                bytes: self.config.max_output,
                            }),
                        ));
                    }
                    if let Some(code) = done {
                        output.exit_code = code;
                        return Ok(output);
                    }
                    progress
                }
                Err(e) if e.fault().is_some_and(|f| f.is_operation_timeout()) => false,
                Err(e) => return Err(e),
            };
            if progress {
                backoff = IdleBackoff::new();
                idle = None;
                continue;
            }
            // Windows holds a Receive until output comes or OperationTimeout passes; an answer
            // without output well before that is a server that does not wait.
            let answered_at_once = asked.elapsed() < Duration::from_secs(secs) / 2;
            if !answered_at_once {
                idle = None;
                continue;
            }
            let (since, count) = idle.get_or_insert((asked, 0));
            *count += 1;
            // Twice the OperationTimeout of such answers is no slow command but a broken server.
            if since.elapsed() > Duration::from_secs(2 * op_timeout) {
                return Err(self.protocol(
                    Operation::ReceiveOutput,
                    format!(
                        "the server answered {count} Receives at once without output for more \
                         than {} s; a WinRM server holds a Receive until there is output or \
                         OperationTimeout ({op_timeout} s) has passed",
                        2 * op_timeout
                    ),
                ));
            }
            // The command's deadline (around this loop) cuts the pause short.
            let pause = backoff.next().unwrap_or(IdleBackoff::MAX);
            tokio::time::sleep(pause).await;
        }
    }

    async fn signal_terminate(&mut self) -> Result<(), WinrmError> {
        let (Some(shell), Some(command)) = (self.shell_id.clone(), self.command_id.take()) else {
            return Ok(());
        };
        let secs = self.config.operation_timeout_secs;
        self.call(Operation::SignalTerminate, secs, |c| {
            soap::signal_terminate(c, &shell, &command)
        })
        .await
        .map(|_| ())
    }

    async fn delete_best_effort(&mut self) {
        if let Err(e) = self.delete_shell().await {
            tracing::warn!(error = %e, "could not delete the shell; WinRM drops it after its idle timeout");
        }
    }

    /// Deletes the shell, if one is open. The shell is forgotten whatever the outcome.
    pub async fn delete_shell(&mut self) -> Result<(), WinrmError> {
        self.command_id = None;
        let Some(shell) = self.shell_id.take() else {
            return Ok(());
        };
        let secs = self.config.operation_timeout_secs;
        self.call(Operation::DeleteShell, secs, |c| {
            soap::delete_shell(c, &shell)
        })
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests;
