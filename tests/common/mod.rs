//! A small builder for tests that run the real `wsusfix` binary: state the arguments, the
//! expected exit code and what the output must contain, in one readable block.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One invocation of the binary.
pub struct Run {
    cmd: Command,
}

/// What an invocation printed.
pub struct Done {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// `wsusfix ARGS...`, run from the repository root.
    pub fn new<I, S>(args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsusfix"));
        cmd.args(args).current_dir(root()).env_remove("WSUSFIX_LOG");
        Run { cmd }
    }

    /// Sets an environment variable.
    pub fn env(mut self, k: &str, v: &str) -> Run {
        self.cmd.env(k, v);
        self
    }

    /// Runs in `dir` instead of the repository root.
    pub fn cwd(mut self, dir: &Path) -> Run {
        self.cmd.current_dir(dir);
        self
    }

    /// Runs and returns what happened.
    pub fn run(mut self) -> Done {
        let Output {
            status,
            stdout,
            stderr,
        } = self.cmd.output().expect("run wsusfix");
        Done {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

impl Done {
    /// Asserts the exit code, showing both streams on failure.
    pub fn code(self, want: i32) -> Done {
        assert_eq!(
            self.code, want,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts stdout contains `s`.
    pub fn stdout_has(self, s: &str) -> Done {
        assert!(
            self.stdout.contains(s),
            "stdout lacks {s:?}:\n{}",
            self.stdout
        );
        self
    }

    /// Asserts stderr contains `s`.
    pub fn stderr_has(self, s: &str) -> Done {
        assert!(
            self.stderr.contains(s),
            "stderr lacks {s:?}:\n{}",
            self.stderr
        );
        self
    }
}
