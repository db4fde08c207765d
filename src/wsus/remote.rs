//! The transport the operations run their scripts through. The WinRM client implements it; the
//! tests implement it with a scripted fake. This layer knows nothing else about the transport.

use std::future::Future;
use std::time::Duration;

/// What a script left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteOutput {
    /// The process exit code.
    pub exit_code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error, already cleaned of CLIXML.
    pub stderr: String,
}

/// Runs PowerShell scripts on one host.
pub trait Remote: Send {
    /// The transport's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Runs `script` with PowerShell and waits at most `deadline` for it to end.
    fn run_ps(
        &mut self,
        script: &str,
        deadline: Duration,
    ) -> impl Future<Output = Result<RemoteOutput, Self::Error>> + Send;

    /// True when running the whole operation again later may succeed (a refused connection, a
    /// stalled request, an HTTP 5xx), false when it would fail the same way (bad credentials).
    fn is_transient(err: &Self::Error) -> bool;

    /// True when the failure cost a whole timeout: the host did not answer at all. Such
    /// failures are retried fewer times (`RetryPolicy::stall_attempts`).
    fn is_stall(_err: &Self::Error) -> bool {
        false
    }
}

impl<R: Remote> Remote for &mut R {
    type Error = R::Error;

    fn run_ps(
        &mut self,
        script: &str,
        deadline: Duration,
    ) -> impl Future<Output = Result<RemoteOutput, Self::Error>> + Send {
        (**self).run_ps(script, deadline)
    }

    fn is_transient(err: &Self::Error) -> bool {
        R::is_transient(err)
    }

    fn is_stall(err: &Self::Error) -> bool {
        R::is_stall(err)
    }
}
