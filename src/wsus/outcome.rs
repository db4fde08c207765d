//! Typed results of the operations, each read from the keys of a successful output. Values the
//! contract enumerates are parsed strictly: anything else is [`Malformed`], a sign that the
//! script and this parser disagree.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::error::Malformed;
use super::output::{Keys, parse_bool};
use crate::core::inventory::{Arch, WsusVersion};
use crate::core::playbook::is_guid;

/// A result read from keys.
pub trait FromKeys: Sized {
    /// Reads the result.
    fn from_keys(keys: &Keys) -> Result<Self, Malformed>;
}

/// A Win32 file version, four numbers (`3.1.6001.66`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileVersion(pub [u16; 4]);

impl FromStr for FileVersion {
    type Err = ();

    fn from_str(s: &str) -> Result<FileVersion, ()> {
        let mut parts = [0u16; 4];
        let mut n = 0;
        for p in s.split('.') {
            if n == 4 || p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            parts[n] = p.parse().map_err(|_| ())?;
            n += 1;
        }
        if n == 4 {
            Ok(FileVersion(parts))
        } else {
            Err(())
        }
    }
}

impl fmt::Display for FileVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

macro_rules! contract_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// The name the API prints.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant),)+
                }
            }

            fn parse(key: &str, v: &str) -> Result<$name, Malformed> {
                match v {
                    $(stringify!($variant) => Ok($name::$variant),)+
                    _ => Err(Malformed::bad_value(key, v, concat!("a ", stringify!($name)))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

contract_enum!(
    /// `UpdateServerConfigurationState`.
    ConfigState {
        /// Nothing pending: the configuration can be saved.
        Ready,
        /// A save is being processed (up to minutes).
        ProcessingSave,
        /// A synchronisation is running.
        SynchronizationInProgress,
    }
);

contract_enum!(
    /// `SynchronizationStatus`.
    SyncStatus {
        /// No synchronisation runs.
        NotProcessing,
        /// A synchronisation runs.
        Running,
        /// A synchronisation is being stopped.
        Stopping,
    }
);

contract_enum!(
    /// `SynchronizationResult`.
    SyncResult {
        /// Never synchronised.
        NeverRun,
        /// The last synchronisation succeeded.
        Succeeded,
        /// It failed.
        Failed,
        /// It was cancelled.
        Canceled,
        /// Unknown.
        Unknown,
    }
);

contract_enum!(
    /// `PublicationState` of an update.
    PublicationState {
        /// Published.
        Published,
        /// Expired by Microsoft (the Office 2003 SP1 revision of KB 954960 is).
        Expired,
    }
);

contract_enum!(
    /// `UpdateApprovalAction` of an approval.
    ApprovalAction {
        /// Approved for install.
        Install,
        /// Approved for removal.
        Uninstall,
        /// Explicitly not approved.
        NotApproved,
    }
);

/// One approval of the update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The target group's ID, upper-case.
    pub group: String,
    /// The action.
    pub action: ApprovalAction,
}

/// The update's state on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateState {
    /// The server never synchronised the update.
    NotSynced,
    /// The server knows the update.
    Synced {
        /// `IsDeclined`.
        declined: bool,
        /// `PublicationState`.
        publication: PublicationState,
        /// `GetUpdateApprovals()`, in the API's order.
        approvals: Vec<Approval>,
    },
}

impl UpdateState {
    /// Groups that hold more than one approval of the update: the inconsistent state of
    /// KB 954960 (sorted, each once).
    pub fn duplicated_groups(&self) -> Vec<&str> {
        let UpdateState::Synced { approvals, .. } = self else {
            return Vec::new();
        };
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for a in approvals {
            *counts.entry(a.group.as_str()).or_default() += 1;
        }
        counts
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(g, _)| g)
            .collect()
    }

    /// True when some group holds duplicated approvals.
    pub fn has_duplicated_approvals(&self) -> bool {
        !self.duplicated_groups().is_empty()
    }
}

/// A service's state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServiceState {
    /// Running.
    Running,
    /// Stopped.
    Stopped,
    /// No such service on the host.
    NotInstalled,
    /// Another `ServiceControllerStatus` (StartPending, StopPending, Paused, ...).
    Other(String),
}

impl ServiceState {
    fn parse(key: &str, v: &str) -> Result<ServiceState, Malformed> {
        Ok(match v {
            "Running" => ServiceState::Running,
            "Stopped" => ServiceState::Stopped,
            "NotInstalled" => ServiceState::NotInstalled,
            "" => return Err(Malformed::bad_value(key, v, "a service state")),
            other => ServiceState::Other(other.to_string()),
        })
    }
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceState::Running => "Running",
            ServiceState::Stopped => "Stopped",
            ServiceState::NotInstalled => "NotInstalled",
            ServiceState::Other(s) => s,
        })
    }
}

/// One `service` key: `NAME|STATE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    /// The service name.
    pub name: String,
    /// Its state.
    pub state: ServiceState,
}

impl ServiceStatus {
    /// Every `service` key, in order (also readable from the extra keys of a `timeout` error).
    pub fn list(keys: &Keys) -> Result<Vec<ServiceStatus>, Malformed> {
        keys.all("service")
            .map(|v| {
                let (name, state) = v
                    .split_once('|')
                    .filter(|(n, _)| !n.is_empty())
                    .ok_or_else(|| Malformed::bad_value("service", v, "NAME|STATE"))?;
                Ok(ServiceStatus {
                    name: name.to_string(),
                    state: ServiceState::parse("service", state)?,
                })
            })
            .collect()
    }
}

/// Where a downstream server synchronises from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `UpstreamWsusServerName` (empty on a server that syncs from Microsoft Update).
    pub name: String,
    /// `UpstreamWsusServerPortNumber`.
    pub port: u16,
    /// `UpstreamWsusServerUseSsl`.
    pub ssl: bool,
}

/// Everything `facts` reports about a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Registry `Setup\VersionString`, e.g. `3.1.6001.65`.
    pub version_string: String,
    /// The release the version string names, if it is WSUS 3.0.
    pub version: Option<WsusVersion>,
    /// Registry `Setup\InstallType` (1 = server).
    pub install_type: Option<u32>,
    /// Registry `Setup\TargetDir`, the install folder.
    pub target_dir: String,
    /// `IsReplicaServer`.
    pub replica: bool,
    /// `SyncFromMicrosoftUpdate`.
    pub sync_from_mu: bool,
    /// The upstream server.
    pub upstream: Upstream,
    /// `GetUpdateServerConfigurationState()`.
    pub config_state: ConfigState,
    /// `GetSynchronizationStatus()`.
    pub sync_status: SyncStatus,
    /// The result of the last synchronisation.
    pub last_sync_result: SyncResult,
    /// The language Windows was installed in (the proxy for the WSUS install language).
    pub install_language: String,
    /// The current culture (regional format) of the account wsusfix runs as.
    pub current_culture: String,
    /// The processor architecture.
    pub arch: Arch,
    /// The client web service DLL's file version; `None` when the file is absent.
    pub dll_version: Option<FileVersion>,
    /// The update's state.
    pub update: UpdateState,
    /// The requested services' states.
    pub services: BTreeMap<String, ServiceState>,
    /// SoftwareDistribution.log records with the duplicate-key failure.
    pub softdist_records: Vec<String>,
}

impl Facts {
    /// True when the current culture differs from the install language (the hotfix's locale
    /// precondition is not met).
    pub fn locale_mismatch(&self) -> bool {
        !self
            .install_language
            .eq_ignore_ascii_case(&self.current_culture)
    }
}

fn guid_value(key: &str, v: &str) -> Result<String, Malformed> {
    if is_guid(v) {
        Ok(v.to_ascii_uppercase())
    } else {
        Err(Malformed::bad_value(key, v, "a GUID"))
    }
}

fn time_value(key: &str, v: &str) -> Result<Option<DateTime<Utc>>, Malformed> {
    if v.is_empty() {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(v)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| Malformed::bad_value(key, v, "an ISO 8601 time"))
}

impl FromKeys for Facts {
    fn from_keys(k: &Keys) -> Result<Facts, Malformed> {
        let version_string = k.one("version_string")?.to_string();
        let install_type = match k.one("install_type")? {
            "" => None,
            v => Some(
                v.parse()
                    .map_err(|_| Malformed::bad_value("install_type", v, "a number"))?,
            ),
        };
        let arch = match k.one("arch")? {
            "x86" => Arch::X86,
            "x64" => Arch::X64,
            v => return Err(Malformed::bad_value("arch", v, "x86 or x64")),
        };
        let dll_version = match k.one("dll_version")? {
            "" => None,
            v => Some(
                v.parse()
                    .map_err(|_| Malformed::bad_value("dll_version", v, "a file version"))?,
            ),
        };
        let update = if k.bool("update_synced")? {
            let approvals = k
                .all("update_approval")
                .map(|v| {
                    let (g, a) = v.split_once('|').ok_or_else(|| {
                        Malformed::bad_value("update_approval", v, "GROUP|ACTION")
                    })?;
                    Ok(Approval {
                        group: guid_value("update_approval", g)?,
                        action: ApprovalAction::parse("update_approval", a)?,
                    })
                })
                .collect::<Result<_, Malformed>>()?;
            UpdateState::Synced {
                declined: k.bool("update_declined")?,
                publication: PublicationState::parse(
                    "update_publication_state",
                    k.one("update_publication_state")?,
                )?,
                approvals,
            }
        } else {
            UpdateState::NotSynced
        };
        Ok(Facts {
            version: WsusVersion::from_version_string(&version_string),
            version_string,
            install_type,
            target_dir: k.one("target_dir")?.to_string(),
            replica: k.bool("replica")?,
            sync_from_mu: k.bool("sync_from_mu")?,
            upstream: Upstream {
                name: k.one("upstream_name")?.to_string(),
                port: k.number("upstream_port")?,
                ssl: k.bool("upstream_ssl")?,
            },
            config_state: ConfigState::parse("config_state", k.one("config_state")?)?,
            sync_status: SyncStatus::parse("sync_status", k.one("sync_status")?)?,
            last_sync_result: SyncResult::parse("last_sync_result", k.one("last_sync_result")?)?,
            install_language: k.one("install_language")?.to_string(),
            current_culture: k.one("current_culture")?.to_string(),
            arch,
            dll_version,
            update,
            services: ServiceStatus::list(k)?
                .into_iter()
                .map(|s| (s.name, s.state))
                .collect(),
            softdist_records: k.all("softdist_record").map(str::to_string).collect(),
        })
    }
}

/// The result of `set_replica`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetReplicaOutcome {
    /// False when the server already was in the wanted mode (nothing was saved).
    pub changed: bool,
    /// `IsReplicaServer` as read back.
    pub replica: bool,
}

impl FromKeys for SetReplicaOutcome {
    fn from_keys(k: &Keys) -> Result<Self, Malformed> {
        Ok(SetReplicaOutcome {
            changed: k.bool("changed")?,
            replica: k.bool("replica")?,
        })
    }
}

/// The result of `ensure_declined` and `decline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeclineOutcome {
    /// False when the update already was declined.
    pub changed: bool,
    /// `IsDeclined` as read back.
    pub declined: bool,
}

impl FromKeys for DeclineOutcome {
    fn from_keys(k: &Keys) -> Result<Self, Malformed> {
        Ok(DeclineOutcome {
            changed: k.bool("changed")?,
            declined: k.bool("declined")?,
        })
    }
}

/// The result of `approve_unchanged`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApproveOutcome {
    /// The approval was created.
    pub approved: bool,
}

impl FromKeys for ApproveOutcome {
    fn from_keys(k: &Keys) -> Result<Self, Malformed> {
        Ok(ApproveOutcome {
            approved: k.bool("approved")?,
        })
    }
}

/// The result of `install_hotfix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstallOutcome {
    /// The installer's exit code: 0, 3010 or 1641.
    pub exit_code: i32,
    /// 3010 or 1641: Windows must restart to finish.
    pub reboot_required: bool,
}

impl FromKeys for InstallOutcome {
    fn from_keys(k: &Keys) -> Result<Self, Malformed> {
        Ok(InstallOutcome {
            exit_code: k.number("exit_code")?,
            reboot_required: k.bool("reboot_required")?,
        })
    }
}

/// The result of `file_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileVersionOutcome {
    /// The file exists.
    pub exists: bool,
    /// Its Win32 file version; `None` when absent or without a version resource.
    pub version: Option<FileVersion>,
}

impl FromKeys for FileVersionOutcome {
    fn from_keys(k: &Keys) -> Result<Self, Malformed> {
        let version = match k.one("version")? {
            "" => None,
            v => Some(
                v.parse()
                    .map_err(|_| Malformed::bad_value("version", v, "a file version"))?,
            ),
        };
        Ok(FileVersionOutcome {
            exists: k.bool("exists")?,
            version,
        })
    }
}

/// The result of `services`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicesOutcome {
    /// Each requested service, in the requested order.
    pub services: Vec<ServiceStatus>,
}

impl ServicesOutcome {
    /// The state of a service by name (case-insensitive).
    pub fn state(&self, name: &str) -> Option<&ServiceState> {
        self.services
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .map(|s| &s.state)
    }
}

impl FromKeys for ServicesOutcome {
    fn from_keys(k: &Keys) -> Result<Self, Malformed> {
        Ok(ServicesOutcome {
            services: ServiceStatus::list(k)?,
        })
    }
}

/// The result of `sync_now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncOutcome {
    /// `Succeeded` (other results are the `sync-failed` error).
    pub result: SyncResult,
    /// When the synchronisation started.
    pub started: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished: Option<DateTime<Utc>>,
}

impl FromKeys for SyncOutcome {
    fn from_keys(k: &Keys) -> Result<Self, Malformed> {
        Ok(SyncOutcome {
            result: SyncResult::parse("result", k.one("result")?)?,
            started: time_value("started", k.one("started")?)?,
            finished: time_value("finished", k.one("finished")?)?,
        })
    }
}

/// A downstream server that synchronises directly from the server asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildServer {
    /// `FullDomainName`.
    pub fqdn: String,
    /// `IsReplica`.
    pub is_replica: bool,
    /// `Version`, e.g. `3.1.6001.65`.
    pub version: String,
    /// The release `version` names, if it is WSUS 3.0.
    pub wsus_version: Option<WsusVersion>,
    /// `LastSyncTime`; `None` when it never synchronised.
    pub last_sync: Option<DateTime<Utc>>,
    /// `Id`, upper-case.
    pub id: String,
    /// `ParentServerId`, upper-case.
    pub parent_id: String,
}

/// The result of `child_servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildServers(pub Vec<ChildServer>);

impl FromKeys for ChildServers {
    fn from_keys(k: &Keys) -> Result<Self, Malformed> {
        k.all("child")
            .map(|v| {
                let f: Vec<&str> = v.split('|').collect();
                let [fqdn, replica, version, last_sync, id, parent] = f[..] else {
                    return Err(Malformed::bad_value(
                        "child",
                        v,
                        "FQDN|IS_REPLICA|VERSION|LAST_SYNC|ID|PARENT_ID",
                    ));
                };
                Ok(ChildServer {
                    fqdn: fqdn.to_string(),
                    is_replica: parse_bool("child", replica)?,
                    version: version.to_string(),
                    wsus_version: WsusVersion::from_version_string(version),
                    last_sync: time_value("child", last_sync)?,
                    id: guid_value("child", id)?,
                    parent_id: guid_value("child", parent)?,
                })
            })
            .collect::<Result<_, _>>()
            .map(ChildServers)
    }
}

/// The result of `set_culture`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CultureOutcome {
    /// The regional format before.
    pub previous: String,
    /// The regional format now (the one asked for).
    pub current: String,
}

impl CultureOutcome {
    /// True when the culture was switched.
    pub fn changed(&self) -> bool {
        !self.previous.eq_ignore_ascii_case(&self.current)
    }
}

impl FromKeys for CultureOutcome {
    fn from_keys(k: &Keys) -> Result<Self, Malformed> {
        Ok(CultureOutcome {
            previous: k.one("previous")?.to_string(),
            current: k.one("current")?.to_string(),
        })
    }
}

/// The result of `detect_now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectOutcome {
    /// WindowsUpdate.log lines written after the trigger (for `core::logs`).
    pub lines: Vec<String>,
    /// A search ended within the timeout.
    pub completed: bool,
}

impl FromKeys for DetectOutcome {
    fn from_keys(k: &Keys) -> Result<Self, Malformed> {
        Ok(DetectOutcome {
            lines: k.all("line").map(str::to_string).collect(),
            completed: k.bool("completed")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_versions() {
        let v: FileVersion = "3.1.6001.66".parse().unwrap();
        assert_eq!(v.to_string(), "3.1.6001.66");
        assert!(v > "3.1.6001.65".parse().unwrap());
        for bad in [
            "3.1.6001",
            "3.1.6001.66.1",
            "3.1.6001.x",
            "3..6001.66",
            "70000.0.0.0",
        ] {
            assert!(bad.parse::<FileVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn duplicated_approvals_are_found() {
        let a = |g: &str, action| Approval {
            group: g.into(),
            action,
        };
        let state = UpdateState::Synced {
            declined: false,
            publication: PublicationState::Expired,
            approvals: vec![
                a("A", ApprovalAction::Install),
                a("B", ApprovalAction::Install),
                a("A", ApprovalAction::NotApproved),
            ],
        };
        assert_eq!(state.duplicated_groups(), ["A"]);
        assert!(state.has_duplicated_approvals());
        assert!(!UpdateState::NotSynced.has_duplicated_approvals());
    }
}
