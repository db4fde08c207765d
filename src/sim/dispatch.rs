//! Maps a script received over WinRM onto the world: reads the marker line
//! (`# wsusfix-op: NAME {json}`, docs/script-contract.md), applies the operation, and answers on
//! stdout, stderr and the exit code as the real script would on Windows.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::world::{OpFailure, OpOutcome, World};

/// What a script run answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Process exit code.
    pub exit_code: i32,
    /// Bytes on stdout.
    pub stdout: Vec<u8>,
    /// Bytes on stderr.
    pub stderr: Vec<u8>,
    /// How long the run takes beyond the base latency.
    pub duration: Duration,
    /// The operation changed the world (the state file should be written).
    pub mutated: bool,
}

/// A parsed marker line.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Operation name.
    pub op: String,
    /// Arguments.
    pub args: serde_json::Map<String, Value>,
}

/// Reads the marker from the script's first line.
pub fn marker(script: &str) -> Result<Marker, String> {
    let first = script
        .trim_start_matches('\u{feff}')
        .lines()
        .next()
        .unwrap_or("")
        .trim();
    let rest = first
        .strip_prefix("# wsusfix-op:")
        .ok_or("the script does not start with a `# wsusfix-op:` marker line")?
        .trim();
    let (op, json) = rest.split_once(' ').unwrap_or((rest, "{}"));
    if op.is_empty() || !op.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return Err(format!("bad operation name `{op}` in the marker"));
    }
    let args: Value =
        serde_json::from_str(json.trim()).map_err(|e| format!("bad marker arguments: {e}"))?;
    match args {
        Value::Object(args) => Ok(Marker {
            op: op.to_string(),
            args,
        }),
        _ => Err("marker arguments must be a JSON object".into()),
    }
}

/// The stderr PowerShell writes for a terminating error under WinRM (CLIXML).
pub fn clixml_error(message: &str) -> Vec<u8> {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace("\r\n", "_x000D__x000A_")
        .replace('\n', "_x000A_");
    format!(
        "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><S S=\"Error\">{escaped}_x000D__x000A_</S></Objs>"
    )
    .into_bytes()
}

fn b64(v: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
}

fn format_keys(keys: &[(String, String)]) -> Vec<u8> {
    let mut out = String::new();
    for (k, v) in keys {
        out.push_str("wsusfix:");
        out.push_str(k);
        out.push('=');
        out.push_str(&b64(v));
        out.push_str("\r\n");
    }
    out.into_bytes()
}

fn answer(outcome: OpOutcome, mutated: bool) -> Answer {
    match outcome.result {
        Ok(keys) => Answer {
            exit_code: 0,
            stdout: format_keys(&keys),
            stderr: Vec::new(),
            duration: outcome.duration,
            mutated,
        },
        Err(f) => failure(f, outcome.duration, mutated),
    }
}

fn failure(f: OpFailure, duration: Duration, mutated: bool) -> Answer {
    let mut keys = vec![
        ("error_kind".to_string(), f.kind.to_string()),
        ("error_type".to_string(), f.error_type.to_string()),
        ("error".to_string(), f.message.clone()),
    ];
    keys.extend(f.extra);
    Answer {
        exit_code: 1,
        stdout: format_keys(&keys),
        stderr: Vec::new(),
        duration,
        mutated,
    }
}

/// A script that fails the way an unhandled PowerShell error does: CLIXML on stderr, exit 1.
pub fn script_error(message: &str) -> Answer {
    Answer {
        exit_code: 1,
        stdout: Vec::new(),
        stderr: clixml_error(message),
        duration: Duration::ZERO,
        mutated: false,
    }
}

struct Args<'a>(&'a serde_json::Map<String, Value>, &'a str);

impl Args<'_> {
    fn str(&self, k: &str) -> Result<String, String> {
        match self.0.get(k) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(format!("{}: argument `{k}` must be a string", self.1)),
        }
    }
    fn opt_str(&self, k: &str) -> Option<String> {
        self.0.get(k).and_then(Value::as_str).map(str::to_string)
    }
    fn bool(&self, k: &str) -> Result<bool, String> {
        self.0
            .get(k)
            .and_then(Value::as_bool)
            .ok_or_else(|| format!("{}: argument `{k}` must be true or false", self.1))
    }
    fn u64(&self, k: &str) -> Result<u64, String> {
        self.0
            .get(k)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("{}: argument `{k}` must be a number", self.1))
    }
    fn list(&self, k: &str) -> Result<Vec<String>, String> {
        match self.0.get(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("{}: `{k}` must be a list of strings", self.1))
                })
                .collect(),
            Some(_) => Err(format!("{}: `{k}` must be a list of strings", self.1)),
        }
    }
}

/// Runs one script on `host` (a server or a client of the world) at time `now`.
pub fn run(world: &mut World, host: &str, script: &str, now: DateTime<Utc>) -> Answer {
    let m = match marker(script) {
        Ok(m) => m,
        Err(e) => {
            return script_error(&format!(
                "{e}. This host is simulated and runs only wsusfix operation scripts (docs/script-contract.md)."
            ));
        }
    };
    let a = Args(&m.args, &m.op);
    let is_server = world.servers.contains_key(host);
    let is_client = world.clients.contains_key(host);
    let result: Result<Answer, String> = (|| {
        if m.op == "detect_now" {
            if !is_client {
                return Err(format!("{host} is not a simulated client computer"));
            }
            return Ok(answer(world.detect_now(host, now), true));
        }
        if !is_server {
            // A client has no WSUS administration assembly.
            return Ok(failure(
                OpFailure {
                    kind: "wsus-not-installed",
                    error_type: "System.IO.FileNotFoundException",
                    message:
                        "Could not load file or assembly 'Microsoft.UpdateServices.Administration'."
                            .into(),
                    extra: Vec::new(),
                },
                Duration::ZERO,
                false,
            ));
        }
        Ok(match m.op.as_str() {
            "facts" => {
                let since = a
                    .opt_str("since")
                    .filter(|s| !s.is_empty())
                    .map(|s| DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)))
                    .transpose()
                    .map_err(|e| format!("facts: bad `since`: {e}"))?;
                answer(
                    world.facts(host, &a.str("update")?, since, &a.list("services")?),
                    false,
                )
            }
            "set_replica" => answer(
                world.set_replica(
                    host,
                    a.bool("replica")?,
                    Duration::from_secs(a.u64("timeout")?),
                    now,
                ),
                true,
            ),
            "ensure_declined" => answer(world.ensure_declined(host, &a.str("update")?), true),
            "approve_unchanged" => answer(
                world.approve_unchanged(host, &a.str("update")?, &a.str("group")?),
                true,
            ),
            "decline" => answer(world.decline(host, &a.str("update")?), true),
            "install_hotfix" => answer(
                world.install_hotfix(
                    host,
                    a.u64("kb")? as u32,
                    &a.str("path")?,
                    &a.str("sha256")?,
                    now,
                ),
                true,
            ),
            "file_version" => answer(world.file_version(host, &a.str("path")?), false),
            "services" => answer(
                world.services(
                    host,
                    &a.list("names")?,
                    &a.list("wait_running")?,
                    Duration::from_secs(a.u64("timeout").unwrap_or(0)),
                ),
                false,
            ),
            "sync_now" => answer(world.sync_now(host, now), true),
            "child_servers" => answer(world.child_servers(host), false),
            "set_culture" => answer(world.set_culture(host, &a.str("culture")?), true),
            other => return Err(format!("unknown operation `{other}`")),
        })
    })();
    result.unwrap_or_else(|e| script_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_parse() {
        let m = marker(
            "# wsusfix-op: decline {\"update\":\"D359F493-0AAD-43FA-AF5C-6763326CD98F\"}\r\n$x = 1",
        )
        .unwrap();
        assert_eq!(m.op, "decline");
        assert_eq!(m.args["update"], "D359F493-0AAD-43FA-AF5C-6763326CD98F");
        assert_eq!(marker("# wsusfix-op: child_servers").unwrap().args.len(), 0);
        assert!(marker("Get-Date").is_err());
        assert!(marker("# wsusfix-op: facts [1]").is_err());
        assert!(marker("# wsusfix-op: Facts {}").is_err());
    }

    #[test]
    fn clixml_escapes() {
        let e = String::from_utf8(clixml_error("a <b> & c\nd")).unwrap();
        assert!(e.starts_with("#< CLIXML\r\n<Objs"));
        assert!(e.contains("a &lt;b&gt; &amp; c_x000A_d_x000D__x000A_"));
    }
}
