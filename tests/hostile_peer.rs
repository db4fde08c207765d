//! A hostile or broken server harms only itself (docs/winrm.md, DESIGN invariant 10).
//!
//! `tests/peer/hostile_winrm_peer.py` is a small WinRM listener that is not our simulator: each of
//! its listeners plays one attack (a reply nested 20,000 deep, 12,000 attributes or 8,000
//! namespace declarations on one tag, a 500 MB reply, a 20 MB fault, endless output, Receives
//! answered at once with Running or TimedOut, terminal escape sequences, and a server that knows
//! no password and answers in clear text after a fake logon). The lab's simulator serves the
//! healthy hosts; the hostile listeners are extra hosts of the same inventory. Each command
//! (`exec`, `plan --facts`, `apply`) must end with a clear error for each hostile host while the
//! others finish, with the peak memory of the wsusfix process under 200 MB and no panic.
//!
//! A second test puts a TCP relay in front of a simulated replica that turns hostile once the
//! replica is held autonomous: the run finishes elsewhere, the hold is left open and named in the
//! ledger and by `status`, and `restore` closes it once the host answers properly again.

// The peak memory of the wsusfix process is read with wait4 (Unix).
#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::{Lab, PASSWORD, peer_python};

/// Every attack the peer knows, and what the controller must say about it.
const ATTACKS: &[(&str, &str)] = &[
    ("deep", "the reply nests elements more than 64 deep"),
    (
        "cleartext500",
        "unsealed reply in a sealed session (HTTP 500); its body was not read",
    ),
    (
        "huge",
        "the server sent a reply larger than the 150 KiB envelope this client asks for",
    ),
    (
        "bigfault",
        "the server sent a reply larger than the 150 KiB envelope this client asks for",
    ),
    (
        "attrs",
        "an element of the reply has more than 64 attributes",
    ),
    (
        "namespaces",
        "an element of the reply declares more than 32 namespaces",
    ),
    ("endless", "the command's output passed 16 MiB"),
    (
        "running",
        "Receives at once without output for more than 2 s",
    ),
    (
        "timedout",
        "Receives at once without output for more than 2 s",
    ),
    (
        "escapes",
        "from hostile: \\e]0;pwned\\x07\\e[2J\\e[H\\r[   1.00s] wsus-eu-paris: done in 1 s\\u{9b}31myyy",
    ),
];

/// The most memory a wsusfix process may use under attack.
const MAX_RSS_KB: i64 = 200 * 1024;

/// The running peer: one listener per attack, on 127.`subnet`.9.N.
struct Peer {
    child: std::process::Child,
    listeners: BTreeMap<String, (String, u16)>,
    _dir: tempfile::TempDir,
}

impl Peer {
    fn start(subnet: u8, attacks: &[&str]) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        std::fs::write(&users, format!("LAB:wsusfix:{PASSWORD}\n")).unwrap();
        let mut cmd = Command::new(peer_python());
        cmd.arg(common::root().join("tests/peer/hostile_winrm_peer.py"))
            .env("NTLM_USER_FILE", &users)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (i, a) in attacks.iter().enumerate() {
            cmd.arg("--listen")
                .arg(format!("{a}=127.{subnet}.9.{}:0", i + 1));
        }
        let mut child = cmd.spawn().expect("start the hostile peer");
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut listeners = BTreeMap::new();
        loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).unwrap() > 0, "the peer exited");
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["ready"] => break,
                [attack, ip, port] => {
                    listeners.insert(attack.to_string(), (ip.to_string(), port.parse().unwrap()));
                }
                _ => panic!("unexpected peer output {line:?}"),
            }
        }
        Peer {
            child,
            listeners,
            _dir: dir,
        }
    }

    /// The listener's counters.
    fn stats(&self, attack: &str) -> serde_json::Value {
        let (ip, port) = &self.listeners[attack];
        let mut s = TcpStream::connect((ip.as_str(), *port)).unwrap();
        write!(
            s,
            "GET /peer/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        serde_json::from_str(body).unwrap()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lab's inventory with one extra server per attack, each an autonomous RTM server below
/// `wsus-us` (a leaf: nothing below it is blocked), at its hostile listener, with a 1 s
/// OperationTimeout.
fn inventory_with(lab: &Lab, peer: &Peer) -> PathBuf {
    let mut text = std::fs::read_to_string(&lab.inventory).unwrap();
    for (attack, (ip, port)) in &peer.listeners {
        text.push_str(&format!(
            "\n  h-{attack}:\n    role: autonomous\n    upstream: wsus-us\n    address: {ip}\n    \
             version: 3.0-rtm\n    winrm: {{ port: {port}, operation_timeout: 1 }}\n"
        ));
    }
    let path = lab.dir.path().join("with-hostile.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// What a wsusfix process did, and its peak resident memory.
struct Measured {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    peak_rss_kb: i64,
}

impl Measured {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// The common bounds: an exit code (no signal: no abort, no stack overflow), no panic, the
    /// memory bound, and not one raw escape character in the output.
    fn check_bounds(&self, want_code: i32) {
        let all = self.all();
        assert_eq!(self.code, Some(want_code), "exit code\n{all}");
        assert!(!all.contains("panicked"), "{all}");
        assert!(
            self.peak_rss_kb < MAX_RSS_KB,
            "peak RSS {} KiB\n{all}",
            self.peak_rss_kb
        );
        assert!(
            !all.chars()
                .any(|c| c == '\x1b' || c == '\x07' || c == '\u{9b}' || c == '\r'),
            "a control character reached the output"
        );
    }
}

/// Runs wsusfix and measures it with wait4 (the child's own rusage, not the test process's).
// The child is reaped by wait4, not by `Child::wait`, which cannot give its rusage.
#[allow(clippy::zombie_processes)]
fn run_measured(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Measured {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsusfix"));
    cmd.args(args)
        .current_dir(common::root())
        .env_remove("WSUSFIX_LOG")
        .env("WSUSFIX_PASSWORD", PASSWORD)
        .env("WSUSFIX_CLIENT_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn wsusfix");
    let pid = child.id() as libc::pid_t;
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = read_all(Box::new(child.stdout.take().unwrap()));
    let err = read_all(Box::new(child.stderr.take().unwrap()));
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let until = std::time::Instant::now() + timeout;
            while !done.load(Ordering::Relaxed) {
                if std::time::Instant::now() > until {
                    // SAFETY: signalling our own child, which has not been reaped yet.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        })
    };
    let mut status = 0;
    // SAFETY: plain wait4 on our own child; the rusage struct is ours.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    done.store(true, Ordering::Relaxed);
    assert_eq!(reaped, pid, "wait4");
    let killed = watchdog.join().unwrap();
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    assert!(
        !killed,
        "wsusfix {args:?} did not finish within {timeout:?}\n{stdout}{stderr}"
    );
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Measured {
        code,
        stdout,
        stderr,
        peak_rss_kb: usage.ru_maxrss,
    }
}

fn attack_names() -> Vec<&'static str> {
    ATTACKS.iter().map(|(a, _)| *a).collect()
}

/// Each hostile host's error, as its messages must say it.
fn assert_each_attack_named(output: &str) {
    for (attack, message) in ATTACKS {
        let host = format!("h-{attack}");
        let mentioned = output
            .lines()
            .filter(|l| l.contains(&host) || l.contains(message))
            .any(|l| l.contains(message));
        assert!(
            mentioned,
            "{host}: {message:?} is not in the output:\n{output}"
        );
    }
}

#[test]
fn every_attack_on_exec_is_an_error_of_that_host_alone() {
    let lab = Lab::start("lab.yaml", 205, Some("seed: 1\n"));
    let peer = Peer::start(205, &attack_names());
    let inv = inventory_with(&lab, &peer);
    let inv = inv.display().to_string();
    let mut args = vec!["exec", "-i", inv.as_str(), "--timeout", "60"];
    let hosts: Vec<String> = ["wsus-hq", "wsus-eu", "wsus-us", "wsus-eu-paris"]
        .iter()
        .map(|s| s.to_string())
        .chain(attack_names().iter().map(|a| format!("h-{a}")))
        .collect();
    for h in &hosts {
        args.push("--host");
        args.push(h);
    }
    args.extend(["--", "# wsusfix-op: child_servers {}"]);
    let m = run_measured(&args, &[], Duration::from_secs(90));
    m.check_bounds(2);
    for healthy in ["wsus-hq", "wsus-eu", "wsus-us", "wsus-eu-paris"] {
        assert!(
            m.stdout.contains(&format!("== {healthy} (exit 0, ntlm)")),
            "{}",
            m.stdout
        );
    }
    for (attack, _) in ATTACKS {
        assert!(
            m.stdout.contains(&format!("== h-{attack} (not run)\n")),
            "{attack}:\n{}",
            m.stdout
        );
    }
    assert_each_attack_named(&m.stdout);
    assert!(
        m.stdout.contains(&format!(
            "\n{} hosts: 4 ok, {} failed\n",
            hosts.len(),
            ATTACKS.len()
        )),
        "{}",
        m.stdout
    );
    // The 100 KB fault reason is cut, with a marker.
    assert!(m.stdout.contains(" more characters]"), "{}", m.stdout);
    // No flood: a server that answers Receive at once got a handful of them.
    for attack in ["running", "timedout"] {
        let receives = peer.stats(attack)["receives"].as_u64().unwrap();
        assert!(
            (3..=12).contains(&receives),
            "{attack}: {receives} receives"
        );
    }
}

#[test]
fn every_attack_on_plan_facts_is_an_unknown_of_that_host_alone() {
    let lab = Lab::start("lab.yaml", 206, Some("seed: 1\n"));
    let peer = Peer::start(206, &attack_names());
    let inv = inventory_with(&lab, &peer);
    let inv = inv.display().to_string();
    let m = run_measured(
        &["plan", "-i", &inv, "--facts"],
        &[],
        Duration::from_secs(90),
    );
    m.check_bounds(0);
    assert!(
        m.stderr
            .contains(&format!("facts of {} servers (", 6 + ATTACKS.len())),
        "{}",
        m.stderr
    );
    assert!(
        m.stderr.contains(&format!("{} unknown", ATTACKS.len())),
        "the healthy servers' facts were read:\n{}",
        m.stderr
    );
    assert_each_attack_named(&m.all());
}

#[test]
fn every_attack_on_apply_fails_that_host_alone_and_the_lab_is_repaired() {
    let lab = Lab::start("lab.yaml", 207, None);
    let peer = Peer::start(207, &attack_names());
    let inv = inventory_with(&lab, &peer);
    let inv = inv.display().to_string();
    let state = lab.state_dir().display().to_string();
    let m = run_measured(
        &["apply", "-i", &inv, "--state-dir", &state, "--yes"],
        &[],
        Duration::from_secs(120),
    );
    m.check_bounds(2);
    assert_eq!(lab.problems(), Vec::<String>::new(), "{}", m.all());
    assert!(
        m.stdout.contains(&format!(
            "Result: 6 done, {} failed; every restore done (exit 2",
            ATTACKS.len()
        )),
        "{}",
        m.stdout
    );
    assert_each_attack_named(&m.all());
}

// ---------------------------------------------------------------------------------------------
// A replica that turns hostile while it is held.

/// A TCP relay in front of one simulated host. It forwards whole HTTP exchanges until `trigger`
/// says so; from then on it answers every sealed request itself, in clear text with HTTP 500 and
/// a body 20,000 elements deep, until `healed` is set.
struct Relay {
    addr: std::net::SocketAddr,
    healed: Arc<AtomicBool>,
    attacked: Arc<AtomicU32>,
}

fn read_message(s: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if s.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; length];
    s.read_exact(&mut body).ok()?;
    head.extend_from_slice(&body);
    Some(head)
}

impl Relay {
    fn start(
        ip: &str,
        upstream: std::net::SocketAddr,
        trigger: Arc<dyn Fn() -> bool + Send + Sync>,
    ) -> Relay {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let healed = Arc::new(AtomicBool::new(false));
        let attacked = Arc::new(AtomicU32::new(0));
        let (h, a) = (healed.clone(), attacked.clone());
        let deep = format!("{}{}", "<a>".repeat(20_000), "</a>".repeat(20_000));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (trigger, healed, attacked, deep) =
                    (trigger.clone(), h.clone(), a.clone(), deep.clone());
                std::thread::spawn(move || {
                    let Ok(server) = TcpStream::connect(upstream) else {
                        return;
                    };
                    let mut from_client = BufReader::new(client.try_clone().unwrap());
                    let mut to_client = client;
                    let mut from_server = BufReader::new(server.try_clone().unwrap());
                    let mut to_server = server;
                    while let Some(request) = read_message(&mut from_client) {
                        let sealed = String::from_utf8_lossy(&request[..request.len().min(2048)])
                            .to_ascii_lowercase()
                            .contains("content-type: multipart/encrypted");
                        if sealed && !healed.load(Ordering::Relaxed) && trigger() {
                            attacked.fetch_add(1, Ordering::Relaxed);
                            let reply = format!(
                                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{deep}",
                                deep.len()
                            );
                            if to_client.write_all(reply.as_bytes()).is_err() {
                                return;
                            }
                            continue;
                        }
                        if to_server.write_all(&request).is_err() {
                            return;
                        }
                        let Some(reply) = read_message(&mut from_server) else {
                            return;
                        };
                        if to_client.write_all(&reply).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Relay {
            addr,
            healed,
            attacked,
        }
    }
}

#[test]
fn a_replica_that_turns_hostile_while_held_is_left_in_the_ledger_and_restored_later() {
    let lab = Lab::start("lab.yaml", 208, None);
    let state_file = lab.sim.state_file.clone();
    // wsus-eu-paris turns hostile once the run has switched it to autonomous.
    let held = Arc::new(move || held_autonomous(&state_file, "wsus-eu-paris"));
    let paris: std::net::SocketAddr = "127.208.1.4:5985".parse().unwrap();
    let relay = Relay::start("127.208.9.1", paris, held);
    let text = std::fs::read_to_string(&lab.inventory).unwrap().replace(
        "    address: 127.208.1.4\n",
        &format!(
            "    address: 127.208.9.1\n    winrm: {{ port: {} }}\n",
            relay.addr.port()
        ),
    );
    let inv = lab.dir.path().join("relayed.yaml");
    std::fs::write(&inv, text).unwrap();
    let inv = inv.display().to_string();
    let state = lab.state_dir().display().to_string();

    let m = run_measured(
        &["apply", "-i", &inv, "--state-dir", &state, "--yes"],
        &[],
        Duration::from_secs(120),
    );
    m.check_bounds(4);
    assert!(relay.attacked.load(Ordering::Relaxed) > 0, "{}", m.all());
    let out = &m.stdout;
    assert!(
        out.contains("Result: 5 done, 1 failed"),
        "the other servers finish:\n{}",
        m.all()
    );
    assert!(
        out.contains("unsealed reply in a sealed session (HTTP 500)"),
        "{}",
        m.all()
    );
    let ledger = &out[out.find("RESTORE LEDGER").expect("a ledger")..];
    assert!(
        ledger.lines().any(|l| l.contains("wsus-eu-paris")
            && l.contains("replica hold")
            && !l.contains("restored")),
        "the open hold is named:\n{ledger}"
    );
    assert!(held_autonomous(&lab.sim.state_file, "wsus-eu-paris"));
    let status = run_measured(
        &[
            "status",
            "-i",
            &inv,
            "--state-dir",
            &state,
            "--format",
            "json",
        ],
        &[],
        Duration::from_secs(30),
    );
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["held_autonomous"], serde_json::json!(["wsus-eu-paris"]));

    // The host answers properly again: `restore` switches it back.
    relay.healed.store(true, Ordering::Relaxed);
    let r = run_measured(
        &["restore", "-i", &inv, "--state-dir", &state],
        &[],
        Duration::from_secs(60),
    );
    r.check_bounds(0);
    assert!(
        !held_autonomous(&lab.sim.state_file, "wsus-eu-paris"),
        "{}",
        r.all()
    );
}

fn held_autonomous(state_file: &Path, server: &str) -> bool {
    let Ok(bytes) = std::fs::read(state_file) else {
        return false;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return false;
    };
    v["servers"][server]["replica"] == false
}
