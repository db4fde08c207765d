//! WS-Management SOAP as the WinRS service speaks it: reading requests (by namespace URI and
//! local name, never by prefix) and writing replies and faults with the prefixes, element order
//! and texts of recorded Windows replies. Pure; no I/O.

use std::fmt::Write as _;
use std::time::Duration;

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

pub(crate) const NS_SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
pub(crate) const NS_ADDRESSING: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
pub(crate) const NS_WSMAN: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";
pub(crate) const NS_SHELL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell";

pub(crate) const RESOURCE_CMD: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd";
pub(crate) const ACTION_CREATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create";
pub(crate) const ACTION_DELETE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete";
pub(crate) const ACTION_COMMAND: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command";
pub(crate) const ACTION_SEND: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send";
pub(crate) const ACTION_RECEIVE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive";
pub(crate) const ACTION_SIGNAL: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal";
pub(crate) const SIGNAL_TERMINATE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate";
pub(crate) const SIGNAL_CTRL_C: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/ctrl_c";
const STATE_RUNNING: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running";
const STATE_DONE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done";
const ACTION_FAULT: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault";
const ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";

/// An XML element with its namespace URI resolved; attributes by local name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Element {
    pub ns: String,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request body is not a usable WS-Management envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ParseError(pub String);

fn xml_error(e: impl std::fmt::Display) -> ParseError {
    ParseError(format!("invalid XML: {e}"))
}

/// Parses a whole document into an element tree.
pub(crate) fn parse_document(xml: &[u8]) -> Result<Element, ParseError> {
    let text = std::str::from_utf8(xml).map_err(|_| ParseError("body is not UTF-8".into()))?;
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(xml_error)?;
        let ns = match ns {
            ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.as_ref()).into_owned(),
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(p) => {
                return Err(ParseError(format!(
                    "unknown namespace prefix {}",
                    String::from_utf8_lossy(&p)
                )));
            }
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let mut el = Element {
                    ns,
                    name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    ..Element::default()
                };
                for attr in e.attributes() {
                    let attr = attr.map_err(xml_error)?;
                    let key = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
                    let value = attr
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(xml_error)?
                        .into_owned();
                    el.attrs.push((key, value));
                }
                if matches!(event, Event::Empty(_)) {
                    attach(&mut stack, &mut root, el)?;
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| ParseError("unbalanced end tag".into()))?;
                attach(&mut stack, &mut root, el)?;
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.decode().map_err(xml_error)?);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.decode().map_err(xml_error)?);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(xml_error)? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(xml_error)?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| ParseError(format!("unknown entity &{name};")))?
                            .to_string()
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(ParseError("unclosed element".into()));
    }
    root.ok_or_else(|| ParseError("empty document".into()))
}

fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    el: Element,
) -> Result<(), ParseError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None if root.is_none() => *root = Some(el),
        None => return Err(ParseError("more than one root element".into())),
    }
    Ok(())
}

/// The header fields of a request that the service looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Header {
    pub action: String,
    pub message_id: String,
    pub resource_uri: String,
    pub shell_id: Option<String>,
    pub options: Vec<(String, String)>,
    pub operation_timeout: Option<Duration>,
    pub max_envelope_size: Option<usize>,
}

/// A request's operation, from its action and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Operation {
    Create,
    Command {
        command: String,
        arguments: Vec<String>,
    },
    Send {
        streams: Vec<SendStream>,
    },
    Receive {
        command_id: Option<String>,
    },
    Signal {
        command_id: Option<String>,
        code: String,
    },
    Delete,
    Unsupported,
}

/// One `rsp:Stream` of a Send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SendStream {
    pub name: String,
    pub command_id: String,
    pub data: Vec<u8>,
    pub end: bool,
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub header: Header,
    pub operation: Operation,
}

/// Parses `PT20S`, `PT60.000S`, `PT1M30S`, `P0DT0H0M5S` (xs:duration without years or months).
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let rest = text.trim().strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut secs = 0f64;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
            } else {
                let (_, factor) = units.iter().find(|(u, _)| *u == c)?;
                secs += number.parse::<f64>().ok()? * factor;
                number.clear();
            }
        }
        number.is_empty().then_some(())
    };
    take(date, &[('D', 86_400.0)])?;
    take(time, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)])?;
    Duration::try_from_secs_f64(secs).ok()
}

fn is_true(text: &str) -> bool {
    matches!(text.trim().to_ascii_lowercase().as_str(), "true" | "1")
}

/// Reads a WS-Management request envelope.
pub(crate) fn parse_request(xml: &[u8]) -> Result<Request, ParseError> {
    let envelope = parse_document(xml)?;
    if !envelope.is(NS_SOAP, "Envelope") {
        return Err(ParseError("root is not a SOAP 1.2 Envelope".into()));
    }
    let header_el = envelope
        .child(NS_SOAP, "Header")
        .ok_or_else(|| ParseError("no SOAP Header".into()))?;
    let body = envelope
        .child(NS_SOAP, "Body")
        .ok_or_else(|| ParseError("no SOAP Body".into()))?;

    let text_of =
        |ns: &str, name: &str| header_el.child(ns, name).map(|e| e.text.trim().to_string());
    let mut header = Header {
        action: text_of(NS_ADDRESSING, "Action").unwrap_or_default(),
        message_id: text_of(NS_ADDRESSING, "MessageID").unwrap_or_default(),
        resource_uri: text_of(NS_WSMAN, "ResourceURI").unwrap_or_default(),
        operation_timeout: text_of(NS_WSMAN, "OperationTimeout").and_then(|t| parse_duration(&t)),
        max_envelope_size: text_of(NS_WSMAN, "MaxEnvelopeSize").and_then(|t| t.parse().ok()),
        ..Header::default()
    };
    if let Some(set) = header_el.child(NS_WSMAN, "SelectorSet") {
        header.shell_id = set
            .children_named(NS_WSMAN, "Selector")
            .find(|s| s.attr("Name") == Some("ShellId"))
            .map(|s| s.text.trim().to_string());
    }
    if let Some(set) = header_el.child(NS_WSMAN, "OptionSet") {
        header.options = set
            .children_named(NS_WSMAN, "Option")
            .map(|o| {
                (
                    o.attr("Name").unwrap_or_default().to_string(),
                    o.text.trim().to_string(),
                )
            })
            .collect();
    }
    if header.action.is_empty() {
        return Err(ParseError("no Action header".into()));
    }

    let operation = match header.action.as_str() {
        ACTION_CREATE => Operation::Create,
        ACTION_DELETE => Operation::Delete,
        ACTION_COMMAND => {
            let line = body
                .child(NS_SHELL, "CommandLine")
                .ok_or_else(|| ParseError("Command without rsp:CommandLine".into()))?;
            Operation::Command {
                command: line
                    .child(NS_SHELL, "Command")
                    .map(|c| c.text.trim().to_string())
                    .unwrap_or_default(),
                arguments: line
                    .children_named(NS_SHELL, "Arguments")
                    .map(|a| a.text.clone())
                    .collect(),
            }
        }
        ACTION_SEND => {
            let send = body
                .child(NS_SHELL, "Send")
                .ok_or_else(|| ParseError("Send without rsp:Send".into()))?;
            let mut streams = Vec::new();
            for s in send.children_named(NS_SHELL, "Stream") {
                let compact: String = s.text.split_whitespace().collect();
                let data =
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, compact)
                        .map_err(|_| ParseError("stdin stream is not base64".into()))?;
                streams.push(SendStream {
                    name: s.attr("Name").unwrap_or_default().to_string(),
                    command_id: s.attr("CommandId").unwrap_or_default().to_string(),
                    data,
                    end: s.attr("End").is_some_and(is_true),
                });
            }
            Operation::Send { streams }
        }
        ACTION_RECEIVE => {
            let receive = body
                .child(NS_SHELL, "Receive")
                .ok_or_else(|| ParseError("Receive without rsp:Receive".into()))?;
            Operation::Receive {
                command_id: receive
                    .child(NS_SHELL, "DesiredStream")
                    .and_then(|d| d.attr("CommandId"))
                    .map(str::to_string),
            }
        }
        ACTION_SIGNAL => {
            let signal = body
                .child(NS_SHELL, "Signal")
                .ok_or_else(|| ParseError("Signal without rsp:Signal".into()))?;
            Operation::Signal {
                command_id: signal.attr("CommandId").map(str::to_string),
                code: signal
                    .child(NS_SHELL, "Code")
                    .map(|c| c.text.trim().to_string())
                    .unwrap_or_default(),
            }
        }
        _ => Operation::Unsupported,
    };
    Ok(Request { header, operation })
}

/// Escapes text for element content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// A fresh `uuid:...` message id in Windows' upper-case form.
pub(crate) fn new_message_id() -> String {
    format!("uuid:{}", uuid::Uuid::new_v4().to_string().to_uppercase())
}

/// Namespace declarations of Windows replies.
const REPLY_NAMESPACES: &str = concat!(
    r#"xmlns:s="http://www.w3.org/2003/05/soap-envelope" "#,
    r#"xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" "#,
    r#"xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" "#,
    r#"xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" "#,
    r#"xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" "#,
    r#"xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd""#
);

fn envelope(action: &str, relates_to: &str, message_id: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 900);
    let _ = write!(
        out,
        r#"<s:Envelope xml:lang="en-US" {REPLY_NAMESPACES}><s:Header><a:Action>{action}</a:Action><a:MessageID>{message_id}</a:MessageID><a:To>{ANONYMOUS}</a:To><a:RelatesTo>{}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"#,
        escape(relates_to),
    );
    out
}

/// What the Create reply tells about the new shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShellInfo<'a> {
    pub shell_id: &'a str,
    pub address: &'a str,
    pub owner: &'a str,
    pub client_ip: &'a str,
    pub idle_timeout: Duration,
}

/// The CreateResponse: the ShellId both in `x:ResourceCreated` and in `rsp:Shell`.
pub(crate) fn create_response(relates_to: &str, message_id: &str, shell: &ShellInfo<'_>) -> String {
    let body = format!(
        concat!(
            r#"<x:ResourceCreated><a:Address>{address}</a:Address><a:ReferenceParameters><w:ResourceURI>{RESOURCE_CMD}</w:ResourceURI>"#,
            r#"<w:SelectorSet><w:Selector Name="ShellId">{id}</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>"#,
            r#"<rsp:Shell xmlns:rsp="{NS_SHELL}"><rsp:ShellId>{id}</rsp:ShellId><rsp:ResourceUri>{RESOURCE_CMD}</rsp:ResourceUri>"#,
            r#"<rsp:Owner>{owner}</rsp:Owner><rsp:ClientIP>{ip}</rsp:ClientIP><rsp:IdleTimeOut>PT{idle}.000S</rsp:IdleTimeOut>"#,
            r#"<rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams>"#,
            r#"<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>"#
        ),
        address = escape(shell.address),
        RESOURCE_CMD = RESOURCE_CMD,
        id = escape(shell.shell_id),
        NS_SHELL = NS_SHELL,
        owner = escape(shell.owner),
        ip = escape(shell.client_ip),
        idle = shell.idle_timeout.as_secs(),
    );
    envelope(
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse",
        relates_to,
        message_id,
        &body,
    )
}

/// The CommandResponse with the new CommandId.
pub(crate) fn command_response(relates_to: &str, message_id: &str, command_id: &str) -> String {
    envelope(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandResponse",
        relates_to,
        message_id,
        &format!(
            "<rsp:CommandResponse><rsp:CommandId>{}</rsp:CommandId></rsp:CommandResponse>",
            escape(command_id)
        ),
    )
}

/// The SendResponse.
pub(crate) fn send_response(relates_to: &str, message_id: &str) -> String {
    envelope(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SendResponse",
        relates_to,
        message_id,
        "<rsp:SendResponse/>",
    )
}

/// The SignalResponse.
pub(crate) fn signal_response(relates_to: &str, message_id: &str) -> String {
    envelope(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SignalResponse",
        relates_to,
        message_id,
        "<rsp:SignalResponse/>",
    )
}

/// The DeleteResponse (an empty body).
pub(crate) fn delete_response(relates_to: &str, message_id: &str) -> String {
    envelope(
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse",
        relates_to,
        message_id,
        "",
    )
}

/// A Receive reply's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReceiveChunk<'a> {
    pub command_id: &'a str,
    /// `(stream name, bytes)` in order; each becomes one `rsp:Stream`.
    pub streams: Vec<(&'static str, &'a [u8])>,
    /// `Some(exit code)` once the command is done: the `End="true"` markers and the Done state
    /// are written.
    pub exit_code: Option<i32>,
}

/// The ReceiveResponse: base64 `rsp:Stream` chunks and the command state.
pub(crate) fn receive_response(
    relates_to: &str,
    message_id: &str,
    chunk: &ReceiveChunk<'_>,
) -> String {
    use base64::Engine;
    let id = escape(chunk.command_id);
    let mut body = String::from("<rsp:ReceiveResponse>");
    for (name, bytes) in &chunk.streams {
        let _ = write!(
            body,
            r#"<rsp:Stream Name="{name}" CommandId="{id}">{}</rsp:Stream>"#,
            base64::engine::general_purpose::STANDARD.encode(bytes)
        );
    }
    match chunk.exit_code {
        Some(code) => {
            for name in ["stdout", "stderr"] {
                let _ = write!(
                    body,
                    r#"<rsp:Stream Name="{name}" CommandId="{id}" End="true"></rsp:Stream>"#
                );
            }
            let _ = write!(
                body,
                r#"<rsp:CommandState CommandId="{id}" State="{STATE_DONE}"><rsp:ExitCode>{code}</rsp:ExitCode></rsp:CommandState>"#
            );
        }
        None => {
            let _ = write!(
                body,
                r#"<rsp:CommandState CommandId="{id}" State="{STATE_RUNNING}"></rsp:CommandState>"#
            );
        }
    }
    body.push_str("</rsp:ReceiveResponse>");
    envelope(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse",
        relates_to,
        message_id,
        &body,
    )
}

/// A WS-Management fault as Windows shapes it (HTTP 500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    /// `s:Sender` or `s:Receiver`.
    pub code: &'static str,
    /// E.g. `w:TimedOut`, `w:InvalidSelectors`, `w:QuotaLimit`.
    pub subcode: &'static str,
    pub reason: String,
    /// `w:FaultDetail` URI, when Windows sends one.
    pub fault_detail: Option<&'static str>,
    /// The `f:WSManFault@Code` (a Win32/WinRM error code in decimal).
    pub wsman_code: u32,
    pub message: String,
}

/// WinRM's operation timeout (0x80338029).
pub(crate) const CODE_TIMED_OUT: u32 = 2_150_858_793;
/// Invalid selectors: unknown shell or command (0x8033805B).
pub(crate) const CODE_INVALID_SELECTORS: u32 = 2_150_858_843;
/// The per-user shell quota (0x803381A5).
pub(crate) const CODE_SHELL_QUOTA: u32 = 2_150_859_173;
/// Schema validation error (0x80338041).
pub(crate) const CODE_SCHEMA: u32 = 2_150_858_817;

impl Fault {
    pub fn timed_out() -> Self {
        let text = "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  ";
        Fault {
            code: "s:Receiver",
            subcode: "w:TimedOut",
            reason: text.into(),
            fault_detail: None,
            wsman_code: CODE_TIMED_OUT,
            message: text.into(),
        }
    }

    pub fn shell_not_found(shell_id: &str) -> Self {
        Fault {
            code: "s:Sender",
            subcode: "w:InvalidSelectors",
            reason: "The WS-Management service cannot process the request because the request contained invalid selectors for the resource. ".into(),
            fault_detail: Some("http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors"),
            wsman_code: CODE_INVALID_SELECTORS,
            message: format!("The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was not found on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists on the server. Provide the correct ShellId or create a new shell and retry the operation. "),
        }
    }

    pub fn command_not_found() -> Self {
        Fault {
            message: "The Windows Remote Shell received a request to perform an operation on a command identifier that does not exist. Either the command has completed execution or the client specified an invalid command identifier. ".into(),
            ..Fault::shell_not_found("")
        }
    }

    pub fn shell_quota(limit: usize) -> Self {
        Fault {
            code: "s:Sender",
            subcode: "w:QuotaLimit",
            reason: "The WS-Management service cannot process the request. The maximum number of concurrent shells for this user has been exceeded. Close existing shells or raise the quota for this user. ".into(),
            fault_detail: None,
            wsman_code: CODE_SHELL_QUOTA,
            message: format!("The WS-Management service cannot process the request. This user is allowed a maximum number of {limit} concurrent shells, which has been exceeded. Close existing shells or raise the quota for this user. "),
        }
    }

    /// A request the service cannot read; `what` names the problem.
    pub fn schema(what: &str) -> Self {
        Fault {
            code: "s:Sender",
            subcode: "w:SchemaValidationError",
            reason: "The SOAP XML in the message does not match the corresponding XML schema definition. Change the XML and retry. ".into(),
            fault_detail: None,
            wsman_code: CODE_SCHEMA,
            message: format!("The Windows Remote Shell cannot process the request: {what}. "),
        }
    }

    /// An action or resource this endpoint does not serve (only the cmd shell is served).
    pub fn unsupported(what: &str) -> Self {
        Fault {
            code: "s:Sender",
            subcode: "a:ActionNotSupported",
            reason: "The action is not supported by the service. ".into(),
            fault_detail: None,
            wsman_code: CODE_SCHEMA,
            message: format!("The WS-Management service does not support the request: {what}. "),
        }
    }
}

/// The fault envelope. `relates_to` may be empty when the request had no readable MessageID.
pub(crate) fn fault_response(
    relates_to: &str,
    message_id: &str,
    machine: &str,
    fault: &Fault,
) -> String {
    let detail = fault
        .fault_detail
        .map(|d| format!("<w:FaultDetail>{d}</w:FaultDetail>"))
        .unwrap_or_default();
    let body = format!(
        concat!(
            r#"<s:Fault><s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{subcode}</s:Value></s:Subcode></s:Code>"#,
            r#"<s:Reason><s:Text xml:lang="en-US">{reason}</s:Text></s:Reason><s:Detail>{detail}"#,
            r#"<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="{wcode}" Machine="{machine}">"#,
            r#"<f:Message>{message}</f:Message></f:WSManFault></s:Detail></s:Fault>"#
        ),
        code = fault.code,
        subcode = fault.subcode,
        reason = escape(&fault.reason),
        detail = detail,
        wcode = fault.wsman_code,
        machine = escape(machine),
        message = escape(&fault.message),
    );
    envelope(ACTION_FAULT, relates_to, message_id, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell">
<env:Header><a:To>http://windows-host:5985/wsman</a:To><a:ReplyTo><a:Address mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>
<w:MaxEnvelopeSize mustUnderstand="true">153600</w:MaxEnvelopeSize><a:MessageID>uuid:11111111-2222-3333-4444-555555555555</a:MessageID>
<w:OperationTimeout>PT20S</w:OperationTimeout><w:ResourceURI mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI>
<a:Action mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/transfer/Create</a:Action>
<w:OptionSet><w:Option Name="WINRS_NOPROFILE">FALSE</w:Option><w:Option Name="WINRS_CODEPAGE">437</w:Option></w:OptionSet></env:Header>
<env:Body><rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell></env:Body></env:Envelope>"#;

    #[test]
    fn reads_a_create_request_by_namespace() {
        let req = parse_request(CREATE.as_bytes()).unwrap();
        assert_eq!(req.operation, Operation::Create);
        assert_eq!(
            req.header.message_id,
            "uuid:11111111-2222-3333-4444-555555555555"
        );
        assert_eq!(req.header.resource_uri, RESOURCE_CMD);
        assert_eq!(req.header.operation_timeout, Some(Duration::from_secs(20)));
        assert_eq!(req.header.max_envelope_size, Some(153_600));
        assert_eq!(
            req.header.options,
            vec![
                ("WINRS_NOPROFILE".to_string(), "FALSE".to_string()),
                ("WINRS_CODEPAGE".to_string(), "437".to_string())
            ]
        );
    }

    #[test]
    fn reads_command_send_receive_and_signal_bodies() {
        let wrap = |action: &str, body: &str| {
            format!(
                r#"<s:Envelope xmlns:s="{NS_SOAP}" xmlns:wsa="{NS_ADDRESSING}" xmlns:wsman="{NS_WSMAN}" xmlns:rsp="{NS_SHELL}"><s:Header><wsa:Action>{action}</wsa:Action><wsa:MessageID>uuid:1</wsa:MessageID><wsman:SelectorSet><wsman:Selector Name="ShellId">S-1</wsman:Selector></wsman:SelectorSet></s:Header><s:Body>{body}</s:Body></s:Envelope>"#
            )
        };
        let cmd = parse_request(
            wrap(
                ACTION_COMMAND,
                "<rsp:CommandLine><rsp:Command>powershell &amp; x</rsp:Command><rsp:Arguments>-a</rsp:Arguments><rsp:Arguments>b&#x41;</rsp:Arguments></rsp:CommandLine>",
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(cmd.header.shell_id.as_deref(), Some("S-1"));
        assert_eq!(
            cmd.operation,
            Operation::Command {
                command: "powershell & x".into(),
                arguments: vec!["-a".into(), "bA".into()]
            }
        );
        let send = parse_request(
            wrap(
                ACTION_SEND,
                r#"<rsp:Send><rsp:Stream Name="stdin" CommandId="C-1" End="true">aGk=</rsp:Stream></rsp:Send>"#,
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            send.operation,
            Operation::Send {
                streams: vec![SendStream {
                    name: "stdin".into(),
                    command_id: "C-1".into(),
                    data: b"hi".to_vec(),
                    end: true
                }]
            }
        );
        let receive = parse_request(
            wrap(
                ACTION_RECEIVE,
                r#"<rsp:Receive><rsp:DesiredStream CommandId="C-1">stdout stderr</rsp:DesiredStream></rsp:Receive>"#,
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            receive.operation,
            Operation::Receive {
                command_id: Some("C-1".into())
            }
        );
        let signal = parse_request(
            wrap(
                ACTION_SIGNAL,
                &format!(r#"<rsp:Signal CommandId="C-1"><rsp:Code>{SIGNAL_TERMINATE}</rsp:Code></rsp:Signal>"#),
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            signal.operation,
            Operation::Signal {
                command_id: Some("C-1".into()),
                code: SIGNAL_TERMINATE.into()
            }
        );
    }

    #[test]
    fn rejects_what_is_not_an_envelope() {
        assert!(parse_request(b"<a/>").is_err());
        assert!(parse_request(b"<s:Envelope xmlns:s=\"x\">").is_err());
        assert!(parse_request(b"not xml at all <").is_err());
        assert!(parse_request(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("PT20S"), Some(Duration::from_secs(20)));
        assert_eq!(parse_duration("PT60.000S"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("PT1M30S"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("P0DT0H0M5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("PT0.5S"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("20"), None);
        assert_eq!(parse_duration("PT5X"), None);
    }

    #[test]
    fn replies_look_like_windows() {
        let chunk = ReceiveChunk {
            command_id: "C-1",
            streams: vec![("stdout", b"hi"), ("stderr", b"\n")],
            exit_code: Some(3),
        };
        insta::assert_snapshot!(
            "receive_done",
            receive_response("uuid:REQ", "uuid:RESP", &chunk)
        );
        insta::assert_snapshot!(
            "timed_out_fault",
            fault_response("uuid:REQ", "uuid:RESP", "wsus01", &Fault::timed_out())
        );
        insta::assert_snapshot!(
            "create_response",
            create_response(
                "uuid:REQ",
                "uuid:RESP",
                &ShellInfo {
                    shell_id: "S-1",
                    address: "http://127.0.1.2:5985/wsman",
                    owner: "administrator",
                    client_ip: "127.0.0.1",
                    idle_timeout: Duration::from_secs(180),
                }
            )
        );
    }

    #[test]
    fn replies_parse_back() {
        let xml = fault_response("uuid:REQ", "uuid:X", "m", &Fault::shell_quota(5));
        let doc = parse_document(xml.as_bytes()).unwrap();
        let fault = doc
            .child(NS_SOAP, "Body")
            .and_then(|b| b.child(NS_SOAP, "Fault"))
            .unwrap();
        let detail = fault.child(NS_SOAP, "Detail").unwrap();
        let wsman = &detail.children[0];
        assert_eq!(wsman.attr("Code"), Some("2150859173"));
        assert!(
            wsman.children[0]
                .text
                .contains("maximum number of 5 concurrent shells")
        );
    }
}
