//! The six WinRS SOAP requests (Create, Command, Send, Receive, Signal, Delete) as UTF-8 text.
//!
//! Pure string building, golden-tested. The shape follows what pywinrm 0.5.0 sends to Windows
//! (MS-WSMV 3.1.4): the common WS-Addressing / WS-Management header, then one body per action.
//! The only differences: `a:To` carries the real listener URL, and the MessageID is chosen by the
//! caller so replies can be matched (`a:RelatesTo`) and snapshots stay stable.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// SOAP 1.2 envelope.
pub(crate) const NS_SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
/// WS-Addressing (2004/08).
pub(crate) const NS_ADDRESSING: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
/// DMTF WS-Management.
pub(crate) const NS_WSMAN: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";
/// Microsoft WS-Management extensions.
pub(crate) const NS_WSMAN_MS: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd";
/// Windows remote shell.
pub(crate) const NS_SHELL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell";
/// WS-Transfer.
pub(crate) const NS_TRANSFER: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer";
/// The WSManFault detail element.
pub(crate) const NS_WSMAN_FAULT: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault";

const RESOURCE_CMD: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd";
const ACTION_CREATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create";
const ACTION_DELETE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete";
const ACTION_COMMAND: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command";
const ACTION_SEND: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send";
const ACTION_RECEIVE: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive";
const ACTION_SIGNAL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal";
const SIGNAL_TERMINATE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate";
const ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";

/// `w:MaxEnvelopeSize` we announce: the largest *reply* we accept. 150 KiB, WinRM 2.0's limit.
pub(crate) const MAX_ENVELOPE_SIZE: usize = 153_600;

/// What every request header needs besides the action.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext<'a> {
    /// Listener URL, sent as `a:To`.
    pub to: &'a str,
    /// `uuid:…`, sent as `a:MessageID`; replies must carry it in `a:RelatesTo`.
    pub message_id: &'a str,
    /// `w:OperationTimeout` in whole seconds.
    pub operation_timeout_secs: u64,
}

/// A fresh `uuid:<v4>` message id.
pub(crate) fn new_message_id() -> String {
    format!("uuid:{}", uuid::Uuid::new_v4().to_string().to_uppercase())
}

/// Escapes text for element content and attribute values.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn envelope(
    ctx: &RequestContext<'_>,
    action: &str,
    shell_id: Option<&str>,
    options: &[(&str, &str)],
    body: &str,
) -> String {
    let mut x = String::with_capacity(1800 + body.len());
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    x.push_str(&format!(
        "<env:Envelope xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:env=\"{NS_SOAP}\" \
         xmlns:a=\"{NS_ADDRESSING}\" xmlns:x=\"{NS_TRANSFER}\" xmlns:w=\"{NS_WSMAN}\" \
         xmlns:p=\"{NS_WSMAN_MS}\" xmlns:rsp=\"{NS_SHELL}\">"
    ));
    x.push_str("<env:Header>");
    x.push_str(&format!("<a:To>{}</a:To>", xml_escape(ctx.to)));
    x.push_str(&format!(
        "<a:ReplyTo><a:Address mustUnderstand=\"true\">{ANONYMOUS}</a:Address></a:ReplyTo>"
    ));
    x.push_str(&format!(
        "<w:MaxEnvelopeSize mustUnderstand=\"true\">{MAX_ENVELOPE_SIZE}</w:MaxEnvelopeSize>"
    ));
    x.push_str(&format!(
        "<a:MessageID>{}</a:MessageID>",
        xml_escape(ctx.message_id)
    ));
    x.push_str("<w:Locale mustUnderstand=\"false\" xml:lang=\"en-US\"/>");
    x.push_str("<p:DataLocale mustUnderstand=\"false\" xml:lang=\"en-US\"/>");
    x.push_str(&format!(
        "<w:OperationTimeout>PT{}S</w:OperationTimeout>",
        ctx.operation_timeout_secs
    ));
    x.push_str(&format!(
        "<w:ResourceURI mustUnderstand=\"true\">{RESOURCE_CMD}</w:ResourceURI>"
    ));
    x.push_str(&format!(
        "<a:Action mustUnderstand=\"true\">{action}</a:Action>"
    ));
    if let Some(id) = shell_id {
        x.push_str(&format!(
            "<w:SelectorSet><w:Selector Name=\"ShellId\">{}</w:Selector></w:SelectorSet>",
            xml_escape(id)
        ));
    }
    if !options.is_empty() {
        x.push_str("<w:OptionSet>");
        for (name, value) in options {
            x.push_str(&format!(
                "<w:Option Name=\"{}\">{}</w:Option>",
                xml_escape(name),
                xml_escape(value)
            ));
        }
        x.push_str("</w:OptionSet>");
    }
    x.push_str("</env:Header>");
    if body.is_empty() {
        x.push_str("<env:Body/>");
    } else {
        x.push_str("<env:Body>");
        x.push_str(body);
        x.push_str("</env:Body>");
    }
    x.push_str("</env:Envelope>");
    x
}

/// WS-Transfer Create of a cmd shell with stdin and stdout/stderr, in `codepage`.
pub(crate) fn create_shell(ctx: &RequestContext<'_>, codepage: u32) -> String {
    let codepage = codepage.to_string();
    envelope(
        ctx,
        ACTION_CREATE,
        None,
        &[
            ("WINRS_NOPROFILE", "FALSE"),
            ("WINRS_CODEPAGE", codepage.as_str()),
        ],
        "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams>\
         <rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>",
    )
}

/// WinRS Command: run `command_line` through cmd.exe in the shell. `console_mode_stdin` is
/// `WINRS_CONSOLEMODE_STDIN`: FALSE makes stdin a pipe, which a script reading all of stdin needs.
pub(crate) fn command(
    ctx: &RequestContext<'_>,
    shell_id: &str,
    command_line: &str,
    console_mode_stdin: bool,
) -> String {
    let body = format!(
        "<rsp:CommandLine><rsp:Command>{}</rsp:Command></rsp:CommandLine>",
        xml_escape(command_line)
    );
    envelope(
        ctx,
        ACTION_COMMAND,
        Some(shell_id),
        &[
            (
                "WINRS_CONSOLEMODE_STDIN",
                if console_mode_stdin { "TRUE" } else { "FALSE" },
            ),
            ("WINRS_SKIP_CMD_SHELL", "FALSE"),
        ],
        &body,
    )
}

/// WinRS Send: `data` to the command's stdin; `end` closes stdin.
pub(crate) fn send(
    ctx: &RequestContext<'_>,
    shell_id: &str,
    command_id: &str,
    data: &[u8],
    end: bool,
) -> String {
    let end_attr = if end { " End=\"true\"" } else { "" };
    let body = format!(
        "<rsp:Send><rsp:Stream Name=\"stdin\" CommandId=\"{}\"{end_attr}>{}</rsp:Stream></rsp:Send>",
        xml_escape(command_id),
        BASE64.encode(data)
    );
    envelope(ctx, ACTION_SEND, Some(shell_id), &[], &body)
}

/// WinRS Receive of stdout and stderr.
pub(crate) fn receive(ctx: &RequestContext<'_>, shell_id: &str, command_id: &str) -> String {
    let body = format!(
        "<rsp:Receive><rsp:DesiredStream CommandId=\"{}\">stdout stderr</rsp:DesiredStream></rsp:Receive>",
        xml_escape(command_id)
    );
    envelope(ctx, ACTION_RECEIVE, Some(shell_id), &[], &body)
}

/// WinRS Signal terminate of a command.
pub(crate) fn signal_terminate(
    ctx: &RequestContext<'_>,
    shell_id: &str,
    command_id: &str,
) -> String {
    let body = format!(
        "<rsp:Signal CommandId=\"{}\"><rsp:Code>{SIGNAL_TERMINATE}</rsp:Code></rsp:Signal>",
        xml_escape(command_id)
    );
    envelope(ctx, ACTION_SIGNAL, Some(shell_id), &[], &body)
}

/// WS-Transfer Delete of the shell (empty body).
pub(crate) fn delete_shell(ctx: &RequestContext<'_>, shell_id: &str) -> String {
    envelope(ctx, ACTION_DELETE, Some(shell_id), &[], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHELL: &str = "11111111-2222-3333-4444-555555555555";
    const CMD: &str = "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE";

    /// A context with a freshly generated message id, as the shell layer builds it.
    fn ctx() -> RequestContext<'static> {
        RequestContext {
            to: "http://srv01:5985/wsman",
            message_id: Box::leak(new_message_id().into_boxed_str()),
            operation_timeout_secs: 20,
        }
    }

    /// Replaces every `uuid:<36 characters>` by `uuid:[MESSAGE-ID]`.
    fn normalise_uuids(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find("uuid:") {
            out.push_str(&rest[..at + 5]);
            let tail = &rest[at + 5..];
            let id_len = tail
                .bytes()
                .take_while(|b| b.is_ascii_hexdigit() || *b == b'-')
                .count();
            if id_len == 36 {
                out.push_str("[MESSAGE-ID]");
                rest = &tail[36..];
            } else {
                rest = tail;
            }
        }
        out.push_str(rest);
        out
    }

    /// One element per line, so snapshots diff well, with message ids normalised. Only for
    /// display: the wire form has no whitespace between elements.
    fn pretty(xml: &str) -> String {
        normalise_uuids(&xml.replace("><", ">\n<"))
    }

    #[test]
    fn message_ids_are_uuids() {
        let id = new_message_id();
        assert!(id.starts_with("uuid:"));
        assert_eq!(id.len(), 41);
        assert_ne!(id, new_message_id());
        assert_eq!(
            normalise_uuids(&format!("<a>{id}</a>")),
            "<a>uuid:[MESSAGE-ID]</a>"
        );
        assert_eq!(normalise_uuids("uuid:short"), "uuid:short");
    }

    #[test]
    fn escaping() {
        assert_eq!(xml_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }

    #[test]
    fn golden_create() {
        insta::assert_snapshot!(pretty(&create_shell(&ctx(), 437)));
    }

    #[test]
    fn golden_command_encoded() {
        let line = crate::winrm::powershell::plan("Write-Output 'hi'").command_line;
        insta::assert_snapshot!(pretty(&command(&ctx(), SHELL, &line, true)));
    }

    #[test]
    fn golden_command_bootstrap() {
        let script = "Write-Output 'x'\n".repeat(400);
        let plan = crate::winrm::powershell::plan(&script);
        assert!(plan.stdin.is_some());
        insta::assert_snapshot!(pretty(&command(&ctx(), SHELL, &plan.command_line, false)));
    }

    #[test]
    fn golden_send() {
        insta::assert_snapshot!(pretty(&send(
            &ctx(),
            SHELL,
            CMD,
            b"V3JpdGUtT3V0cHV0",
            false
        )));
        insta::assert_snapshot!(
            "golden_send_end",
            pretty(&send(&ctx(), SHELL, CMD, b"IDEK", true))
        );
    }

    #[test]
    fn golden_receive() {
        insta::assert_snapshot!(pretty(&receive(&ctx(), SHELL, CMD)));
    }

    #[test]
    fn golden_signal() {
        insta::assert_snapshot!(pretty(&signal_terminate(&ctx(), SHELL, CMD)));
    }

    #[test]
    fn golden_delete() {
        insta::assert_snapshot!(pretty(&delete_shell(&ctx(), SHELL)));
    }

    #[test]
    fn envelopes_are_well_formed_xml() {
        for xml in [
            create_shell(&ctx(), 65001),
            command(&ctx(), SHELL, "echo <&>", true),
            send(&ctx(), SHELL, CMD, b"x", true),
            receive(&ctx(), SHELL, CMD),
            signal_terminate(&ctx(), SHELL, CMD),
            delete_shell(&ctx(), SHELL),
        ] {
            let doc = crate::winrm::xml::Document::parse(xml.as_bytes()).expect("well-formed");
            assert_eq!(doc.root().name.local, "Envelope");
            assert_eq!(doc.root().name.ns.as_deref(), Some(NS_SOAP));
        }
    }

    #[test]
    fn a_full_stdin_chunk_stays_well_under_the_envelope_limit() {
        let chunk = vec![b'A'; crate::winrm::powershell::STDIN_CHUNK];
        let xml = send(&ctx(), SHELL, CMD, &chunk, false);
        assert!(xml.len() < MAX_ENVELOPE_SIZE * 2 / 3, "{}", xml.len());
    }
}
