//! The operations of the script contract (docs/script-contract.md) with validated arguments,
//! and [`render`]: the PowerShell 2.0 script text for one of them. Pure: no I/O.
//!
//! A rendered script is the marker line, then the shared helpers, then the operation's template
//! from `scripts/`, whose `{{name}}` placeholders are replaced by quoted literals of the
//! validated arguments. Every placeholder sits on one `$Arg... = ...` line at the top of a
//! template, so the literals in the body are exactly the marker's JSON arguments.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::arg::{
    CultureName, Guid, HostName, InstallPath, InstallerArgs, InvalidArg, KbNumber, PackagePath,
    Port, ScriptLiteral, Seconds, ServiceName, Sha256, Since, service_names,
};

/// The name of an operation, as on the marker line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpName {
    /// `facts`
    Facts,
    /// `set_replica`
    SetReplica,
    /// `ensure_declined`
    EnsureDeclined,
    /// `approve_unchanged`
    ApproveUnchanged,
    /// `decline`
    Decline,
    /// `install_hotfix`
    InstallHotfix,
    /// `file_version`
    FileVersion,
    /// `services`
    Services,
    /// `sync_now`
    SyncNow,
    /// `child_servers`
    ChildServers,
    /// `set_culture`
    SetCulture,
    /// `detect_now` (on a client computer)
    DetectNow,
}

impl OpName {
    /// Every operation, in the contract's order.
    pub const ALL: [OpName; 12] = [
        OpName::Facts,
        OpName::SetReplica,
        OpName::EnsureDeclined,
        OpName::ApproveUnchanged,
        OpName::Decline,
        OpName::InstallHotfix,
        OpName::FileVersion,
        OpName::Services,
        OpName::SyncNow,
        OpName::ChildServers,
        OpName::SetCulture,
        OpName::DetectNow,
    ];

    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            OpName::Facts => "facts",
            OpName::SetReplica => "set_replica",
            OpName::EnsureDeclined => "ensure_declined",
            OpName::ApproveUnchanged => "approve_unchanged",
            OpName::Decline => "decline",
            OpName::InstallHotfix => "install_hotfix",
            OpName::FileVersion => "file_version",
            OpName::Services => "services",
            OpName::SyncNow => "sync_now",
            OpName::ChildServers => "child_servers",
            OpName::SetCulture => "set_culture",
            OpName::DetectNow => "detect_now",
        }
    }

    /// True for operations that connect to the WSUS administration API.
    pub fn uses_wsus_api(self) -> bool {
        matches!(
            self,
            OpName::Facts
                | OpName::SetReplica
                | OpName::EnsureDeclined
                | OpName::ApproveUnchanged
                | OpName::Decline
                | OpName::SyncNow
                | OpName::ChildServers
        )
    }

    /// True for operations that read the WSUS setup registry key and install folder.
    fn uses_wsus_setup(self) -> bool {
        matches!(self, OpName::Facts | OpName::FileVersion)
    }

    /// The operation's template.
    fn template(self) -> &'static str {
        match self {
            OpName::Facts => include_str!("scripts/facts.ps1"),
            OpName::SetReplica => include_str!("scripts/set_replica.ps1"),
            OpName::EnsureDeclined => include_str!("scripts/ensure_declined.ps1"),
            OpName::ApproveUnchanged => include_str!("scripts/approve_unchanged.ps1"),
            OpName::Decline => include_str!("scripts/decline.ps1"),
            OpName::InstallHotfix => include_str!("scripts/install_hotfix.ps1"),
            OpName::FileVersion => include_str!("scripts/file_version.ps1"),
            OpName::Services => include_str!("scripts/services.ps1"),
            OpName::SyncNow => include_str!("scripts/sync_now.ps1"),
            OpName::ChildServers => include_str!("scripts/child_servers.ps1"),
            OpName::SetCulture => include_str!("scripts/set_culture.ps1"),
            OpName::DetectNow => include_str!("scripts/detect_now.ps1"),
        }
    }
}

impl fmt::Display for OpName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Helpers every script starts with: preferences, result output, error mapping.
const COMMON: &str = include_str!("scripts/common.ps1");
/// Reading the WSUS setup key and file versions.
const SETUP: &str = include_str!("scripts/setup.ps1");
/// Loading the administration API and the helpers built on it.
const API: &str = include_str!("scripts/api.ps1");
/// `Connect-Wsusfix` for the local server (`AdminProxy.GetUpdateServer()`).
const CONNECT_LOCAL: &str = include_str!("scripts/connect_local.ps1");
/// `Connect-Wsusfix` by name, port and SSL (`AdminProxy.GetUpdateServer(name, ssl, port)`).
const CONNECT_NAMED: &str = include_str!("scripts/connect_named.ps1");

/// Every template, by file name (for tests and reviews).
pub fn templates() -> Vec<(&'static str, &'static str)> {
    let mut all = vec![
        ("common.ps1", COMMON),
        ("setup.ps1", SETUP),
        ("api.ps1", API),
        ("connect_local.ps1", CONNECT_LOCAL),
        ("connect_named.ps1", CONNECT_NAMED),
    ];
    for op in OpName::ALL {
        let file: &'static str = match op {
            OpName::Facts => "facts.ps1",
            OpName::SetReplica => "set_replica.ps1",
            OpName::EnsureDeclined => "ensure_declined.ps1",
            OpName::ApproveUnchanged => "approve_unchanged.ps1",
            OpName::Decline => "decline.ps1",
            OpName::InstallHotfix => "install_hotfix.ps1",
            OpName::FileVersion => "file_version.ps1",
            OpName::Services => "services.ps1",
            OpName::SyncNow => "sync_now.ps1",
            OpName::ChildServers => "child_servers.ps1",
            OpName::SetCulture => "set_culture.ps1",
            OpName::DetectNow => "detect_now.ps1",
        };
        all.push((file, op.template()));
    }
    all
}

/// How a script reaches the WSUS administration API on the server it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Connection {
    /// `AdminProxy.GetUpdateServer()`: the local server, with the port and SSL setting from its
    /// own registry. Adds no arguments to the marker.
    #[default]
    Local,
    /// `AdminProxy.GetUpdateServer(name, ssl, port)`: the WSUS web site by name (API remoting
    /// through IIS), for example with the inventory's `wsus.port` and `wsus.ssl`. Adds the
    /// arguments `server`, `port` and `ssl` to the operations that use the API.
    Named {
        /// The host name the site's certificate carries (for SSL) or any name of the server.
        server: HostName,
        /// The WSUS web site's port (80, 443, 8530, 8531).
        port: Port,
        /// Whether the site requires SSL.
        ssl: bool,
    },
}

impl Connection {
    /// A named connection, validated.
    pub fn named(server: &str, port: u16, ssl: bool) -> Result<Connection, InvalidArg> {
        Ok(Connection::Named {
            server: HostName::parse("server", server)?,
            port: Port::parse("port", port)?,
            ssl,
        })
    }
}

/// An operation with validated arguments. Build one with the constructors, which validate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Everything wsusfix needs to know about a server.
    Facts {
        /// The UpdateID whose state to report.
        update: Guid,
        /// SoftwareDistribution.log records from this time on.
        since: Since,
        /// Services whose state to report.
        services: Vec<ServiceName>,
    },
    /// Switch replica mode on or off.
    SetReplica {
        /// The wanted mode.
        replica: bool,
        /// Seconds to wait for the configuration to be saveable.
        timeout: Seconds,
    },
    /// Decline the update unless it is declined.
    EnsureDeclined {
        /// The UpdateID.
        update: Guid,
    },
    /// Approve the update for a group with action NotApproved.
    ApproveUnchanged {
        /// The UpdateID.
        update: Guid,
        /// The target group's ID.
        group: Guid,
    },
    /// Decline the update.
    Decline {
        /// The UpdateID.
        update: Guid,
    },
    /// Check and run a hotfix package.
    InstallHotfix {
        /// The KB number (for messages).
        kb: KbNumber,
        /// The package.
        path: PackagePath,
        /// Its expected SHA-256.
        sha256: Sha256,
        /// Installer switches.
        args: InstallerArgs,
        /// Seconds to wait for the installer.
        timeout: Seconds,
    },
    /// Read a file's Win32 file version under the WSUS install folder.
    FileVersion {
        /// Path relative to the install folder.
        path: InstallPath,
    },
    /// Report service states, waiting for some to run.
    Services {
        /// Services to report.
        names: Vec<ServiceName>,
        /// Services to wait for until they run (a subset of `names`).
        wait_running: Vec<ServiceName>,
        /// Seconds to wait.
        timeout: Seconds,
    },
    /// Start a synchronisation and wait for its result.
    SyncNow {
        /// Seconds to wait.
        timeout: Seconds,
    },
    /// List the downstream servers that sync directly from this one.
    ChildServers,
    /// Set the regional format (user locale) of the account wsusfix runs as.
    SetCulture {
        /// The culture to set.
        culture: CultureName,
    },
    /// On a client: `wuauclt.exe /detectnow` and the WindowsUpdate.log lines it causes.
    DetectNow {
        /// Seconds to wait for the search to end.
        timeout: Seconds,
    },
}

impl Op {
    /// `facts` for `update`, with SoftwareDistribution.log records since `since`.
    pub fn facts<S: AsRef<str>>(
        update: &str,
        since: Option<DateTime<Utc>>,
        services: &[S],
    ) -> Result<Op, InvalidArg> {
        Ok(Op::Facts {
            update: Guid::parse("update", update)?,
            since: Since::new(since),
            services: service_names("services", services)?,
        })
    }

    /// `set_replica`.
    pub fn set_replica(replica: bool, timeout: u32) -> Result<Op, InvalidArg> {
        Ok(Op::SetReplica {
            replica,
            timeout: Seconds::parse("timeout", timeout)?,
        })
    }

    /// `ensure_declined`.
    pub fn ensure_declined(update: &str) -> Result<Op, InvalidArg> {
        Ok(Op::EnsureDeclined {
            update: Guid::parse("update", update)?,
        })
    }

    /// `approve_unchanged`.
    pub fn approve_unchanged(update: &str, group: &str) -> Result<Op, InvalidArg> {
        Ok(Op::ApproveUnchanged {
            update: Guid::parse("update", update)?,
            group: Guid::parse("group", group)?,
        })
    }

    /// `decline`.
    pub fn decline(update: &str) -> Result<Op, InvalidArg> {
        Ok(Op::Decline {
            update: Guid::parse("update", update)?,
        })
    }

    /// `install_hotfix`.
    pub fn install_hotfix(
        kb: u32,
        path: &str,
        sha256: &str,
        args: &str,
        timeout: u32,
    ) -> Result<Op, InvalidArg> {
        Ok(Op::InstallHotfix {
            kb: KbNumber::parse("kb", kb)?,
            path: PackagePath::parse("path", path)?,
            sha256: Sha256::parse("sha256", sha256)?,
            args: InstallerArgs::parse("args", args)?,
            timeout: Seconds::parse("timeout", timeout)?,
        })
    }

    /// `file_version`.
    pub fn file_version(path: &str) -> Result<Op, InvalidArg> {
        Ok(Op::FileVersion {
            path: InstallPath::parse("path", path)?,
        })
    }

    /// `services`: report `names`, wait up to `timeout` for `wait_running` (a subset of
    /// `names`) to run.
    pub fn services<S: AsRef<str>, W: AsRef<str>>(
        names: &[S],
        wait_running: &[W],
        timeout: u32,
    ) -> Result<Op, InvalidArg> {
        let names = service_names("names", names)?;
        let wait_running = service_names("wait_running", wait_running)?;
        if let Some(w) = wait_running.iter().find(|w| {
            !names
                .iter()
                .any(|n| n.as_str().eq_ignore_ascii_case(w.as_str()))
        }) {
            return Err(InvalidArg {
                arg: "wait_running",
                value: format!("{:?}", w.as_str()),
                reason: "must only name services that are also in `names`".into(),
            });
        }
        Ok(Op::Services {
            names,
            wait_running,
            timeout: Seconds::parse("timeout", timeout)?,
        })
    }

    /// `sync_now`.
    pub fn sync_now(timeout: u32) -> Result<Op, InvalidArg> {
        Ok(Op::SyncNow {
            timeout: Seconds::parse("timeout", timeout)?,
        })
    }

    /// `set_culture`.
    pub fn set_culture(culture: &str) -> Result<Op, InvalidArg> {
        Ok(Op::SetCulture {
            culture: CultureName::parse("culture", culture)?,
        })
    }

    /// `detect_now`.
    pub fn detect_now(timeout: u32) -> Result<Op, InvalidArg> {
        Ok(Op::DetectNow {
            timeout: Seconds::parse("timeout", timeout)?,
        })
    }

    /// The operation's name.
    pub fn name(&self) -> OpName {
        match self {
            Op::Facts { .. } => OpName::Facts,
            Op::SetReplica { .. } => OpName::SetReplica,
            Op::EnsureDeclined { .. } => OpName::EnsureDeclined,
            Op::ApproveUnchanged { .. } => OpName::ApproveUnchanged,
            Op::Decline { .. } => OpName::Decline,
            Op::InstallHotfix { .. } => OpName::InstallHotfix,
            Op::FileVersion { .. } => OpName::FileVersion,
            Op::Services { .. } => OpName::Services,
            Op::SyncNow { .. } => OpName::SyncNow,
            Op::ChildServers => OpName::ChildServers,
            Op::SetCulture { .. } => OpName::SetCulture,
            Op::DetectNow { .. } => OpName::DetectNow,
        }
    }

    /// The arguments, by contract name, in the order the marker lists them.
    fn args(&self) -> Vec<(&'static str, &dyn ScriptLiteral)> {
        match self {
            Op::Facts {
                update,
                since,
                services,
            } => vec![("update", update), ("since", since), ("services", services)],
            Op::SetReplica { replica, timeout } => {
                vec![("replica", replica), ("timeout", timeout)]
            }
            Op::EnsureDeclined { update } | Op::Decline { update } => vec![("update", update)],
            Op::ApproveUnchanged { update, group } => vec![("update", update), ("group", group)],
            Op::InstallHotfix {
                kb,
                path,
                sha256,
                args,
                timeout,
            } => vec![
                ("kb", kb),
                ("path", path),
                ("sha256", sha256),
                ("args", args),
                ("timeout", timeout),
            ],
            Op::FileVersion { path } => vec![("path", path)],
            Op::Services {
                names,
                wait_running,
                timeout,
            } => vec![
                ("names", names),
                ("wait_running", wait_running),
                ("timeout", timeout),
            ],
            Op::SyncNow { timeout } | Op::DetectNow { timeout } => vec![("timeout", timeout)],
            Op::ChildServers => vec![],
            Op::SetCulture { culture } => vec![("culture", culture)],
        }
    }

    /// How long the transport waits for the script: the operation's own timeout plus two
    /// minutes for starting PowerShell, loading the API and connecting; otherwise a fixed bound.
    pub fn deadline(&self) -> Duration {
        const MARGIN: u64 = 120;
        let secs = match self {
            Op::SetReplica { timeout, .. }
            | Op::InstallHotfix { timeout, .. }
            | Op::Services { timeout, .. }
            | Op::SyncNow { timeout }
            | Op::DetectNow { timeout } => u64::from(timeout.get()) + MARGIN,
            // Scanning up to 16 MB of SoftwareDistribution.log on a slow server.
            Op::Facts { .. } => 300,
            _ => MARGIN,
        };
        Duration::from_secs(secs)
    }
}

/// The script for `op`, connecting to the local server where it uses the API.
pub fn render(op: &Op) -> String {
    render_via(op, &Connection::Local)
}

/// The script for `op`, connecting as `connection` says where it uses the API.
pub fn render_via(op: &Op, connection: &Connection) -> String {
    let name = op.name();
    let mut args = op.args();
    let mut parts: Vec<&str> = vec![COMMON];
    if name.uses_wsus_setup() {
        parts.push(SETUP);
    }
    if name.uses_wsus_api() {
        match connection {
            Connection::Local => parts.push(CONNECT_LOCAL),
            Connection::Named { server, port, ssl } => {
                parts.push(CONNECT_NAMED);
                args.push(("server", server));
                args.push(("port", port));
                args.push(("ssl", ssl));
            }
        }
        parts.push(API);
    }
    parts.push(name.template());

    let json: serde_json::Map<String, serde_json::Value> = args
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.json()))
        .collect();
    let mut script = format!(
        "# wsusfix-op: {} {}\n",
        name,
        serde_json::Value::Object(json)
    );
    let mut used = vec![false; args.len()];
    for part in parts {
        fill(part, &args, &mut used, &mut script);
        if !script.ends_with('\n') {
            script.push('\n');
        }
    }
    if let Some(i) = used.iter().position(|u| !u) {
        panic!(
            "{name}: argument `{}` has no placeholder in its template",
            args[i].0
        );
    }
    script
}

/// Appends `template` to `out` with each `{{name}}` replaced by the argument's literal, in one
/// pass (a value is never scanned for placeholders).
fn fill(
    template: &str,
    args: &[(&'static str, &dyn ScriptLiteral)],
    used: &mut [bool],
    out: &mut String,
) {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .unwrap_or_else(|| panic!("unclosed placeholder in a template"));
        let key = &after[..end];
        let i = args
            .iter()
            .position(|(k, _)| *k == key)
            .unwrap_or_else(|| panic!("template placeholder `{key}` has no argument"));
        used[i] = true;
        out.push_str(&args[i].1.literal());
        rest = &after[end + 2..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPDATE: &str = "D359F493-0AAD-43FA-AF5C-6763326CD98F";

    #[test]
    fn marker_line_first_with_sorted_json() {
        let s =
            render(&Op::approve_unchanged(UPDATE, "a0a08746-4dbe-4a37-9adf-9e7652c0b421").unwrap());
        let first = s.lines().next().unwrap();
        assert_eq!(
            first,
            "# wsusfix-op: approve_unchanged {\"group\":\"A0A08746-4DBE-4A37-9ADF-9E7652C0B421\",\"update\":\"D359F493-0AAD-43FA-AF5C-6763326CD98F\"}"
        );
        assert!(s.contains("$ArgGroup = 'A0A08746-4DBE-4A37-9ADF-9E7652C0B421'"));
        assert!(!s.contains("{{"), "{s}");
    }

    #[test]
    fn every_op_renders_without_leftover_placeholders() {
        for op in sample_ops() {
            for conn in [
                Connection::Local,
                Connection::named("wsus01.contoso.com", 8531, true).unwrap(),
            ] {
                let s = render_via(&op, &conn);
                assert!(s.starts_with(&format!("# wsusfix-op: {} {{", op.name())));
                assert!(!s.contains("{{"), "{}", op.name());
                assert_eq!(
                    s.contains("GetUpdateServer($ArgServer"),
                    op.name().uses_wsus_api() && conn != Connection::Local,
                    "{}",
                    op.name()
                );
            }
        }
    }

    #[test]
    fn named_connection_adds_its_arguments_only_where_the_api_is_used() {
        let conn = Connection::named("wsus01.contoso.com", 8530, false).unwrap();
        let s = render_via(&Op::decline(UPDATE).unwrap(), &conn);
        assert!(
            s.lines()
                .next()
                .unwrap()
                .contains("\"port\":8530,\"server\":\"wsus01.contoso.com\",\"ssl\":false")
        );
        let s = render_via(&Op::detect_now(600).unwrap(), &conn);
        assert_eq!(
            s.lines().next().unwrap(),
            "# wsusfix-op: detect_now {\"timeout\":600}"
        );
        assert!(Connection::named("wsus01:8530", 8530, false).is_err());
    }

    #[test]
    fn wait_running_must_be_reported_too() {
        assert!(Op::services(&["W3SVC"], &["w3svc"], 60).is_ok());
        let e = Op::services(&["W3SVC"], &["SMTPSVC"], 60).unwrap_err();
        assert_eq!(e.arg, "wait_running");
    }

    #[test]
    fn deadlines_leave_room_for_the_operation_timeout() {
        assert_eq!(
            Op::install_hotfix(954960, "C:\\p\\x.exe", &"a".repeat(64), "/q", 1800)
                .unwrap()
                .deadline(),
            Duration::from_secs(1920)
        );
        assert_eq!(Op::ChildServers.deadline(), Duration::from_secs(120));
    }

    pub(crate) fn sample_ops() -> Vec<Op> {
        vec![
            Op::facts(UPDATE, None, &["W3SVC", "SMTPSVC"]).unwrap(),
            Op::set_replica(false, 300).unwrap(),
            Op::ensure_declined(UPDATE).unwrap(),
            Op::approve_unchanged(UPDATE, crate::core::playbook::ALL_COMPUTERS_GROUP_ID).unwrap(),
            Op::decline(UPDATE).unwrap(),
            Op::install_hotfix(954960, "C:\\p\\x.exe", &"a".repeat(64), "/q", 1800).unwrap(),
            Op::file_version("WebServices\\x.dll").unwrap(),
            Op::services(&["W3SVC"], &["W3SVC"], 60).unwrap(),
            Op::sync_now(3600).unwrap(),
            Op::ChildServers,
            Op::set_culture("en-US").unwrap(),
            Op::detect_now(600).unwrap(),
        ]
    }
}
