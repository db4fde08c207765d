//! Typed events of a WSUS server's `SoftwareDistribution.log`: KB 954960's duplicate-key error
//! in the client web service, and the SOAP faults that carry an ID back to the client.
//!
//! The error is an `Error` record from `ClientImplementation.*` whose message is
//! `System.ArgumentException: Item has already been added. Key in dictionary: '8862'  Key being
//! added: '8862'`, with the stack trace on the lines after it. The same request then logs
//! `SoapUtilities.CreateException ThrowException: actor = ..., ID=<fault id>, ErrorCode=...` on the
//! same thread: the ID the client wrote in its own log.

use super::client::fault_id;
use super::softdist::{Level, SoftDistRecord};

/// A recognised event and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEvent {
    /// 1-based line of the record the event was read from.
    pub line: usize,
    /// Index of that record in the slice given to [`events`].
    pub record: usize,
    pub kind: ServerEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEventKind {
    /// KB 954960's `ArgumentException: Item has already been added` in the client web service.
    DuplicateKey {
        /// The key in `Key in dictionary: '8862'`.
        key: Option<String>,
        /// `ClientImplementation.SyncUpdates`.
        origin: String,
        /// `w3wp.12`.
        source: String,
        /// Lines of the stack trace.
        stack_lines: Vec<usize>,
    },
    /// `SoapUtilities.CreateException ThrowException: actor = ..., ID=..., ErrorCode=...`.
    FaultRaised {
        /// Lower case, no braces.
        id: String,
        error_code: Option<String>,
        actor: Option<String>,
        /// Line of the error this fault reports: the last `Error` record of the same thread
        /// before it that no earlier fault reported. `None` when there is none.
        error_line: Option<usize>,
        /// True when that error is a [`ServerEventKind::DuplicateKey`].
        duplicate_key: bool,
    },
}

/// Reads the events of `records`, in order.
pub fn events(records: &[SoftDistRecord<'_>]) -> Vec<ServerEvent> {
    // The last unreported error of each source (`w3wp.12`): line and whether it is the
    // duplicate-key error.
    let mut pending: Vec<(&str, usize, bool)> = Vec::new();
    let mut events = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let kind = if let Some(event) = duplicate_key(record) {
            Some(event)
        } else if let Some((id, error_code, actor)) = fault_raised(record) {
            let reported = pending
                .iter()
                .position(|(source, _, _)| *source == record.source)
                .map(|at| pending.swap_remove(at));
            Some(ServerEventKind::FaultRaised {
                id,
                error_code,
                actor,
                error_line: reported.map(|(_, line, _)| line),
                duplicate_key: reported.is_some_and(|(_, _, dup)| dup),
            })
        } else {
            None
        };
        let is_error = record.level == Level::Error
            || (record.level == Level::Unknown && record.message.starts_with("System."));
        if is_error {
            let dup = matches!(kind, Some(ServerEventKind::DuplicateKey { .. }));
            pending.retain(|(source, _, _)| *source != record.source);
            pending.push((record.source, record.line, dup));
        }
        if let Some(kind) = kind {
            events.push(ServerEvent {
                line: record.line,
                record: index,
                kind,
            });
        }
    }
    events
}

fn duplicate_key(record: &SoftDistRecord<'_>) -> Option<ServerEventKind> {
    // The origin or the stack trace must show the client web service: a paste that left the
    // message alone does not say which component failed, and the synchronisation raises the
    // same exception.
    let in_client_service = record.class().ends_with("ClientImplementation")
        || record
            .stack_frames()
            .iter()
            .any(|f| f.contains("ClientImplementation."));
    let text = record.exception_text();
    let is_duplicate =
        text.contains("ArgumentException") && text.contains("Item has already been added");
    if !(is_duplicate && in_client_service) {
        return None;
    }
    Some(ServerEventKind::DuplicateKey {
        key: quoted_after(&text, "Key in dictionary:")
            .or_else(|| quoted_after(&text, "Key being added:")),
        origin: record.origin.to_string(),
        source: record.source.to_string(),
        stack_lines: record.continuation.iter().map(|l| l.number).collect(),
    })
}

/// `'8862'` after `label`.
fn quoted_after(message: &str, label: &str) -> Option<String> {
    let rest = message[message.find(label)? + label.len()..].trim_start();
    let rest = rest.strip_prefix('\'')?;
    Some(rest[..rest.find('\'')?].to_string())
}

/// `ID=...`, `ErrorCode=...` and `actor = ...` of a `SoapUtilities.CreateException` record.
fn fault_raised(record: &SoftDistRecord<'_>) -> Option<(String, Option<String>, Option<String>)> {
    if record.method() != "CreateException" && !record.message.contains("ThrowException") {
        return None;
    }
    // A copy may have wrapped the fields onto the next line.
    let text = record.exception_text();
    let field = |name: &str| {
        text.split(',').find_map(|part| {
            let (key, value) = part.split_once('=')?;
            let key = key.trim();
            let key = key.rsplit(' ').next().unwrap_or(key);
            (key == name).then(|| value.trim().to_string())
        })
    };
    let id = field("ID").as_deref().and_then(fault_id)?;
    Some((
        id,
        field("ErrorCode").filter(|c| !c.is_empty()),
        field("actor").filter(|a| !a.is_empty()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::logs::softdist;

    const SERVER: &str = "\
2009-03-27 09:55:29.178 UTC\tError\tw3wp.12\tClientImplementation.SyncUpdates\tSystem.ArgumentException: Item has already been added. Key in dictionary: '8862'  Key being added: '8862'
   at System.Collections.Hashtable.Insert(Object key, Object nvalue, Boolean add)
   at Microsoft.UpdateServices.Internal.ClientImplementation.GetSyncInfo(DataAccess dataAccess)
2009-03-27 09:55:29.180 UTC\tError\tw3wp.9\tDBConnection.LogSqlException\tDBLAYER: timeout
2009-03-27 09:55:29.193 UTC\tWarning\tw3wp.12\tSoapUtilities.CreateException\tThrowException: actor = http://wsus01/ClientWebService/client.asmx, ID=C0A7445F-B989-43FA-AC20-11F8CA65FA8C, ErrorCode=InternalServerError, Message=, Client=?
2009-03-27 09:58:02.001 UTC\tWarning\tw3wp.12\tSoapUtilities.CreateException\tThrowException: actor = http://wsus01/ClientWebService/client.asmx, ID=5d4c3b2a-0000-4000-8000-000000000001, ErrorCode=InvalidCookie, Message=, Client=?
";

    #[test]
    fn reads_the_duplicate_key_error_and_links_its_fault_id() {
        let records = softdist::parse(SERVER);
        let events = events(&records);
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[0],
            ServerEvent {
                line: 1,
                record: 0,
                kind: ServerEventKind::DuplicateKey {
                    key: Some("8862".into()),
                    origin: "ClientImplementation.SyncUpdates".into(),
                    source: "w3wp.12".into(),
                    stack_lines: vec![2, 3],
                }
            }
        );
        assert_eq!(
            events[1].kind,
            ServerEventKind::FaultRaised {
                id: "c0a7445f-b989-43fa-ac20-11f8ca65fa8c".into(),
                error_code: Some("InternalServerError".into()),
                actor: Some("http://wsus01/ClientWebService/client.asmx".into()),
                error_line: Some(1),
                duplicate_key: true,
            }
        );
        let ServerEventKind::FaultRaised {
            error_line,
            duplicate_key,
            ..
        } = &events[2].kind
        else {
            panic!("expected a fault");
        };
        assert_eq!(
            (*error_line, *duplicate_key),
            (None, false),
            "an error is reported by one fault only"
        );
    }

    #[test]
    fn other_argument_exceptions_are_not_the_duplicate_key_error() {
        let text = "\
2009-03-27 09:55:29.178 UTC Error WsusService.21 CatalogSyncAgentCore.ExecuteSyncProtocol System.ArgumentException: Item has already been added. Key in dictionary: 'x'
   at System.Collections.Hashtable.Insert(Object key, Object nvalue, Boolean add)
2009-03-27 09:55:29.178 UTC Error w3wp.12 ClientImplementation.GetCookie System.ArgumentException: Value does not fall within the expected range.
";
        let records = softdist::parse(text);
        assert_eq!(events(&records), vec![]);
    }

    #[test]
    fn a_pasted_message_alone_does_not_say_where_it_failed() {
        let read = |text: &str| {
            let lines = crate::core::logs::paste::lines(text);
            events(&softdist::read_pasted(&lines).records)
        };
        let bare = "System.ArgumentException: Item has already been added. Key in dictionary: '8862' Key being added: '8862'\n\
                    ThrowException: actor = http://wsus/ClientWebService/client.asmx, ID=c0a7445f-b989-43fa-ac20-11f8ca65fa8c, ErrorCode=InternalServerError, Message=, Client=?\n";
        let found = read(bare);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(matches!(found[0].kind, ServerEventKind::FaultRaised { .. }));
        let with_stack = format!(
            "{}   at Microsoft.UpdateServices.Internal.ClientImplementation.GetSyncInfo(x)\n{}",
            bare.lines().next().unwrap(),
            bare.lines().nth(1).unwrap()
        );
        let found = read(&with_stack);
        assert!(matches!(
            found[0].kind,
            ServerEventKind::DuplicateKey { .. }
        ));
        assert!(matches!(
            found[1].kind,
            ServerEventKind::FaultRaised {
                error_line: Some(1),
                duplicate_key: true,
                ..
            }
        ));
        // Another component's exception; a later error's stack through the client web service
        // is that error's, not this one's.
        let elsewhere = "System.ArgumentException: Item has already been added. Key in dictionary: 'x'\n\
                         at Microsoft.UpdateServices.ServerSync.CatalogSyncAgentCore.Run()\n\
                         DBLAYER: SqlException: Timeout expired.\n\
                         at Microsoft.UpdateServices.Internal.ClientImplementation.SyncUpdates(Cookie cookie)\n";
        assert_eq!(read(elsewhere), vec![]);
        // The same in a whole file whose lines a paste partly stripped.
        let mixed = "2009-03-27 06:00:14.220 UTC Error WsusService.13 CatalogSyncAgentCore.ExecuteSyncProtocol System.ArgumentException: Item has already been added. Key in dictionary: 'x'\n\
                     \x20  at Microsoft.UpdateServices.ServerSync.CatalogSyncAgentCore.ExecuteSyncProtocol(Boolean allowRedirect)\n\
                     DBConnection.LogSqlException DBLAYER: SqlException: Timeout expired.\n\
                     \x20  at Microsoft.UpdateServices.Internal.ClientImplementation.SyncUpdates(Cookie cookie)\n";
        assert_eq!(events(&softdist::parse(mixed)), vec![]);
        let ran_on = "System.ArgumentException: Item has already been added. at System.Collections.Hashtable.Insert(Object key) at Microsoft.UpdateServices.ServerSync.CatalogSyncAgentCore.Run() DBLAYER: SqlException: Timeout at Microsoft.UpdateServices.Internal.ClientImplementation.SyncUpdates(Cookie cookie)\n";
        assert_eq!(read(ran_on), vec![]);
        let kb = "System.ArgumentException: Item has already been added. at System.Collections.Hashtable.Insert(Object key) at Microsoft.UpdateServices.Internal.ClientImplementation.GetSyncInfo(DataAccess dataAccess)\n";
        assert_eq!(read(kb).len(), 1);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::core::logs::softdist;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_messages(
            lines in proptest::collection::vec(
                (
                    "(Error|Warning|Info)",
                    "w3wp\\.[0-9]",
                    "(ClientImplementation\\.SyncUpdates|SoapUtilities\\.CreateException|[A-Za-z.]{0,12})",
                    prop_oneof![
                        any::<String>(),
                        "System.ArgumentException: Item has already been added\\.( Key in dictionary: '?[0-9]{0,4}'?)?[ -~]{0,10}",
                        "ThrowException: [ -~]{0,10}(, ?[A-Za-z ]{0,8}=[ -~]{0,12}){0,5}",
                    ],
                ),
                0..30,
            ),
        ) {
            let text: String = lines
                .iter()
                .map(|(level, source, origin, message)| {
                    format!("2009-03-27 09:55:29.178 UTC\t{level}\t{source}\t{origin}\t{message}\n   at X\n")
                })
                .collect();
            let records = softdist::parse(&text);
            let events = events(&records);
            prop_assert!(events.windows(2).all(|w| w[0].line < w[1].line));
        }
    }
}
