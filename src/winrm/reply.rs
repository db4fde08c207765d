//! Reading WinRS replies: ShellId, CommandId, Receive output chunks and the exit code, SOAP
//! faults, and the `a:RelatesTo` check. Pure functions over [`Document`], golden-tested with
//! replies shaped like the ones Windows sends.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::error::Fault;
use super::soap::{NS_ADDRESSING, NS_SHELL, NS_SOAP, NS_WSMAN, NS_WSMAN_FAULT};
use super::xml::{Document, Element};

const STATE_DONE_SUFFIX: &str = "/CommandState/Done";

fn header(doc: &Document) -> Option<&Element> {
    doc.root().child(NS_SOAP, "Header")
}

fn body(doc: &Document) -> Result<&Element, String> {
    let root = doc.root();
    if !root.is(NS_SOAP, "Envelope") {
        return Err(format!(
            "expected a SOAP 1.2 Envelope, got <{}>",
            root.name.local
        ));
    }
    root.child(NS_SOAP, "Body")
        .ok_or_else(|| "the envelope has no Body".to_string())
}

/// Checks that the reply's `a:RelatesTo` names the request's MessageID.
pub(crate) fn check_relates_to(doc: &Document, message_id: &str) -> Result<(), String> {
    let relates = header(doc)
        .and_then(|h| h.child(NS_ADDRESSING, "RelatesTo"))
        .map(|e| e.text.trim());
    match relates {
        Some(r) if r.eq_ignore_ascii_case(message_id) => Ok(()),
        Some(r) => Err(format!(
            "reply relates to {r}, not to the request {message_id}"
        )),
        None => Err("reply has no a:RelatesTo header".into()),
    }
}

/// The SOAP fault in the body, if any.
pub(crate) fn fault(doc: &Document) -> Option<Fault> {
    let fault = body(doc).ok()?.child(NS_SOAP, "Fault")?;
    let code = fault
        .path(&[(NS_SOAP, "Code"), (NS_SOAP, "Value")])
        .map(|e| e.text.trim().to_string())
        .unwrap_or_default();
    let subcode = fault
        .path(&[(NS_SOAP, "Code"), (NS_SOAP, "Subcode"), (NS_SOAP, "Value")])
        .map(|e| e.text.trim().to_string());
    let reason = fault
        .path(&[(NS_SOAP, "Reason"), (NS_SOAP, "Text")])
        .map(|e| e.deep_text())
        .unwrap_or_default();
    let detail = fault.find(NS_WSMAN_FAULT, "WSManFault");
    let wsman_code = detail
        .and_then(|d| d.attr("Code"))
        .and_then(|c| c.trim().parse::<u32>().ok());
    let machine = detail.and_then(|d| d.attr("Machine")).map(str::to_string);
    let message = detail
        .and_then(|d| d.child(NS_WSMAN_FAULT, "Message"))
        .map(|m| m.deep_text().trim().to_string())
        .filter(|m| !m.is_empty());
    Some(Fault {
        code,
        subcode,
        reason,
        wsman_code,
        machine,
        message,
    })
}

/// The ShellId of a Create reply (`w:Selector[@Name="ShellId"]`, or `rsp:ShellId` as newer
/// servers also send).
pub(crate) fn shell_id(doc: &Document) -> Result<String, String> {
    let body = body(doc)?;
    let from_selector = body
        .descendants()
        .into_iter()
        .find(|e| e.is(NS_WSMAN, "Selector") && e.attr("Name") == Some("ShellId"))
        .map(|e| e.text.trim().to_string());
    let from_shell = || {
        body.find(NS_SHELL, "ShellId")
            .map(|e| e.text.trim().to_string())
    };
    from_selector
        .or_else(from_shell)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| "Create reply carries no ShellId".into())
}

/// The CommandId of a Command reply.
pub(crate) fn command_id(doc: &Document) -> Result<String, String> {
    body(doc)?
        .find(NS_SHELL, "CommandId")
        .map(|e| e.text.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| "Command reply carries no CommandId".into())
}

/// Output of one Receive reply.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ReceiveChunk {
    /// Raw stdout bytes of this reply (join across replies before decoding).
    pub stdout: Vec<u8>,
    /// Raw stderr bytes of this reply.
    pub stderr: Vec<u8>,
    /// Exit code, once the command state is Done.
    pub done: Option<i32>,
}

/// Reads the streams and the command state of a Receive reply for `command_id`.
pub(crate) fn receive(doc: &Document, command_id: &str) -> Result<ReceiveChunk, String> {
    let body = body(doc)?;
    let response = body
        .child(NS_SHELL, "ReceiveResponse")
        .ok_or("Receive reply has no rsp:ReceiveResponse")?;
    let mut chunk = ReceiveChunk::default();
    for stream in response
        .children
        .iter()
        .filter(|c| c.is(NS_SHELL, "Stream"))
    {
        if let Some(id) = stream.attr("CommandId")
            && !id.eq_ignore_ascii_case(command_id)
        {
            return Err(format!("stream for command {id}, expected {command_id}"));
        }
        let text: String = stream
            .text
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        if text.is_empty() {
            continue;
        }
        let bytes = BASE64
            .decode(text.as_bytes())
            .map_err(|e| format!("stream content is not base64: {e}"))?;
        match stream.attr("Name") {
            Some("stdout") => chunk.stdout.extend_from_slice(&bytes),
            Some("stderr") => chunk.stderr.extend_from_slice(&bytes),
            _ => {}
        }
    }
    if let Some(state) = response.child(NS_SHELL, "CommandState")
        && state
            .attr("State")
            .is_some_and(|s| s.ends_with(STATE_DONE_SUFFIX))
    {
        // pywinrm reads a missing exit code as -1; so do we.
        let code = match state.child(NS_SHELL, "ExitCode") {
            Some(e) => parse_exit_code(e.text.trim())?,
            None => -1,
        };
        chunk.done = Some(code);
    }
    Ok(chunk)
}

/// Exit codes are DWORDs on the wire (e.g. 3221225477 for an access violation); keep the bits.
fn parse_exit_code(text: &str) -> Result<i32, String> {
    if let Ok(v) = text.parse::<i32>() {
        return Ok(v);
    }
    text.parse::<u32>()
        .map(|v| v as i32)
        .map_err(|_| format!("exit code {text:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Document {
        let path = format!("{}/tests/fixtures/winrm/{name}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Document::parse(&bytes).unwrap()
    }

    const CMD: &str = "A2B7D1C0-55B9-4B6F-9C2D-5A4C4F8E9B01";

    #[test]
    fn create_reply() {
        let doc = fixture("create_response.xml");
        assert_eq!(
            shell_id(&doc).unwrap(),
            "0A6B2C7E-9A31-4F5D-8E21-3C1B5D2A7F90"
        );
        check_relates_to(&doc, "uuid:6B4D4A1E-2C2B-4F7A-9D0E-1A2B3C4D5E6F").unwrap();
        let err = check_relates_to(&doc, "uuid:00000000-0000-0000-0000-000000000000").unwrap_err();
        assert!(err.contains("relates to"), "{err}");
        assert!(fault(&doc).is_none());
    }

    #[test]
    fn create_reply_with_only_rsp_shell_id() {
        let doc = Document::parse(
            format!(
                r#"<s:Envelope xmlns:s="{NS_SOAP}"><s:Body><Shell xmlns="{NS_SHELL}"><ShellId>ABC</ShellId></Shell></s:Body></s:Envelope>"#
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(shell_id(&doc).unwrap(), "ABC");
        assert!(check_relates_to(&doc, "uuid:x").is_err());
    }

    #[test]
    fn command_reply() {
        let doc = fixture("command_response.xml");
        assert_eq!(command_id(&doc).unwrap(), CMD);
    }

    #[test]
    fn receive_chunks_join_before_decoding() {
        // "naïve ✓" in UTF-8, split so that both multi-byte characters straddle replies.
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut done = None;
        for name in [
            "receive_running_1.xml",
            "receive_running_2.xml",
            "receive_done.xml",
        ] {
            let chunk = receive(&fixture(name), CMD).unwrap();
            assert!(done.is_none(), "output after Done");
            stdout.extend(chunk.stdout);
            stderr.extend(chunk.stderr);
            done = chunk.done;
        }
        assert_eq!(done, Some(3));
        assert_eq!(
            crate::winrm::codepage::decode(65001, &stdout),
            "na\u{ef}ve \u{2713}\r\n"
        );
        assert_eq!(String::from_utf8(stderr).unwrap(), "warn\r\n");
    }

    #[test]
    fn receive_for_another_command_is_refused() {
        let err = receive(&fixture("receive_done.xml"), "OTHER").unwrap_err();
        assert!(err.contains("expected OTHER"), "{err}");
    }

    #[test]
    fn receive_exit_codes() {
        assert_eq!(parse_exit_code("0"), Ok(0));
        assert_eq!(parse_exit_code("-1"), Ok(-1));
        assert_eq!(parse_exit_code("3221225477"), Ok(-1073741819));
        assert!(parse_exit_code("x").is_err());
    }

    #[test]
    fn timed_out_fault() {
        let doc = fixture("fault_timed_out.xml");
        let f = fault(&doc).unwrap();
        assert!(f.is_operation_timeout());
        insta::assert_debug_snapshot!(f);
    }

    #[test]
    fn shell_not_found_fault() {
        let doc = fixture("fault_shell_not_found.xml");
        let f = fault(&doc).unwrap();
        assert!(f.shell_needs_reset());
        assert!(!f.is_operation_timeout());
        insta::assert_snapshot!(f.to_string());
    }

    #[test]
    fn access_denied_fault_with_provider_detail() {
        let f = fault(&fixture("fault_access_denied.xml")).unwrap();
        assert_eq!(f.wsman_code, Some(5));
        assert_eq!(f.subcode_local(), Some("AccessDenied"));
        insta::assert_snapshot!(f.to_string());
    }

    #[test]
    fn not_an_envelope() {
        let doc = Document::parse(b"<html><body>Bad Request</body></html>").unwrap();
        assert!(shell_id(&doc).unwrap_err().contains("SOAP 1.2 Envelope"));
        assert!(fault(&doc).is_none());
    }
}
