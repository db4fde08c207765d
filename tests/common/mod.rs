//! A small builder for tests that run the real `wsusfix` binary: state the arguments, the
//! expected exit code and what the output must contain, in one readable block.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

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

/// The Python with pywinrm and pyspnego for interop tests: `$WSUSFIX_PEER_PYTHON`, else the one
/// `tests/peer/setup.sh` creates (once per machine, under a lock so that parallel test processes
/// do not build the virtualenv twice). Never skips: without Python and PyPI it fails and says so.
pub fn peer_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        if let Some(path) = std::env::var_os("WSUSFIX_PEER_PYTHON").filter(|p| !p.is_empty()) {
            return PathBuf::from(path);
        }
        let lock_path = std::env::temp_dir().join("wsusfix-peer-venv.lock");
        let lock = std::fs::File::create(&lock_path).expect("create the venv lock file");
        lock.lock().expect("lock the venv lock file");
        let setup = root().join("tests/peer/setup.sh");
        let output = Command::new("bash")
            .arg(&setup)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", setup.display()));
        lock.unlock().ok();
        assert!(
            output.status.success(),
            "{} failed; it needs python3 and PyPI (or set WSUSFIX_PEER_PYTHON to a python with \
             pywinrm 0.5.0 and pyspnego 0.12.4):\n{}",
            setup.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("setup.sh prints the python path")
                .trim(),
        )
    })
}

/// The password every test inventory refers to (`env:WSUSFIX_PASSWORD`).
pub const PASSWORD: &str = "Lab-Passw0rd!";

/// Copies an inventory from `inventory/` into `dir`, moving its loopback addresses from
/// 127.0.x.y to 127.`subnet`.x.y so that tests running at once do not share addresses.
pub fn inventory_copy(dir: &Path, name: &str, subnet: u8) -> PathBuf {
    let text =
        std::fs::read_to_string(root().join("inventory").join(name)).expect("read the inventory");
    let moved = text.replace("127.0.", &format!("127.{subnet}."));
    let path = dir.join(name);
    std::fs::write(&path, moved).expect("write the inventory copy");
    path
}

/// A `wsusfix sim serve` process, stopped (Ctrl-C) when dropped.
pub struct Sim {
    child: std::process::Child,
    /// Its state file.
    pub state_file: PathBuf,
    /// The CA certificate of its HTTPS listeners.
    pub ca: PathBuf,
    /// What it printed up to "ready".
    pub banner: String,
}

impl Sim {
    /// Starts the simulator for `inventory` (with an optional scenario) and waits until it
    /// serves. Its files go to `dir`.
    pub fn start(inventory: &Path, scenario: Option<&Path>, dir: &Path, extra: &[&str]) -> Sim {
        use std::io::{BufRead, BufReader};
        let state_file = dir.join("sim-state.json");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsusfix"));
        cmd.arg("sim")
            .arg("serve")
            .arg("-i")
            .arg(inventory)
            .arg("--state-file")
            .arg(&state_file)
            .args(extra)
            .env("WSUSFIX_PASSWORD", PASSWORD)
            .env("WSUSFIX_CLIENT_PASSWORD", PASSWORD)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        if let Some(s) = scenario {
            cmd.arg("--scenario").arg(s);
        }
        let mut child = cmd.spawn().expect("start wsusfix sim serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut reader = BufReader::new(stdout);
        let mut banner = String::new();
        loop {
            let mut line = String::new();
            let n = reader
                .read_line(&mut line)
                .expect("read the simulator's output");
            assert!(n > 0, "the simulator exited before it was ready:\n{banner}");
            banner.push_str(&line);
            if line.starts_with("ready") {
                break;
            }
        }
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        Sim {
            child,
            ca: state_file.with_file_name("sim-ca.pem"),
            state_file,
            banner,
        }
    }

    /// The world's state view.
    pub fn state(&self) -> serde_json::Value {
        let bytes = std::fs::read(&self.state_file).expect("read the simulator state");
        serde_json::from_slice(&bytes).expect("the state is JSON")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // Ask it to stop as Ctrl-C does. Windows has no signal for a child that shares our
        // console: it is ended at once there (nothing of a test's lab outlives the test).
        #[cfg(unix)]
        {
            interrupt(&self.child, libc::SIGINT);
            for _ in 0..100 {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends signal `sig` to our own child process.
#[cfg(unix)]
pub fn interrupt(child: &std::process::Child, sig: i32) {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, sig) };
}

/// True when a child ended by `Child::kill` (SIGKILL on Unix; `TerminateProcess` with exit
/// code 1 on Windows, which is how std kills) rather than by exiting on its own.
pub fn was_killed(status: std::process::ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        status.signal() == Some(libc::SIGKILL)
    }
    #[cfg(windows)]
    {
        status.code() == Some(1)
    }
}

/// A simulated lab for one test: its own folder, an inventory on its own loopback subnet, the
/// simulator serving it, and `wsusfix` commands run against it with their own state folder.
pub struct Lab {
    /// The test's folder.
    pub dir: tempfile::TempDir,
    /// The inventory copy.
    pub inventory: PathBuf,
    /// The running simulator.
    pub sim: Sim,
}

impl Lab {
    /// Serves `inventory/NAME` on 127.`subnet`.x.y with an optional scenario text.
    pub fn start(name: &str, subnet: u8, scenario: Option<&str>) -> Lab {
        Lab::start_with(name, subnet, scenario, &[])
    }

    /// [`Lab::start`] with more arguments for `sim serve` (e.g. `--keytab FILE`).
    pub fn start_with(name: &str, subnet: u8, scenario: Option<&str>, extra: &[&str]) -> Lab {
        let dir = tempfile::tempdir().expect("temp dir");
        let inventory = inventory_copy(dir.path(), name, subnet);
        let scenario_path = scenario.map(|text| {
            let p = dir.path().join("scenario.yaml");
            std::fs::write(&p, text).expect("write the scenario");
            p
        });
        let sim = Sim::start(&inventory, scenario_path.as_deref(), dir.path(), extra);
        Lab {
            dir,
            inventory,
            sim,
        }
    }

    /// The state folder of runs.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `wsusfix COMMAND -i INV --state-dir STATE ARGS...` with the lab's password.
    pub fn wsusfix(&self, command: &str, args: &[&str]) -> Run {
        let mut all: Vec<String> = vec![command.to_string()];
        all.push("-i".into());
        all.push(self.inventory.display().to_string());
        if matches!(command, "apply" | "resume" | "restore" | "status") {
            all.push("--state-dir".into());
            all.push(self.state_dir().display().to_string());
        }
        all.extend(args.iter().map(|s| s.to_string()));
        Run::new(all)
            .env("WSUSFIX_PASSWORD", PASSWORD)
            .env("WSUSFIX_CLIENT_PASSWORD", PASSWORD)
    }

    /// The same command as a child process (to kill or interrupt it).
    pub fn spawn(&self, command: &str, args: &[&str]) -> std::process::Child {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wsusfix"));
        c.arg(command)
            .arg("-i")
            .arg(&self.inventory)
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(args)
            .env("WSUSFIX_PASSWORD", PASSWORD)
            .env("WSUSFIX_CLIENT_PASSWORD", PASSWORD)
            .env_remove("WSUSFIX_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c.spawn().expect("spawn wsusfix")
    }

    /// Problems that keep the world from being repaired (empty when it is).
    pub fn problems(&self) -> Vec<String> {
        let state = self.sim.state();
        let inv = std::fs::read_to_string(&self.inventory).unwrap();
        let inv = wsusfix::core::inventory::load(&inv).inventory.unwrap();
        let mut out = Vec::new();
        for s in inv.servers() {
            let v = &state["servers"][&s.name];
            if v["approvals_consistent"] != true {
                out.push(format!("{}: approvals inconsistent", s.name));
            }
            let replica = s.role == wsusfix::core::inventory::Role::Replica;
            if v["replica"] != replica {
                out.push(format!(
                    "{}: replica flag {} (role {})",
                    s.name, v["replica"], s.role
                ));
            }
            if v["current_culture"] != v["original_culture"] {
                out.push(format!(
                    "{}: culture left at {}",
                    s.name, v["current_culture"]
                ));
            }
        }
        for (_, c) in inv.clients() {
            if state["clients"][&c.name]["last_detection"] != "succeeded" {
                out.push(format!(
                    "{}: last detection {}",
                    c.name, state["clients"][&c.name]["last_detection"]
                ));
            }
        }
        out
    }
}

/// The Python with the Kerberos peers (pyspnego over python-gssapi, pywinrm with pykerberos):
/// `$WSUSFIX_PEER_KRB_PYTHON`, else the one `tests/peer/setup.sh --kerberos` creates (which
/// installs MIT Kerberos and the build tools first). Never skips.
pub fn kerberos_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        if let Some(path) = std::env::var_os("WSUSFIX_PEER_KRB_PYTHON").filter(|p| !p.is_empty()) {
            return PathBuf::from(path);
        }
        let lock = machine_lock("wsusfix-peer-venv.lock");
        let setup = root().join("tests/peer/setup.sh");
        let output = Command::new("bash")
            .arg(&setup)
            .arg("--kerberos")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", setup.display()));
        drop(lock);
        assert!(
            output.status.success(),
            "{} --kerberos failed; it needs apt (Debian's libkrb5-dev, gcc) and PyPI (or set \
             WSUSFIX_PEER_KRB_PYTHON to a python with pywinrm, pyspnego, gssapi, krb5 and \
             pykerberos):\n{}",
            setup.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("setup.sh prints the python path")
                .trim(),
        )
    })
}

/// An exclusive lock on a file in the temporary folder, held until dropped (setup steps that
/// several test processes may start at once).
pub fn machine_lock(name: &str) -> std::fs::File {
    let path = std::env::temp_dir().join(name);
    let file = std::fs::File::create(&path).expect("create the lock file");
    file.lock().expect("take the lock");
    file
}

/// Installs MIT Kerberos once per machine (`tests/kdc/realm.sh install`), under a lock.
pub fn install_kerberos() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let _lock = machine_lock("wsusfix-kdc-install.lock");
        let script = root().join("tests/kdc/realm.sh");
        let output = Command::new("bash")
            .arg(&script)
            .arg("install")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "{} install failed; the Kerberos tests need Debian's krb5-kdc, krb5-admin-server, \
             krb5-user and faketime (apt-get, as root):\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

/// The realm of the Kerberos tests (`tests/kdc/realm.sh`): user `wsusfix` with [`PASSWORD`].
pub const REALM: &str = "LAB.TEST";
/// The user principal name of the test realm's user.
pub const KRB_USER: &str = "wsusfix@LAB.TEST";

/// A throw-away MIT realm on loopback with its KDC running; stopped when dropped.
pub struct Realm {
    /// Its folder.
    pub dir: tempfile::TempDir,
    /// `IP:PORT` of the KDC.
    pub kdc: String,
    /// Its krb5.conf (for KRB5_CONFIG).
    pub krb5_config: PathBuf,
    /// The keytab of every service principal it was given.
    pub keytab: PathBuf,
    /// The KDC's log.
    pub kdc_log: PathBuf,
}

impl Realm {
    /// Starts a realm whose KDC listens on `kdc` (`IP:PORT`), with a `HTTP/<name>` service
    /// principal for every name in `hosts`; `clock_offset` runs the KDC under faketime
    /// (e.g. `+10m`).
    pub fn start(kdc: &str, hosts: &[&str], clock_offset: Option<&str>) -> Realm {
        install_kerberos();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new("bash");
        cmd.arg(root().join("tests/kdc/realm.sh"))
            .arg("start")
            .arg(dir.path())
            .arg("--realm")
            .arg(REALM)
            .arg("--kdc")
            .arg(kdc)
            .arg("--user")
            .arg("wsusfix")
            .env("REALM_PASSWORD", PASSWORD);
        for h in hosts {
            cmd.arg("--service").arg(format!("HTTP/{h}"));
        }
        if let Some(offset) = clock_offset {
            cmd.arg("--clock-offset").arg(offset);
        }
        let output = cmd.output().expect("run tests/kdc/realm.sh");
        assert!(
            output.status.success(),
            "tests/kdc/realm.sh start failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("realm.sh printed no {key}:\n{text}"))
                .to_string()
        };
        Realm {
            kdc: value("KDC"),
            krb5_config: PathBuf::from(value("KRB5_CONFIG")),
            keytab: PathBuf::from(value("KEYTAB")),
            kdc_log: PathBuf::from(value("KDC_LOG")),
            dir,
        }
    }

    /// The KDC's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.kdc_log).unwrap_or_default()
    }

    /// How many lines of the KDC's log contain `what`.
    pub fn log_count(&self, what: &str) -> usize {
        self.log().lines().filter(|l| l.contains(what)).count()
    }
}

impl Drop for Realm {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join("tests/kdc/realm.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}
