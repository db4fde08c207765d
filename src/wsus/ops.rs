//! The typed operations: validate the arguments, render the script, run it through a
//! [`Remote`], read the typed result. One async method per operation of the contract.

use chrono::{DateTime, Utc};

use super::error::OpError;
use super::op::{Connection, Op, OpName, render_via};
use super::outcome::{
    ApproveOutcome, ChildServer, ChildServers, CultureOutcome, DeclineOutcome, DetectOutcome,
    Facts, FileVersionOutcome, FromKeys, InstallOutcome, ServicesOutcome, SetReplicaOutcome,
    SyncOutcome,
};
use super::output::{Keys, parse_output};
use super::remote::Remote;

/// The WSUS operations on one host, over its [`Remote`].
#[derive(Debug)]
pub struct WsusOps<R> {
    remote: R,
    connection: Connection,
}

impl<R: Remote> WsusOps<R> {
    /// Operations over `remote`, reaching WSUS as the local server.
    pub fn new(remote: R) -> Self {
        WsusOps {
            remote,
            connection: Connection::Local,
        }
    }

    /// Reach WSUS as `connection` says (e.g. by name with the inventory's port and SSL).
    pub fn with_connection(mut self, connection: Connection) -> Self {
        self.connection = connection;
        self
    }

    /// The transport.
    pub fn remote_mut(&mut self) -> &mut R {
        &mut self.remote
    }

    /// Gives the transport back.
    pub fn into_remote(self) -> R {
        self.remote
    }

    /// Runs `op` and returns the keys of its success.
    pub async fn run(&mut self, op: &Op) -> Result<Keys, OpError> {
        let name = op.name();
        let script = render_via(op, &self.connection);
        tracing::debug!(op = %name, bytes = script.len(), "running operation script");
        let out = self
            .remote
            .run_ps(&script, op.deadline())
            .await
            .map_err(|e| OpError::Transport {
                op: name,
                transient: R::is_transient(&e),
                stalled: R::is_stall(&e),
                source: Box::new(e),
            })?;
        parse_output(name, &out)
    }

    async fn typed<T: FromKeys>(
        &mut self,
        name: OpName,
        op: Result<Op, super::arg::InvalidArg>,
    ) -> Result<T, OpError> {
        let op = op.map_err(|source| OpError::Invalid { op: name, source })?;
        let keys = self.run(&op).await?;
        T::from_keys(&keys).map_err(|detail| OpError::Malformed { op: name, detail })
    }

    /// `facts`: version, replica mode, upstream, configuration and sync state, cultures,
    /// architecture, DLL version, the state of `update`, `services`, and SoftwareDistribution.log
    /// records with the duplicate-key failure since `since`.
    pub async fn facts<S: AsRef<str>>(
        &mut self,
        update: &str,
        since: Option<DateTime<Utc>>,
        services: &[S],
    ) -> Result<Facts, OpError> {
        self.typed(OpName::Facts, Op::facts(update, since, services))
            .await
    }

    /// `set_replica`: switch replica mode, a no-op when already there.
    pub async fn set_replica(
        &mut self,
        replica: bool,
        timeout: u32,
    ) -> Result<SetReplicaOutcome, OpError> {
        self.typed(OpName::SetReplica, Op::set_replica(replica, timeout))
            .await
    }

    /// `ensure_declined`: decline the update unless it is declined.
    pub async fn ensure_declined(&mut self, update: &str) -> Result<DeclineOutcome, OpError> {
        self.typed(OpName::EnsureDeclined, Op::ensure_declined(update))
            .await
    }

    /// `approve_unchanged`: approve the update for `group` with action NotApproved.
    pub async fn approve_unchanged(
        &mut self,
        update: &str,
        group: &str,
    ) -> Result<ApproveOutcome, OpError> {
        self.typed(
            OpName::ApproveUnchanged,
            Op::approve_unchanged(update, group),
        )
        .await
    }

    /// `decline`: decline the update.
    pub async fn decline(&mut self, update: &str) -> Result<DeclineOutcome, OpError> {
        self.typed(OpName::Decline, Op::decline(update)).await
    }

    /// `install_hotfix`: check the package's SHA-256, run it, wait up to `timeout` seconds.
    pub async fn install_hotfix(
        &mut self,
        kb: u32,
        path: &str,
        sha256: &str,
        args: &str,
        timeout: u32,
    ) -> Result<InstallOutcome, OpError> {
        self.typed(
            OpName::InstallHotfix,
            Op::install_hotfix(kb, path, sha256, args, timeout),
        )
        .await
    }

    /// `file_version`: the Win32 file version of a file under the WSUS install folder.
    pub async fn file_version(&mut self, path: &str) -> Result<FileVersionOutcome, OpError> {
        self.typed(OpName::FileVersion, Op::file_version(path))
            .await
    }

    /// `services`: the states of `names`, after waiting up to `timeout` seconds for
    /// `wait_running` to run.
    pub async fn services<S: AsRef<str>, W: AsRef<str>>(
        &mut self,
        names: &[S],
        wait_running: &[W],
        timeout: u32,
    ) -> Result<ServicesOutcome, OpError> {
        self.typed(OpName::Services, Op::services(names, wait_running, timeout))
            .await
    }

    /// `sync_now`: start a synchronisation and wait up to `timeout` seconds for its result.
    pub async fn sync_now(&mut self, timeout: u32) -> Result<SyncOutcome, OpError> {
        self.typed(OpName::SyncNow, Op::sync_now(timeout)).await
    }

    /// `child_servers`: the downstream servers that synchronise directly from this one.
    pub async fn child_servers(&mut self) -> Result<Vec<ChildServer>, OpError> {
        let ChildServers(children) = self
            .typed(OpName::ChildServers, Ok(Op::ChildServers))
            .await?;
        Ok(children)
    }

    /// `set_culture`: set the regional format of the account wsusfix runs as.
    pub async fn set_culture(&mut self, culture: &str) -> Result<CultureOutcome, OpError> {
        self.typed(OpName::SetCulture, Op::set_culture(culture))
            .await
    }

    /// `detect_now` (on a client): trigger detection, return the log lines it wrote.
    pub async fn detect_now(&mut self, timeout: u32) -> Result<DetectOutcome, OpError> {
        self.typed(OpName::DetectNow, Op::detect_now(timeout)).await
    }
}
