//! How an operation fails. Messages are lowercase fragments that start with the operation's
//! name; the caller adds the host (`wsus-eu: decline: replica-mode: ...`).

use std::fmt;

use super::arg::InvalidArg;
use super::op::OpName;
use super::output::Keys;

/// The `error_kind`s of the script contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// `wsus-not-installed`: no WSUS server (or only its console) on the host.
    WsusNotInstalled,
    /// `config-busy`: the configuration stayed not Ready (a save or a sync being processed).
    ConfigBusy,
    /// `replica-mode`: a replica refused an approval or a decline.
    ReplicaMode,
    /// `not-synced`: the server does not know the update.
    NotSynced,
    /// `expired`: the server refused to approve an expired update.
    Expired,
    /// `package-missing`: the hotfix package is not there or not readable.
    PackageMissing,
    /// `hash-mismatch`: the package's SHA-256 differs (extra key `actual_sha256`).
    HashMismatch,
    /// `install-failed`: the installer exited with a failure code (extra key `exit_code`).
    InstallFailed,
    /// `timeout`: the operation's own timeout passed.
    Timeout,
    /// `sync-failed`: the synchronisation ended without success (extra keys `result`,
    /// `error_text`).
    SyncFailed,
    /// `bad-culture`: the culture name is unknown to Windows or neutral.
    BadCulture,
    /// `wuauclt-failed`: detection could not be triggered on the client.
    WuaucltFailed,
    /// `other`: any other exception, with its type and message.
    Other,
}

impl ErrorKind {
    /// Every kind.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::WsusNotInstalled,
        ErrorKind::ConfigBusy,
        ErrorKind::ReplicaMode,
        ErrorKind::NotSynced,
        ErrorKind::Expired,
        ErrorKind::PackageMissing,
        ErrorKind::HashMismatch,
        ErrorKind::InstallFailed,
        ErrorKind::Timeout,
        ErrorKind::SyncFailed,
        ErrorKind::BadCulture,
        ErrorKind::WuaucltFailed,
        ErrorKind::Other,
    ];

    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::WsusNotInstalled => "wsus-not-installed",
            ErrorKind::ConfigBusy => "config-busy",
            ErrorKind::ReplicaMode => "replica-mode",
            ErrorKind::NotSynced => "not-synced",
            ErrorKind::Expired => "expired",
            ErrorKind::PackageMissing => "package-missing",
            ErrorKind::HashMismatch => "hash-mismatch",
            ErrorKind::InstallFailed => "install-failed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::SyncFailed => "sync-failed",
            ErrorKind::BadCulture => "bad-culture",
            ErrorKind::WuaucltFailed => "wuauclt-failed",
            ErrorKind::Other => "other",
        }
    }

    /// Parses the contract's name.
    pub fn parse(s: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Output that does not follow the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// A `wsusfix:` line that is not `KEY=BASE64` with a key of `[a-z0-9_]`.
    #[error("stdout line {line} is not wsusfix:KEY=BASE64")]
    BadLine {
        /// 1-based line number on stdout.
        line: usize,
    },
    /// The value of a key is not base64.
    #[error("the value of `{key}` is not base64")]
    BadBase64 {
        /// The key.
        key: String,
    },
    /// The value of a key is not UTF-8.
    #[error("the value of `{key}` is not UTF-8")]
    NotUtf8 {
        /// The key.
        key: String,
    },
    /// A key the result needs is absent.
    #[error("no `{key}` in the output")]
    Missing {
        /// The key.
        key: String,
    },
    /// A single-valued key appears more than once.
    #[error("`{key}` appears {count} times, expected once")]
    Repeated {
        /// The key.
        key: String,
        /// How often it appears.
        count: usize,
    },
    /// A value that does not parse as what the key holds.
    #[error("`{key}` is {value:?}, expected {expected}")]
    BadValue {
        /// The key.
        key: String,
        /// The value (shortened).
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// Exit code 0 together with an `error_kind`.
    #[error("exit code 0 with error_kind {kind:?}")]
    ErrorOnSuccess {
        /// The reported kind.
        kind: String,
    },
    /// An `error_kind` the contract does not know.
    #[error("unknown error_kind {kind:?}")]
    UnknownKind {
        /// The reported kind.
        kind: String,
    },
}

impl Malformed {
    pub(crate) fn bad_value(key: &str, value: &str, expected: &'static str) -> Malformed {
        let mut shown: String = value.chars().take(80).collect();
        if value.chars().count() > 80 {
            shown.push_str("...");
        }
        Malformed::BadValue {
            key: key.to_string(),
            value: shown,
            expected,
        }
    }
}

use crate::util::terminal::one_line;

/// The transport's own error, boxed.
pub type TransportError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The script reported a known failure (exit code 1 with `error_kind`).
    #[error("{op}: {kind}: {} ({})", one_line(message), one_line(error_type))]
    Known {
        /// The operation.
        op: OpName,
        /// The failure's kind.
        kind: ErrorKind,
        /// The .NET exception type.
        error_type: String,
        /// The exception's message.
        message: String,
        /// Any other keys the script wrote (`actual_sha256`, `exit_code`, `result`,
        /// `error_text`, `service`, ...).
        extra: Keys,
    },
    /// The script failed in a way the contract does not describe: another exit code, or exit
    /// code 1 without `error_kind`. `stderr` is PowerShell's error text, already cleaned of
    /// CLIXML by the transport.
    #[error("{op}: unexpected exit code {exit_code}{}", stderr_suffix(stderr))]
    Unexpected {
        /// The operation.
        op: OpName,
        /// The process exit code.
        exit_code: i32,
        /// Standard error.
        stderr: String,
    },
    /// The transport failed; `transient` says whether running the operation again later may
    /// succeed.
    #[error("{op}: {source}")]
    Transport {
        /// The operation.
        op: OpName,
        /// The transport's error.
        source: TransportError,
        /// Safe to retry the whole operation later.
        transient: bool,
        /// The host did not answer at all within the request timeout.
        #[doc(hidden)]
        stalled: bool,
    },
    /// The script's output broke the contract.
    #[error("{op}: malformed output: {detail}")]
    Malformed {
        /// The operation.
        op: OpName,
        /// What was wrong.
        detail: Malformed,
    },
    /// An argument was rejected before anything was sent.
    #[error("{op}: {source}")]
    Invalid {
        /// The operation.
        op: OpName,
        /// The rejected argument.
        source: InvalidArg,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    const MAX: usize = 2000;
    let t = stderr.trim();
    if t.is_empty() {
        return String::new();
    }
    let mut shown: String = t.chars().take(MAX).collect();
    if t.chars().count() > MAX {
        shown.push_str("...");
    }
    // Text from the server: escaped, so that the message is safe wherever it is shown.
    format!(": {}", one_line(&shown))
}

impl OpError {
    /// The operation that failed.
    pub fn op(&self) -> OpName {
        match self {
            OpError::Known { op, .. }
            | OpError::Unexpected { op, .. }
            | OpError::Transport { op, .. }
            | OpError::Malformed { op, .. }
            | OpError::Invalid { op, .. } => *op,
        }
    }

    /// The known kind, for [`OpError::Known`].
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            OpError::Known { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// True for a transport failure after which the whole operation may be retried later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            OpError::Transport {
                transient: true,
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ErrorKind::parse("replica"), None);
    }

    #[test]
    fn messages_name_the_operation() {
        let e = OpError::Unexpected {
            op: OpName::Decline,
            exit_code: 1,
            stderr: "Exception calling \"Decline\"\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "decline: unexpected exit code 1: Exception calling \"Decline\""
        );
        let e = OpError::Unexpected {
            op: OpName::Facts,
            exit_code: -1,
            stderr: "  ".into(),
        };
        assert_eq!(e.to_string(), "facts: unexpected exit code -1");
    }
}
