//! The log lines simulated hosts write: a client's WindowsUpdate.log (tab-separated, local time,
//! right-aligned PID, hex TID) and a server's SoftwareDistribution.log (UTC, stack traces on
//! continuation lines), in the formats KB 954960 quotes. Written independently of the parsers in
//! `core::logs`, so that each checks the other.

use chrono::{DateTime, Utc};

/// The WSUS (managed) service ID clients log.
pub const WSUS_SERVICE_ID: &str = "3DA21691-E39D-4DA6-8A4B-B43877BCB1B7";

/// Writes WindowsUpdate.log lines for one process/thread.
#[derive(Debug, Clone)]
pub struct WuWriter {
    /// Process id of svchost hosting wuauserv.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
}

impl WuWriter {
    fn line(&self, t: DateTime<Utc>, component: &str, text: &str) -> String {
        format!(
            "{}\t{}\t{:>4}\t{:x}\t{component}\t{text}",
            t.format("%Y-%m-%d"),
            t.format("%H:%M:%S:%3f"),
            self.pid,
            self.tid
        )
    }

    /// The header of a new log file.
    pub fn initialized(&self, t: DateTime<Utc>, server_url: &str) -> Vec<String> {
        vec![
            self.line(
                t,
                "Misc",
                "===========  Logging initialized (build: 7.2.6001.788, tz: +0000)  ===========",
            ),
            self.line(t, "Misc", "  = Process: C:\\WINDOWS\\System32\\svchost.exe"),
            self.line(t, "Agent", "  * WU client version 7.2.6001.788"),
            self.line(
                t,
                "Agent",
                &format!("  * WSUS server: {}", server_base(server_url)),
            ),
            self.line(t, "Agent", "  * Target group: (Unassigned Computers)"),
        ]
    }

    fn search_start(&self, t: DateTime<Utc>, call_id: &str, server_url: &str) -> Vec<String> {
        vec![
            self.line(t, "AU", "Triggering AU detection through DetectNow API"),
            self.line(t, "AU", "Triggering Online detection (interactive)"),
            self.line(t, "AU", "#############"),
            self.line(t, "AU", "## START ##  AU: Search for updates"),
            self.line(t, "AU", "#########"),
            self.line(t, "AU", &format!("<<## SUBMITTED ## AU: Search for updates [CallId = {{{call_id}}}]")),
            self.line(t, "Agent", "*************"),
            self.line(t, "Agent", "** START **  Agent: Finding updates [CallerId = AutomaticUpdates]"),
            self.line(t, "Agent", "*********"),
            self.line(t, "Agent", "  * Online = Yes; Ignore download priority = No"),
            self.line(t, "Agent", "  * Criteria = \"IsHidden=0 and IsInstalled=0 and DeploymentAction='Installation' and IsAssigned=1 or IsHidden=0 and IsPresent=1 and DeploymentAction='Uninstallation' and IsAssigned=1\""),
            self.line(t, "Agent", &format!("  * ServiceID = {{{WSUS_SERVICE_ID}}} Managed")),
            self.line(t, "PT", "+++++++++++  PT: Synchronizing server updates  +++++++++++"),
            self.line(t, "PT", &format!("  + ServiceId = {{{WSUS_SERVICE_ID}}}, Server URL = {server_url}")),
        ]
    }

    /// A detection that succeeds.
    pub fn detection_succeeded(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        call_id: &str,
        server_url: &str,
        updates: u32,
        categories: u32,
    ) -> Vec<String> {
        let mut v = self.search_start(start, call_id, server_url);
        v.extend([
            self.line(end, "PT", "+++++++++++  PT: Synchronizing extended update info  +++++++++++"),
            self.line(end, "PT", &format!("  + ServiceId = {{{WSUS_SERVICE_ID}}}, Server URL = {server_url}")),
            self.line(end, "Agent", &format!("  * Found {updates} updates and {categories} categories in search; evaluated appl. rules of 1206 out of 2046 deployed entities")),
            self.line(end, "Agent", "*********"),
            self.line(end, "Agent", "**  END  **  Agent: Finding updates [CallerId = AutomaticUpdates]"),
            self.line(end, "Agent", "*************"),
            self.line(end, "AU", &format!(">>##  RESUMED  ## AU: Search for updates [CallId = {{{call_id}}}]")),
            self.line(end, "AU", &format!("  # {updates} updates detected")),
            self.line(end, "AU", "#########"),
            self.line(end, "AU", &format!("##  END  ##  AU: Search for updates [CallId = {{{call_id}}}]")),
        ]);
        v
    }

    /// A detection that fails with KB 954960's SyncUpdates fault.
    pub fn detection_failed_kb954960(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        call_id: &str,
        server_url: &str,
        fault_id: &str,
    ) -> Vec<String> {
        let mut v = self.search_start(start, call_id, server_url);
        v.extend([
            self.line(end, "PT", "WARNING: SyncUpdates failure, error = 0x8024400E, soap client error = 7, soap error code = 400, HTTP status code = 200"),
            self.line(end, "PT", "WARNING: SOAP Fault: 0x000190"),
            self.line(end, "PT", "WARNING: faultstring:Fault occurred"),
            self.line(end, "PT", "WARNING: ErrorCode:InternalServerError(5)"),
            self.line(end, "PT", "WARNING: Message:(null)"),
            self.line(end, "PT", "WARNING: Method:\"http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/SyncUpdates\""),
            self.line(end, "PT", &format!("WARNING: ID:{fault_id}")),
            self.line(end, "PT", "WARNING: PTError: 0x8024400e"),
            self.line(end, "PT", "WARNING: SyncUpdates_WithRecovery failed.: 0x8024400e"),
            self.line(end, "PT", "WARNING: Sync of Updates: 0x8024400e"),
            self.line(end, "PT", "WARNING: SyncServerUpdatesInternal failed: 0x8024400e"),
            self.line(end, "Agent", "  * WARNING: Failed to synchronize, error = 0x8024400E"),
            self.line(end, "Agent", "  * WARNING: Exit code = 0x8024400E"),
            self.line(end, "Agent", "*********"),
            self.line(end, "Agent", "**  END  **  Agent: Finding updates [CallerId = AutomaticUpdates]"),
            self.line(end, "Agent", "*************"),
            self.line(end, "Agent", "WARNING: WU client failed Searching for update with error 0x8024400e"),
            self.line(end, "AU", &format!(">>##  RESUMED  ## AU: Search for updates [CallId = {{{call_id}}}]")),
            self.line(end, "AU", "  # WARNING: Search callback failed, result = 0x8024400E"),
            self.line(end, "AU", "  # WARNING: Failed to find updates with error code 8024400E"),
        ]);
        v
    }
}

fn server_base(url: &str) -> &str {
    url.split("/ClientWebService").next().unwrap_or(url)
}

/// The client web service URL of a WSUS site.
pub fn client_service_url(server: &str, port: u16, ssl: bool) -> String {
    let scheme = if ssl { "https" } else { "http" };
    let default = if ssl { 443 } else { 80 };
    if port == default {
        format!("{scheme}://{server}/ClientWebService/client.asmx")
    } else {
        format!("{scheme}://{server}:{port}/ClientWebService/client.asmx")
    }
}

fn sd_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
}

/// The SoftwareDistribution.log record of the duplicate-key failure and the SOAP fault that
/// carries the client's fault ID (one string per line; stack lines indented).
pub fn softdist_duplicate_key(
    t: DateTime<Utc>,
    thread: u32,
    key: u32,
    server_url: &str,
    fault_id: &str,
) -> Vec<String> {
    vec![
        format!(
            "{}\tError\tw3wp.{thread}\tClientImplementation.SyncUpdates\tSystem.ArgumentException: Item has already been added. Key in dictionary: '{key}'  Key being added: '{key}'",
            sd_time(t)
        ),
        "   at System.Collections.Hashtable.Insert(Object key, Object nvalue, Boolean add)".into(),
        "   at System.Collections.Hashtable.Add(Object key, Object value)".into(),
        "   at Microsoft.UpdateServices.Internal.ClientImplementation.GetSyncInfo(DataAccess dataAccess, Hashtable stateTable, Hashtable deploymentTable, Boolean haveGroupsChanged, Boolean doChunking)".into(),
        "   at Microsoft.UpdateServices.Internal.ClientImplementation.SoftwareSync(DataAccess dataAccess, UnencryptedCookieData cookieData, Int32[] installedNonLeafUpdateIds, Int32[] leafUpdateIds, Boolean haveGroupsChanged, Boolean expressQuery)".into(),
        "   at Microsoft.UpdateServices.Internal.ClientImplementation.SyncUpdates(Cookie cookie, SyncUpdateParameters parameters)".into(),
        "   at Microsoft.UpdateServices.Internal.Client.SyncUpdates(Cookie cookie, SyncUpdateParameters parameters)".into(),
        format!(
            "{}\tWarning\tw3wp.{thread}\tSoapUtilities.CreateException\tThrowException: actor = {server_url}, ID={fault_id}, ErrorCode=InternalServerError, Message=, Client=?",
            sd_time(t)
        ),
    ]
}

/// An ordinary record (synchronisation, configuration changes) so logs are not all errors.
pub fn softdist_info(t: DateTime<Utc>, process: &str, origin: &str, message: &str) -> String {
    format!("{}\tInfo\t{process}\t{origin}\t{message}", sd_time(t))
}

/// A "Change" record (configuration changes, approvals).
pub fn softdist_change(t: DateTime<Utc>, process: &str, origin: &str, message: &str) -> String {
    format!("{}\tChange\t{process}\t{origin}\t{message}", sd_time(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::logs::detection::{DetectionOutcome, summarize_detection};

    fn t() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T09:31:02.123Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_parsers_read_a_failed_detection_as_this_bug() {
        let w = WuWriter {
            pid: 788,
            tid: 0xee4,
        };
        let url = client_service_url("wsus-hq", 8530, false);
        let lines = w.detection_failed_kb954960(
            t(),
            t(),
            "A1B2C3D4-0000-0000-0000-000000000001",
            &url,
            "c0a7445f-b989-43fa-ac20-11f8ca65fa8c",
        );
        let text = lines.join("\r\n");
        let s = summarize_detection(&text);
        assert_eq!(
            s.outcome,
            DetectionOutcome::FailedThisBug {
                fault_id: Some("c0a7445f-b989-43fa-ac20-11f8ca65fa8c".into())
            },
            "{text}"
        );
        assert!(lines[0].starts_with("2026-11-24\t09:31:02:123\t 788\tee4\tAU\t"));
    }

    #[test]
    fn the_parsers_read_a_successful_detection() {
        let w = WuWriter {
            pid: 1044,
            tid: 0xafc,
        };
        let url = client_service_url("wsus-eu", 80, false);
        assert_eq!(url, "http://wsus-eu/ClientWebService/client.asmx");
        let lines = w.detection_succeeded(
            t(),
            t(),
            "A1B2C3D4-0000-0000-0000-000000000002",
            &url,
            3,
            71,
        );
        let s = summarize_detection(&lines.join("\r\n"));
        assert_eq!(
            s.outcome,
            DetectionOutcome::Succeeded {
                updates: 3,
                categories: 71
            }
        );
    }

    #[test]
    fn the_diagnosis_links_server_and_client_by_fault_id() {
        use crate::core::diagnose::{LogInput, diagnose};
        use crate::core::logs::kind::LogKind;
        let w = WuWriter {
            pid: 788,
            tid: 0xee4,
        };
        let url = client_service_url("wsus-hq", 8530, false);
        let id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        let client = w
            .detection_failed_kb954960(t(), t(), "A1B2C3D4-0000-0000-0000-000000000003", &url, id)
            .join("\r\n");
        let server = softdist_duplicate_key(t(), 12, 8862, &url, id).join("\r\n");
        let d = diagnose(&[
            LogInput {
                path: "WindowsUpdate.log",
                kind: LogKind::WindowsUpdate,
                text: &client,
            },
            LogInput {
                path: "SoftwareDistribution.log",
                kind: LogKind::SoftwareDistribution,
                text: &server,
            },
        ]);
        assert!(d.symptom);
        assert_eq!(d.matches.len(), 1, "{d:#?}");
    }
}
