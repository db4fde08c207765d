//! The simulator's WinRM endpoint over real HTTP on loopback, driven by a client written here:
//! raw HTTP/1.1 on a TCP (or TLS) stream, NTLM and SPNEGO from `sspi`'s client side, MS-WSMV
//! framing and WinRS envelopes by hand. Nothing of the project's own WinRM client is used, so
//! the endpoint is checked against an independent reading of the protocol.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use wsusfix::sim::endpoint::{
    Account, EndpointConfig, HostSpec, RunningEndpoint, ScriptHost, ScriptOutcome, serve,
};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const USER: &str = "Administrator";
const PASSWORD: &str = "Pa55w.rd!";

// ---------------------------------------------------------------------------------------------
// The stub world: echoes the host and the script's first line; understands a few directives.

/// `sleep MS`, `big N` (N bytes of stdout), `stderr TEXT`, `exit N`; stdout starts with
/// `HOST: FIRST LINE`.
async fn stub(host: String, script: String) -> ScriptOutcome {
    let first = script.lines().next().unwrap_or_default().to_string();
    let mut out = ScriptOutcome::success(format!("{host}: {first}\r\n"));
    for line in script.lines() {
        let line = line.trim();
        if let Some(ms) = line.strip_prefix("sleep ") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
        } else if let Some(n) = line.strip_prefix("big ") {
            let n: usize = n.parse().unwrap();
            out.stdout
                .extend((0..n).map(|i| b"0123456789abcdef"[i % 16]));
        } else if let Some(text) = line.strip_prefix("stderr ") {
            out.stderr.extend_from_slice(text.as_bytes());
        } else if let Some(code) = line.strip_prefix("exit ") {
            out.exit_code = code.parse().unwrap();
        }
    }
    out
}

fn stub_host() -> Arc<dyn ScriptHost> {
    Arc::new(|host: &str, script: String| stub(host.to_string(), script))
}

fn host(name: &str, last: u8) -> HostSpec {
    HostSpec::new(
        name,
        IpAddr::V4(Ipv4Addr::new(127, 0, 77, last)),
        vec![
            Account::new(USER, PASSWORD),
            Account::new("LAB\\operator", "op-secret"),
        ],
    )
}

fn config() -> EndpointConfig {
    EndpointConfig {
        http_port: 0,
        https_port: Some(0),
        ..EndpointConfig::default()
    }
}

async fn start(name: &str, last: u8) -> RunningEndpoint {
    serve(vec![host(name, last)], config(), stub_host())
        .await
        .expect("endpoint starts")
}

// ---------------------------------------------------------------------------------------------
// A small HTTP/1.1 client over one connection.

mod http {
    use std::sync::Arc;

    use tokio::io::{
        AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
    };
    use tokio::net::TcpStream;

    pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
    impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

    #[derive(Debug)]
    pub struct Response {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Response {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        pub fn headers_named(&self, name: &str) -> Vec<&str> {
            self.headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .collect()
        }

        /// The token of `WWW-Authenticate: Negotiate <token>`, if any.
        pub fn negotiate_token(&self) -> Option<Vec<u8>> {
            use base64::Engine;
            self.headers_named("WWW-Authenticate").iter().find_map(|v| {
                let token = v.strip_prefix("Negotiate ")?;
                base64::engine::general_purpose::STANDARD
                    .decode(token.trim())
                    .ok()
            })
        }
    }

    pub struct Conn {
        io: BufReader<Box<dyn Io>>,
        host: String,
    }

    impl Conn {
        pub async fn plain(addr: std::net::SocketAddr) -> std::io::Result<Conn> {
            let tcp = TcpStream::connect(addr).await?;
            Ok(Conn {
                io: BufReader::new(Box::new(tcp)),
                host: addr.to_string(),
            })
        }

        pub async fn tls(addr: std::net::SocketAddr, ca_pem: &str) -> std::io::Result<Conn> {
            use rustls::pki_types::pem::PemObject;
            use rustls::pki_types::{CertificateDer, ServerName};
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA PEM"))
                .expect("CA certificate");
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let tcp = TcpStream::connect(addr).await?;
            let name = ServerName::IpAddress(addr.ip().into());
            let tls = connector.connect(name, tcp).await?;
            Ok(Conn {
                io: BufReader::new(Box::new(tls)),
                host: addr.to_string(),
            })
        }

        pub async fn post(
            &mut self,
            headers: &[(&str, &str)],
            body: &[u8],
        ) -> std::io::Result<Response> {
            self.request("POST", "/wsman", headers, body).await
        }

        pub async fn request(
            &mut self,
            method: &str,
            path: &str,
            headers: &[(&str, &str)],
            body: &[u8],
        ) -> std::io::Result<Response> {
            let mut head = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nUser-Agent: sim-endpoint-test\r\n",
                self.host,
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let w = self.io.get_mut();
            w.write_all(head.as_bytes()).await?;
            w.write_all(body).await?;
            w.flush().await?;

            let mut status_line = String::new();
            if self.io.read_line(&mut status_line).await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            let status: u16 = status_line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                self.io.read_line(&mut line).await?;
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (k, v) = line.split_once(':').expect("header line");
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            self.io.read_exact(&mut body).await?;
            Ok(Response {
                status,
                headers,
                body,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// NTLM / SPNEGO from sspi's client side, and MS-WSMV framing.

mod ntlm_client {
    use sspi::ntlm::NtlmConfig;
    use sspi::{
        AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, Credentials,
        CredentialsBuffers, DataRepresentation, EncryptionFlags, Negotiate, NegotiateConfig, Ntlm,
        SecurityBuffer, SecurityBufferRef, SecurityStatus, Sspi, SspiImpl, Username,
    };

    pub enum Ctx {
        Ntlm(Box<Ntlm>, Option<sspi::AuthIdentityBuffers>),
        Negotiate(Box<Negotiate>, Option<CredentialsBuffers>),
    }

    pub struct Client {
        ctx: Ctx,
    }

    const FLAGS: ClientRequestFlags = ClientRequestFlags::CONFIDENTIALITY
        .union(ClientRequestFlags::INTEGRITY)
        .union(ClientRequestFlags::ALLOCATE_MEMORY);

    impl Client {
        pub fn new(user: &str, password: &str, spnego: bool) -> Client {
            let identity = AuthIdentity {
                username: Username::parse(user).unwrap(),
                password: password.to_string().into(),
            };
            let ctx = if spnego {
                let mut n = Negotiate::new_client(NegotiateConfig::new(
                    Box::new(NtlmConfig::new("TESTCLIENT".into())),
                    Some("ntlm,!kerberos,!pku2u".into()),
                    "TESTCLIENT".into(),
                ))
                .unwrap();
                let creds = Credentials::AuthIdentity(identity);
                let handle = n
                    .acquire_credentials_handle()
                    .with_credential_use(CredentialUse::Outbound)
                    .with_auth_data(&creds)
                    .execute(&mut n)
                    .unwrap()
                    .credentials_handle;
                Ctx::Negotiate(Box::new(n), handle)
            } else {
                let mut n = Ntlm::with_config(NtlmConfig::new("TESTCLIENT".into()));
                let handle = n
                    .acquire_credentials_handle()
                    .with_credential_use(CredentialUse::Outbound)
                    .with_auth_data(&identity)
                    .execute(&mut n)
                    .unwrap()
                    .credentials_handle;
                Ctx::Ntlm(Box::new(n), handle)
            };
            Client { ctx }
        }

        /// One InitializeSecurityContext step.
        pub fn step(&mut self, input: Option<&[u8]>) -> (SecurityStatus, Vec<u8>) {
            let mut inbuf = vec![SecurityBuffer::new(
                input.map(<[u8]>::to_vec).unwrap_or_default(),
                BufferType::Token,
            )];
            let mut outbuf = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
            let status = match &mut self.ctx {
                Ctx::Ntlm(n, creds) => {
                    let mut b = n
                        .initialize_security_context()
                        .with_credentials_handle(creds)
                        .with_context_requirements(FLAGS)
                        .with_target_data_representation(DataRepresentation::Native)
                        .with_target_name("HTTP/sim-host")
                        .with_input(&mut inbuf)
                        .with_output(&mut outbuf);
                    n.initialize_security_context_impl(&mut b)
                        .unwrap()
                        .resolve_to_result()
                        .unwrap()
                        .status
                }
                Ctx::Negotiate(n, creds) => {
                    let mut b = n
                        .initialize_security_context()
                        .with_credentials_handle(creds)
                        .with_context_requirements(FLAGS)
                        .with_target_data_representation(DataRepresentation::Native)
                        .with_target_name("HTTP/sim-host")
                        .with_input(&mut inbuf)
                        .with_output(&mut outbuf);
                    n.initialize_security_context_impl(&mut b)
                        .unwrap()
                        .resolve_to_result()
                        .unwrap()
                        .status
                }
            };
            (status, std::mem::take(&mut outbuf[0].buffer))
        }

        fn encrypt(&mut self, bufs: &mut [SecurityBufferRef<'_>]) {
            match &mut self.ctx {
                Ctx::Ntlm(n, _) => n.encrypt_message(EncryptionFlags::empty(), bufs).unwrap(),
                Ctx::Negotiate(n, _) => n.encrypt_message(EncryptionFlags::empty(), bufs).unwrap(),
            };
        }

        fn decrypt(&mut self, bufs: &mut [SecurityBufferRef<'_>]) -> sspi::Result<()> {
            match &mut self.ctx {
                Ctx::Ntlm(n, _) => n.decrypt_message(bufs).map(drop),
                Ctx::Negotiate(n, _) => n.decrypt_message(bufs).map(drop),
            }
        }

        /// An MS-WSMV encrypted body, byte for byte as pywinrm writes it.
        pub fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
            let mut sig = vec![0u8; 16];
            let mut data = plain.to_vec();
            let mut bufs = [
                SecurityBufferRef::token_buf(&mut sig),
                SecurityBufferRef::data_buf(&mut data),
            ];
            self.encrypt(&mut bufs);
            let mut out = Vec::new();
            out.extend_from_slice(b"--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=");
            out.extend_from_slice(plain.len().to_string().as_bytes());
            out.extend_from_slice(
                b"\r\n--Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n",
            );
            out.extend_from_slice(&16u32.to_le_bytes());
            out.extend_from_slice(&sig);
            out.extend_from_slice(&data);
            out.extend_from_slice(b"--Encrypted Boundary--\r\n");
            out
        }

        /// Opens an encrypted reply the way pywinrm does, checking the declared length.
        pub fn unseal(&mut self, body: &[u8]) -> Vec<u8> {
            let text = body;
            let find = |h: &[u8], n: &[u8]| h.windows(n.len()).position(|w| w == n).unwrap();
            let len_at = find(text, b"Length=") + 7;
            let len_end = len_at + text[len_at..].iter().position(|b| *b == b'\r').unwrap();
            let len: usize = std::str::from_utf8(&text[len_at..len_end])
                .unwrap()
                .parse()
                .unwrap();
            let marker = b"\tContent-Type: application/octet-stream\r\n";
            let start = find(text, marker) + marker.len();
            let payload = &text[start..];
            let sig_len = u32::from_le_bytes(payload[..4].try_into().unwrap()) as usize;
            let mut sig = payload[4..4 + sig_len].to_vec();
            let mut data = payload[4 + sig_len..4 + sig_len + len].to_vec();
            assert_eq!(&payload[4 + sig_len + len..], b"--Encrypted Boundary--\r\n");
            let mut bufs = [
                SecurityBufferRef::token_buf(&mut sig),
                SecurityBufferRef::data_buf(&mut data),
            ];
            self.decrypt(&mut bufs).expect("reply decrypts");
            data
        }
    }
}

const ENCRYPTED: &str = "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\"";

/// A connection with a logon: sealed (NTLM/SPNEGO over HTTP) or plain (Basic over HTTPS).
struct Session {
    conn: http::Conn,
    client: Option<ntlm_client::Client>,
    basic: Option<String>,
    /// The final SPNEGO token the 200 carried, if any.
    final_token: Option<Vec<u8>>,
}

/// The 401-then-token dance; `Err(response)` with the refusing response.
async fn logon(
    mut conn: http::Conn,
    user: &str,
    password: &str,
    spnego: bool,
) -> Result<Session, http::Response> {
    let mut client = ntlm_client::Client::new(user, password, spnego);
    let (_, token) = client.step(None);
    let auth = format!("Negotiate {}", B64.encode(&token));
    let r = conn.post(&[("Authorization", &auth)], b"").await.unwrap();
    if r.status != 401 {
        return Err(r);
    }
    let challenge = r.negotiate_token().expect("a challenge token");
    let (_, token) = client.step(Some(&challenge));
    let auth = format!("Negotiate {}", B64.encode(&token));
    let r = conn.post(&[("Authorization", &auth)], b"").await.unwrap();
    if r.status != 200 {
        return Err(r);
    }
    let final_token = r.negotiate_token();
    if let Some(token) = &final_token {
        client.step(Some(token));
    }
    Ok(Session {
        conn,
        client: Some(client),
        basic: None,
        final_token,
    })
}

async fn http_logon(ep: &RunningEndpoint, name: &str) -> Session {
    let conn = http::Conn::plain(ep.host(name).unwrap().http)
        .await
        .unwrap();
    logon(conn, USER, PASSWORD, false)
        .await
        .map_err(|r| r.status)
        .expect("logon succeeds")
}

/// A SOAP exchange's outcome.
struct Soap {
    status: u16,
    xml: String,
}

impl Session {
    async fn soap(&mut self, xml: &str) -> Soap {
        let r = self.raw(xml.as_bytes()).await;
        let xml = if r
            .header("Content-Type")
            .unwrap_or_default()
            .starts_with("multipart/encrypted")
        {
            let plain = self.client.as_mut().unwrap().unseal(&r.body);
            String::from_utf8(plain).unwrap()
        } else {
            String::from_utf8(r.body).unwrap()
        };
        Soap {
            status: r.status,
            xml,
        }
    }

    async fn raw(&mut self, xml: &[u8]) -> http::Response {
        if let Some(basic) = self.basic.clone() {
            let auth = format!("Basic {basic}");
            self.conn
                .post(
                    &[
                        ("Authorization", &auth),
                        ("Content-Type", "application/soap+xml;charset=UTF-8"),
                    ],
                    xml,
                )
                .await
                .unwrap()
        } else {
            let body = self.client.as_mut().unwrap().seal(xml);
            self.conn
                .post(&[("Content-Type", ENCRYPTED)], &body)
                .await
                .unwrap()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// WinRS envelopes (as pywinrm writes them) and reading replies.

const CMD: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd";

struct Envelope {
    message_id: String,
    xml: String,
}

fn envelope(
    action: &str,
    shell: Option<&str>,
    timeout: &str,
    options: &str,
    body: &str,
) -> Envelope {
    let message_id = format!("uuid:{}", uuid::Uuid::new_v4());
    let selector = shell
        .map(|s| {
            format!(r#"<w:SelectorSet><w:Selector Name="ShellId">{s}</w:Selector></w:SelectorSet>"#)
        })
        .unwrap_or_default();
    let xml = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><env:Header><a:To>http://windows-host:5985/wsman</a:To><a:ReplyTo><a:Address mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><w:MaxEnvelopeSize mustUnderstand="true">153600</w:MaxEnvelopeSize><a:MessageID>{message_id}</a:MessageID><w:Locale mustUnderstand="false" xml:lang="en-US"/><p:DataLocale mustUnderstand="false" xml:lang="en-US"/><w:OperationTimeout>{timeout}</w:OperationTimeout><w:ResourceURI mustUnderstand="true">{CMD}</w:ResourceURI><a:Action mustUnderstand="true">{action}</a:Action>{selector}{options}</env:Header><env:Body>{body}</env:Body></env:Envelope>"#
    );
    Envelope { message_id, xml }
}

fn create() -> Envelope {
    envelope(
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create",
        None,
        "PT20S",
        r#"<w:OptionSet><w:Option Name="WINRS_NOPROFILE">FALSE</w:Option><w:Option Name="WINRS_CODEPAGE">437</w:Option></w:OptionSet>"#,
        "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>",
    )
}

fn command(shell: &str, line: &str) -> Envelope {
    envelope(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command",
        Some(shell),
        "PT20S",
        r#"<w:OptionSet><w:Option Name="WINRS_CONSOLEMODE_STDIN">TRUE</w:Option><w:Option Name="WINRS_SKIP_CMD_SHELL">FALSE</w:Option></w:OptionSet>"#,
        &format!(
            "<rsp:CommandLine><rsp:Command>{}</rsp:Command></rsp:CommandLine>",
            line.replace('&', "&amp;").replace('<', "&lt;")
        ),
    )
}

fn receive(shell: &str, command_id: &str, timeout: &str) -> Envelope {
    envelope(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive",
        Some(shell),
        timeout,
        "",
        &format!(
            r#"<rsp:Receive><rsp:DesiredStream CommandId="{command_id}">stdout stderr</rsp:DesiredStream></rsp:Receive>"#
        ),
    )
}

fn send(shell: &str, command_id: &str, data: &[u8], end: bool) -> Envelope {
    envelope(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send",
        Some(shell),
        "PT20S",
        "",
        &format!(
            r#"<rsp:Send><rsp:Stream Name="stdin" CommandId="{command_id}"{}>{}</rsp:Stream></rsp:Send>"#,
            if end { r#" End="true""# } else { "" },
            B64.encode(data)
        ),
    )
}

fn signal(shell: &str, command_id: &str, code: &str) -> Envelope {
    envelope(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal",
        Some(shell),
        "PT20S",
        "",
        &format!(
            r#"<rsp:Signal CommandId="{command_id}"><rsp:Code>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/{code}</rsp:Code></rsp:Signal>"#
        ),
    )
}

fn delete(shell: &str) -> Envelope {
    envelope(
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete",
        Some(shell),
        "PT20S",
        "",
        "",
    )
}

/// The text of the first element whose qualified name ends with `:name` (or is `name`).
fn text_of(xml: &str, name: &str) -> Option<String> {
    let open = xml
        .find(&format!(":{name}>"))
        .or_else(|| xml.find(&format!(":{name} ")))?;
    let start = open + xml[open..].find('>')? + 1;
    let end = start + xml[start..].find("</")?;
    Some(xml[start..end].to_string())
}

/// The ShellId from the `Selector Name="ShellId"` element.
fn shell_id_of(xml: &str) -> String {
    let at = xml.find(r#"Name="ShellId">"#).expect("a ShellId selector") + 15;
    xml[at..at + xml[at..].find('<').unwrap()].to_string()
}

#[derive(Debug, Default)]
struct Received {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    stream_elements: usize,
    exit_code: Option<i32>,
}

fn parse_receive(xml: &str) -> Received {
    let mut r = Received::default();
    let mut rest = xml;
    while let Some(at) = rest.find("<rsp:Stream ") {
        let tail = &rest[at..];
        let close = tail.find('>').unwrap();
        let tag = &tail[..close];
        let end = tail.find("</rsp:Stream>").unwrap();
        let content = &tail[close + 1..end];
        if !content.is_empty() {
            r.stream_elements += 1;
            let bytes = B64.decode(content).unwrap();
            if tag.contains(r#"Name="stdout""#) {
                r.stdout.extend(bytes);
            } else {
                r.stderr.extend(bytes);
            }
        }
        rest = &tail[end..];
    }
    if xml.contains("CommandState/Done") {
        r.exit_code = Some(text_of(xml, "ExitCode").unwrap().parse().unwrap());
    }
    r
}

fn fault_code(xml: &str) -> Option<u64> {
    let at = xml.find("WSManFault")?;
    let code_at = at + xml[at..].find("Code=\"")? + 6;
    xml[code_at..code_at + xml[code_at..].find('"')?]
        .parse()
        .ok()
}

fn encode_ps(script: &str) -> String {
    let bytes: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    B64.encode(bytes)
}

fn ps_line(script: &str) -> String {
    format!(
        "powershell.exe -NoProfile -NonInteractive -EncodedCommand {}",
        encode_ps(script)
    )
}

impl Session {
    async fn create_shell(&mut self) -> String {
        let env = create();
        let r = self.soap(&env.xml).await;
        assert_eq!(r.status, 200, "{}", r.xml);
        assert_eq!(text_of(&r.xml, "RelatesTo").unwrap(), env.message_id);
        let id = shell_id_of(&r.xml);
        assert_eq!(
            text_of(&r.xml, "ShellId").unwrap(),
            id,
            "rsp:Shell/rsp:ShellId"
        );
        id
    }

    async fn start(&mut self, shell: &str, line: &str) -> String {
        let env = command(shell, line);
        let r = self.soap(&env.xml).await;
        assert_eq!(r.status, 200, "{}", r.xml);
        assert_eq!(text_of(&r.xml, "RelatesTo").unwrap(), env.message_id);
        text_of(&r.xml, "CommandId").unwrap()
    }

    /// Receives until Done, counting the TimedOut faults on the way.
    async fn receive_all(
        &mut self,
        shell: &str,
        command_id: &str,
        timeout: &str,
    ) -> (Received, usize, usize) {
        let mut all = Received::default();
        let (mut timeouts, mut replies) = (0, 0);
        loop {
            let env = receive(shell, command_id, timeout);
            let r = self.soap(&env.xml).await;
            assert_eq!(text_of(&r.xml, "RelatesTo").unwrap(), env.message_id);
            if r.status == 500 {
                assert_eq!(fault_code(&r.xml), Some(2_150_858_793), "{}", r.xml);
                assert!(r.xml.contains("w:TimedOut"));
                timeouts += 1;
                continue;
            }
            assert_eq!(r.status, 200, "{}", r.xml);
            replies += 1;
            let got = parse_receive(&r.xml);
            all.stdout.extend(got.stdout);
            all.stderr.extend(got.stderr);
            all.stream_elements += got.stream_elements;
            if got.exit_code.is_some() {
                all.exit_code = got.exit_code;
                return (all, timeouts, replies);
            }
        }
    }

    async fn run(&mut self, script: &str) -> Received {
        let shell = self.create_shell().await;
        let id = self.start(&shell, &ps_line(script)).await;
        let (out, _, _) = self.receive_all(&shell, &id, "PT20S").await;
        let r = self.soap(&signal(&shell, &id, "terminate").xml).await;
        assert_eq!(r.status, 200, "{}", r.xml);
        let r = self.soap(&delete(&shell).xml).await;
        assert_eq!(r.status, 200, "{}", r.xml);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Crafted NTLM AUTHENTICATE messages (the acceptor's two holes).

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn hmac_md5(key: &[u8], data: &[&[u8]]) -> [u8; 16] {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<md5::Md5> as Mac>::new_from_slice(key).unwrap();
    for d in data {
        mac.update(d);
    }
    mac.finalize().into_bytes().into()
}

fn ntowf_v2(password: &str, user: &str, domain: &str) -> [u8; 16] {
    use md4::Digest;
    let hash: [u8; 16] = md4::Md4::digest(utf16le(password)).into();
    hmac_md5(&hash, &[&utf16le(&user.to_uppercase()), &utf16le(domain)])
}

/// An AUTHENTICATE message computed by hand for `challenge_msg`, with no MIC (no MsvAvFlags, an
/// all-zero MIC field) and no key exchange. `v1` writes a 24-byte (NTLMv1-sized) response.
fn craft_authenticate(
    challenge_msg: &[u8],
    user: &str,
    domain: &str,
    password: &str,
    v1: bool,
) -> Vec<u8> {
    let server_challenge = &challenge_msg[24..32];
    let ti_len = u16::from_le_bytes([challenge_msg[40], challenge_msg[41]]) as usize;
    let ti_off = u32::from_le_bytes(challenge_msg[44..48].try_into().unwrap()) as usize;
    let target_info = &challenge_msg[ti_off..ti_off + ti_len];
    // The server's timestamp (MsvAvTimestamp), which an NTLMv2 client echoes.
    let mut timestamp = [0u8; 8];
    let mut at = 0;
    while at + 4 <= target_info.len() {
        let id = u16::from_le_bytes([target_info[at], target_info[at + 1]]);
        let len = u16::from_le_bytes([target_info[at + 2], target_info[at + 3]]) as usize;
        if id == 7 {
            timestamp.copy_from_slice(&target_info[at + 4..at + 12]);
        }
        if id == 0 {
            break;
        }
        at += 4 + len;
    }
    let nt_response = if v1 {
        vec![0x11; 24]
    } else {
        let mut blob = vec![1u8, 1, 0, 0, 0, 0, 0, 0];
        blob.extend(timestamp);
        blob.extend([0x42u8; 8]);
        blob.extend([0u8; 4]);
        blob.extend(target_info);
        blob.extend([0u8; 4]);
        let proof = hmac_md5(
            &ntowf_v2(password, user, domain),
            &[server_challenge, &blob],
        );
        [proof.to_vec(), blob].concat()
    };
    let flags: u32 = 0x0000_0001 // UNICODE
        | 0x0000_0004 // REQUEST_TARGET
        | 0x0000_0010 // SIGN
        | 0x0000_0020 // SEAL
        | 0x0000_0200 // NTLM
        | 0x0000_8000 // ALWAYS_SIGN
        | 0x0008_0000 // EXTENDED_SESSIONSECURITY
        | 0x0080_0000 // TARGET_INFO
        | 0x0200_0000 // VERSION
        | 0x2000_0000 // 128
        | 0x8000_0000; // 56
    let (d, u, w) = (utf16le(domain), utf16le(user), utf16le("CRAFTED"));
    let lm = vec![0u8; 24];
    let mut msg = Vec::new();
    msg.extend(b"NTLMSSP\0");
    msg.extend(3u32.to_le_bytes());
    let mut offset = 88u32;
    let mut payload = Vec::new();
    let mut fields = Vec::new();
    for bytes in [&lm, &nt_response, &d, &u, &w] {
        fields.push((bytes.len() as u16, offset));
        payload.extend_from_slice(bytes);
        offset += bytes.len() as u32;
    }
    // Header field order: LM, NT, domain, user, workstation, session key.
    for (len, off) in &fields {
        msg.extend(len.to_le_bytes());
        msg.extend(len.to_le_bytes());
        msg.extend(off.to_le_bytes());
    }
    msg.extend(0u16.to_le_bytes());
    msg.extend(0u16.to_le_bytes());
    msg.extend(offset.to_le_bytes());
    msg.extend(flags.to_le_bytes());
    msg.extend([10, 0, 0x63, 0x45, 0, 0, 0, 15]); // version
    msg.extend([0u8; 16]); // MIC, stripped
    msg.extend(payload);
    msg
}

/// Sends a NEGOTIATE from sspi's client, then `authenticate(challenge)`; returns the status of
/// the AUTHENTICATE leg.
async fn crafted_logon(addr: SocketAddr, authenticate: impl FnOnce(&[u8]) -> Vec<u8>) -> u16 {
    let mut conn = http::Conn::plain(addr).await.unwrap();
    let mut client = ntlm_client::Client::new(USER, PASSWORD, false);
    let (_, token) = client.step(None);
    let r = conn
        .post(
            &[(
                "Authorization",
                &format!("Negotiate {}", B64.encode(&token)),
            )],
            b"",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let challenge = r.negotiate_token().unwrap();
    let type3 = authenticate(&challenge);
    conn.post(
        &[(
            "Authorization",
            &format!("Negotiate {}", B64.encode(&type3)),
        )],
        b"",
    )
    .await
    .unwrap()
    .status
}

// =============================================================================================
// The tests.

#[tokio::test]
async fn full_cycle_over_http_with_ntlm_sealing() {
    let ep = start("wsus-hq", 1).await;
    let mut s = http_logon(&ep, "wsus-hq").await;
    assert!(s.final_token.is_none(), "raw NTLMSSP has no final token");

    let shell = s.create_shell().await;
    let id = s
        .start(&shell, &ps_line("Write-Output 'hi'\nstderr oops\nexit 3"))
        .await;
    let (out, _, _) = s.receive_all(&shell, &id, "PT20S").await;
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "wsus-hq: Write-Output 'hi'\r\n"
    );
    assert_eq!(out.stderr, b"oops");
    assert_eq!(out.exit_code, Some(3));

    let env = signal(&shell, &id, "terminate");
    let r = s.soap(&env.xml).await;
    assert_eq!(r.status, 200);
    assert!(r.xml.contains("SignalResponse"));
    assert_eq!(text_of(&r.xml, "RelatesTo").unwrap(), env.message_id);
    let env = delete(&shell);
    let r = s.soap(&env.xml).await;
    assert_eq!(r.status, 200);
    assert!(r.xml.contains("DeleteResponse"));
    assert_eq!(text_of(&r.xml, "RelatesTo").unwrap(), env.message_id);

    let c = ep.counters("wsus-hq").unwrap();
    assert_eq!(
        (c.shells_created, c.shells_deleted, c.shells_open),
        (1, 1, 0)
    );
    assert_eq!(c.commands, 1);
    assert_eq!(c.auth_failures, 0);
    assert_eq!(
        c.connections, 1,
        "one authenticated connection served everything"
    );
    ep.shutdown().await;
}

#[tokio::test]
async fn spnego_wrapped_ntlm_logs_on_with_a_final_token() {
    let ep = start("wsus-eu", 2).await;
    let conn = http::Conn::plain(ep.host("wsus-eu").unwrap().http)
        .await
        .unwrap();
    let mut s = logon(conn, USER, PASSWORD, true)
        .await
        .map_err(|r| r.status)
        .unwrap();
    assert!(
        s.final_token.is_some(),
        "SPNEGO's final token comes on the 200"
    );
    let out = s.run("Get-Date").await;
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.stdout, b"wsus-eu: Get-Date\r\n");

    // A qualified name works too, and a wrong password does not.
    let conn = http::Conn::plain(ep.host("wsus-eu").unwrap().http)
        .await
        .unwrap();
    let mut s = logon(conn, "LAB\\operator", "op-secret", true)
        .await
        .map_err(|r| r.status)
        .unwrap();
    assert_eq!(s.run("whoami").await.exit_code, Some(0));
    let conn = http::Conn::plain(ep.host("wsus-eu").unwrap().http)
        .await
        .unwrap();
    let refused = logon(conn, USER, "nope", true).await.err().unwrap();
    assert_eq!(refused.status, 401);
    ep.shutdown().await;
}

#[tokio::test]
async fn a_receive_past_the_operation_timeout_gets_timed_out_then_done() {
    let ep = start("wsus-to", 3).await;
    let mut s = http_logon(&ep, "wsus-to").await;
    let shell = s.create_shell().await;
    let id = s.start(&shell, &ps_line("slow\nsleep 1300\nexit 0")).await;
    let started = Instant::now();
    let (out, timeouts, _) = s.receive_all(&shell, &id, "PT0.5S").await;
    assert!(timeouts >= 2, "{timeouts} TimedOut faults");
    assert!(started.elapsed() >= Duration::from_millis(1300));
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.stdout, b"wsus-to: slow\r\n");
    assert!(ep.counters("wsus-to").unwrap().timed_out >= 2);
    ep.shutdown().await;
}

#[tokio::test]
async fn large_output_is_split_over_several_receives() {
    let ep = start("wsus-big", 4).await;
    let mut s = http_logon(&ep, "wsus-big").await;
    let shell = s.create_shell().await;
    let id = s.start(&shell, &ps_line("big\nbig 300000")).await;
    let (out, _, replies) = s.receive_all(&shell, &id, "PT20S").await;
    assert!(replies >= 3, "{replies} Receive replies");
    assert!(
        out.stream_elements >= 30,
        "{} stream elements",
        out.stream_elements
    );
    let header = b"wsus-big: big\r\n";
    assert_eq!(out.stdout.len(), header.len() + 300_000);
    assert!(out.stdout.starts_with(header));
    assert!(
        out.stdout[header.len()..]
            .chunks(16)
            .all(|c| b"0123456789abcdef".starts_with(c))
    );
    ep.shutdown().await;
}

#[tokio::test]
async fn the_sixth_shell_of_a_user_is_refused() {
    let ep = start("wsus-quota", 5).await;
    let mut s = http_logon(&ep, "wsus-quota").await;
    let mut shells = Vec::new();
    for _ in 0..5 {
        shells.push(s.create_shell().await);
    }
    let env = create();
    let r = s.soap(&env.xml).await;
    assert_eq!(r.status, 500);
    assert_eq!(fault_code(&r.xml), Some(2_150_859_173));
    assert!(r.xml.contains("w:QuotaLimit"));
    assert!(r.xml.contains("maximum number of 5 concurrent shells"));
    assert_eq!(text_of(&r.xml, "RelatesTo").unwrap(), env.message_id);

    // Another user has a quota of their own; deleting one shell frees a place.
    let conn = http::Conn::plain(ep.host("wsus-quota").unwrap().http)
        .await
        .unwrap();
    let mut other = logon(conn, "operator", "op-secret", false)
        .await
        .map_err(|r| r.status)
        .unwrap();
    other.create_shell().await;
    let r = s.soap(&delete(&shells[0]).xml).await;
    assert_eq!(r.status, 200);
    s.create_shell().await;
    ep.shutdown().await;
}

#[tokio::test]
async fn a_request_past_max_envelope_size_gets_413_and_the_session_goes_on() {
    let ep = start("wsus-413", 6).await;
    let mut s = http_logon(&ep, "wsus-413").await;
    let shell = s.create_shell().await;
    let id = s
        .start(&shell, &ps_line("$s=[Console]::In.ReadToEnd(); iex $s"))
        .await;
    // Over MaxEnvelopeSize (150 KB) but within the framing slack: read, unsealed, refused.
    let r = s
        .raw(
            send(&shell, &id, &vec![b'x'; 115 * 1024], false)
                .xml
                .as_bytes(),
        )
        .await;
    assert_eq!(r.status, 413);
    // The sealing stayed in step: the next sealed request is understood.
    let r = s
        .soap(&send(&shell, &id, &B64.encode("exit 7").into_bytes(), true).xml)
        .await;
    assert_eq!(r.status, 200, "{}", r.xml);
    let (out, _, _) = s.receive_all(&shell, &id, "PT20S").await;
    assert_eq!(out.exit_code, Some(7));

    // A configured limit applies as well.
    let small = serve(
        vec![host("wsus-small", 7)],
        EndpointConfig {
            max_envelope_kb: 8,
            ..config()
        },
        stub_host(),
    )
    .await
    .unwrap();
    let mut s = http_logon(&small, "wsus-small").await;
    let shell = s.create_shell().await;
    let r = s
        .raw(command(&shell, &"x".repeat(9 * 1024)).xml.as_bytes())
        .await;
    assert_eq!(r.status, 413);
    ep.shutdown().await;
    small.shutdown().await;
}

#[tokio::test]
async fn an_unknown_shell_or_command_gets_the_windows_fault() {
    let ep = start("wsus-sel", 8).await;
    let mut s = http_logon(&ep, "wsus-sel").await;
    let bogus = "11111111-2222-3333-4444-555555555555";
    let env = command(bogus, "powershell -encodedcommand AA==");
    let r = s.soap(&env.xml).await;
    assert_eq!(r.status, 500);
    assert_eq!(fault_code(&r.xml), Some(2_150_858_843));
    assert!(r.xml.contains("w:InvalidSelectors"));
    assert!(r.xml.contains(&format!(
        "ShellId {bogus} failed because the shell was not found"
    )));
    assert!(r.xml.contains(r#"Machine="127.0.77.8""#));
    assert_eq!(text_of(&r.xml, "RelatesTo").unwrap(), env.message_id);

    let shell = s.create_shell().await;
    let r = s.soap(&receive(&shell, bogus, "PT1S").xml).await;
    assert_eq!(r.status, 500);
    assert_eq!(fault_code(&r.xml), Some(2_150_858_843));
    assert!(r.xml.contains("command identifier that does not exist"));
    ep.shutdown().await;
}

#[tokio::test]
async fn signals_stop_commands_and_delete_ends_shells() {
    let ep = start("wsus-sig", 9).await;
    let mut s = http_logon(&ep, "wsus-sig").await;
    let shell = s.create_shell().await;

    // ctrl_c stops a running command: Done with STATUS_CONTROL_C_EXIT.
    let id = s.start(&shell, &ps_line("long\nsleep 60000")).await;
    let r = s.soap(&signal(&shell, &id, "ctrl_c").xml).await;
    assert_eq!(r.status, 200, "{}", r.xml);
    let (out, _, _) = s.receive_all(&shell, &id, "PT5S").await;
    assert_eq!(out.exit_code, Some(-1_073_741_510));

    // terminate forgets the command.
    let id = s.start(&shell, &ps_line("long\nsleep 60000")).await;
    let r = s.soap(&signal(&shell, &id, "terminate").xml).await;
    assert_eq!(r.status, 200);
    let r = s.soap(&receive(&shell, &id, "PT1S").xml).await;
    assert_eq!(r.status, 500);
    assert_eq!(fault_code(&r.xml), Some(2_150_858_843));

    // Delete ends the shell (and a command still running in it); a second Delete faults.
    s.start(&shell, &ps_line("long\nsleep 60000")).await;
    assert_eq!(s.soap(&delete(&shell).xml).await.status, 200);
    let r = s.soap(&delete(&shell).xml).await;
    assert_eq!(r.status, 500);
    assert_eq!(fault_code(&r.xml), Some(2_150_858_843));
    let c = ep.counters("wsus-sig").unwrap();
    assert_eq!(
        (c.shells_created, c.shells_deleted, c.shells_open),
        (1, 1, 0)
    );
    ep.shutdown().await;
}

#[tokio::test]
async fn command_lines_are_read_as_cmd_and_powershell_would() {
    let ep = start("wsus-cmd", 10).await;
    let mut s = http_logon(&ep, "wsus-cmd").await;
    let shell = s.create_shell().await;

    let id = s.start(&shell, "ipconfig /all").await;
    let (out, _, _) = s.receive_all(&shell, &id, "PT5S").await;
    assert_eq!(out.exit_code, Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "'ipconfig' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
    );

    let long = ps_line(&"Write-Output 1;".repeat(300));
    assert!(long.len() > 8191);
    let id = s.start(&shell, &long).await;
    let (out, _, _) = s.receive_all(&shell, &id, "PT5S").await;
    assert_eq!(out.exit_code, Some(1));
    assert_eq!(out.stderr, b"The command line is too long.\r\n");

    // pywinrm's form.
    let id = s
        .start(
            &shell,
            &format!(
                "powershell -encodedcommand {}",
                encode_ps("Get-Service\nexit 4")
            ),
        )
        .await;
    let (out, _, _) = s.receive_all(&shell, &id, "PT5S").await;
    assert_eq!(
        (out.exit_code, out.stdout.as_slice()),
        (Some(4), &b"wsus-cmd: Get-Service\r\n"[..])
    );

    // The stdin bootstrap: nothing runs before End="true"; then the decoded stdin runs.
    let boot = "$s=[Console]::In.ReadToEnd(); iex ([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($s)))";
    let id = s.start(&shell, &ps_line(boot)).await;
    let script = B64.encode(format!(
        "# the real script\n{}\nexit 9",
        "Write-Output 'x'\n".repeat(2000)
    ));
    let (first, second) = script.as_bytes().split_at(script.len() / 2);
    assert_eq!(
        s.soap(&send(&shell, &id, first, false).xml).await.status,
        200
    );
    let r = s.soap(&receive(&shell, &id, "PT0.3S").xml).await;
    assert_eq!(
        fault_code(&r.xml),
        Some(2_150_858_793),
        "still waiting for stdin"
    );
    assert_eq!(
        s.soap(&send(&shell, &id, second, true).xml).await.status,
        200
    );
    let (out, _, _) = s.receive_all(&shell, &id, "PT5S").await;
    assert_eq!(out.exit_code, Some(9));
    assert_eq!(out.stdout, b"wsus-cmd: # the real script\r\n");
    ep.shutdown().await;
}

#[tokio::test]
async fn unencrypted_soap_over_http_is_refused_with_401() {
    let ep = start("wsus-plain", 11).await;
    let mut s = http_logon(&ep, "wsus-plain").await;
    let r = s
        .conn
        .post(
            &[("Content-Type", "application/soap+xml;charset=UTF-8")],
            create().xml.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.headers_named("WWW-Authenticate"), vec!["Negotiate"]);
    // The context is gone: even a sealed request now needs a new logon.
    assert_eq!(s.raw(create().xml.as_bytes()).await.status, 401);

    // Without any logon: 401 as well.
    let mut conn = http::Conn::plain(ep.host("wsus-plain").unwrap().http)
        .await
        .unwrap();
    let r = conn
        .post(
            &[("Content-Type", "application/soap+xml;charset=UTF-8")],
            create().xml.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    ep.shutdown().await;
}

#[tokio::test]
async fn a_failed_decrypt_drops_the_context() {
    let ep = start("wsus-rc4", 12).await;
    let mut s = http_logon(&ep, "wsus-rc4").await;
    let mut body = s.client.as_mut().unwrap().seal(create().xml.as_bytes());
    let n = body.len();
    body[n - 40] ^= 0xff; // a flipped bit in the sealed bytes
    let r = s
        .conn
        .post(&[("Content-Type", ENCRYPTED)], &body)
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(s.raw(create().xml.as_bytes()).await.status, 401);
    // A new logon on the same connection works.
    let conn = s.conn;
    let mut s = logon(conn, USER, PASSWORD, false)
        .await
        .map_err(|r| r.status)
        .unwrap();
    s.create_shell().await;
    ep.shutdown().await;
}

#[tokio::test]
async fn basic_is_refused_over_http_and_accepted_over_https() {
    let ep = start("wsus-tls", 13).await;
    let addrs = ep.host("wsus-tls").unwrap().clone();
    let basic = B64.encode(format!("{USER}:{PASSWORD}"));

    let mut conn = http::Conn::plain(addrs.http).await.unwrap();
    let r = conn
        .post(
            &[("Authorization", &format!("Basic {basic}"))],
            create().xml.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.headers_named("WWW-Authenticate"), vec!["Negotiate"]);

    let mut conn = http::Conn::tls(addrs.https.unwrap(), ep.ca_pem())
        .await
        .unwrap();
    let r = conn.post(&[], b"").await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        r.headers_named("WWW-Authenticate"),
        vec!["Negotiate", "Basic realm=\"WSMAN\""]
    );
    let mut s = Session {
        conn,
        client: None,
        basic: Some(basic),
        final_token: None,
    };
    let out = s.run("over TLS").await;
    assert_eq!(out.stdout, b"wsus-tls: over TLS\r\n");

    let wrong = B64.encode(format!("{USER}:wrong"));
    let r = s
        .conn
        .post(
            &[("Authorization", &format!("Basic {wrong}"))],
            create().xml.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    // NTLM over HTTPS needs no sealing: plain SOAP on the logged-on connection.
    let conn = http::Conn::tls(addrs.https.unwrap(), ep.ca_pem())
        .await
        .unwrap();
    let mut s = logon(conn, USER, PASSWORD, false)
        .await
        .map_err(|r| r.status)
        .unwrap();
    let r = s
        .conn
        .post(
            &[("Content-Type", "application/soap+xml;charset=UTF-8")],
            create().xml.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(ep.counters("wsus-tls").unwrap().auth_failures, 2);
    ep.shutdown().await;
}

#[tokio::test]
async fn a_wrong_password_gets_401() {
    let ep = start("wsus-pw", 14).await;
    let conn = http::Conn::plain(ep.host("wsus-pw").unwrap().http)
        .await
        .unwrap();
    let r = logon(conn, USER, "not-the-password", false)
        .await
        .err()
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.headers_named("WWW-Authenticate"), vec!["Negotiate"]);
    assert_eq!(ep.counters("wsus-pw").unwrap().auth_failures, 1);
    ep.shutdown().await;
}

/// Hole 1: sspi's acceptor trusts the MIC to prove the password; without a MIC it accepts any
/// password. The endpoint recomputes the NTLMv2 proof itself.
#[tokio::test]
async fn a_mic_stripped_authenticate_with_a_wrong_password_gets_401() {
    let ep = start("wsus-mic", 15).await;
    let addr = ep.host("wsus-mic").unwrap().http;
    let status = crafted_logon(addr, |ch| {
        craft_authenticate(ch, USER, "", "wrong-password", false)
    })
    .await;
    assert_eq!(status, 401);
    // The same hand-made message with the right password is accepted: it is the password that
    // is refused, not the shape of the message.
    let status = crafted_logon(addr, |ch| {
        craft_authenticate(ch, USER, "WORKGROUP", PASSWORD, false)
    })
    .await;
    assert_eq!(status, 200);
    // NTLMv1-sized responses are refused outright.
    let status = crafted_logon(addr, |ch| craft_authenticate(ch, USER, "", PASSWORD, true)).await;
    assert_eq!(status, 401);
    assert_eq!(ep.counters("wsus-mic").unwrap().auth_failures, 2);
    ep.shutdown().await;

    // What the check guards against: sspi alone takes the wrong password.
    use sspi::{BufferType, DataRepresentation, SecurityBuffer, ServerRequestFlags, Sspi};
    let mut server = sspi::Ntlm::new();
    let mut client = ntlm_client::Client::new(USER, PASSWORD, false);
    let (_, negotiate) = client.step(None);
    let accept = |server: &mut sspi::Ntlm, token: Vec<u8>| {
        let mut creds = Some(sspi::AuthIdentityBuffers::from_utf8(USER, "", PASSWORD));
        let mut input = vec![SecurityBuffer::new(token, BufferType::Token)];
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let status = server
            .accept_security_context()
            .with_credentials_handle(&mut creds)
            .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
            .with_target_data_representation(DataRepresentation::Native)
            .with_input(&mut input)
            .with_output(&mut output)
            .execute(server)
            .unwrap()
            .resolve_to_result()
            .unwrap()
            .status;
        (status, std::mem::take(&mut output[0].buffer))
    };
    let (_, challenge) = accept(&mut server, negotiate);
    let forged = craft_authenticate(&challenge, USER, "", "wrong-password", false);
    accept(&mut server, forged);
    assert!(
        server.complete_auth_token(&mut []).is_ok(),
        "sspi 0.23.1 accepts a MIC-less wrong password; if this changes, revisit the endpoint's own check"
    );
}

/// Hole 2: sspi's acceptor ignores the user name. The endpoint picks the account by it.
#[tokio::test]
async fn the_right_password_for_the_wrong_user_gets_401() {
    let ep = start("wsus-user", 16).await;
    let addr = ep.host("wsus-user").unwrap().http;
    for spnego in [false, true] {
        let conn = http::Conn::plain(addr).await.unwrap();
        let r = logon(conn, "intruder", PASSWORD, spnego)
            .await
            .err()
            .unwrap();
        assert_eq!(r.status, 401, "spnego={spnego}");
    }
    let status = crafted_logon(addr, |ch| {
        craft_authenticate(ch, "guest", "", PASSWORD, false)
    })
    .await;
    assert_eq!(status, 401);
    // Every qualification of the right name is accepted.
    for name in [
        "administrator",
        "WSUS-USER\\Administrator",
        "Administrator@lab.example",
    ] {
        let conn = http::Conn::plain(addr).await.unwrap();
        assert!(logon(conn, name, PASSWORD, false).await.is_ok(), "{name}");
    }
    assert_eq!(ep.counters("wsus-user").unwrap().auth_failures, 3);
    ep.shutdown().await;
}

#[tokio::test]
async fn refused_connections_drop_the_host_and_bring_it_back() {
    let ep = start("wsus-down", 17).await;
    let addr = ep.host("wsus-down").unwrap().http;
    let faults = ep.faults("wsus-down").unwrap();
    let mut s = http_logon(&ep, "wsus-down").await;
    let shell = s.create_shell().await;
    let id = s.start(&shell, &ps_line("slow\nsleep 400")).await;

    faults.set_refuse_connections(true);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let body = s
        .client
        .as_mut()
        .unwrap()
        .seal(receive(&shell, &id, "PT5S").xml.as_bytes());
    assert!(
        s.conn
            .post(&[("Content-Type", ENCRYPTED)], &body)
            .await
            .is_err(),
        "open connection dropped"
    );
    let err = http::Conn::plain(addr)
        .await
        .err()
        .expect("connect refused");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(
        http::Conn::tls(ep.host("wsus-down").unwrap().https.unwrap(), ep.ca_pem())
            .await
            .is_err()
    );

    faults.set_refuse_connections(false);
    let mut s = {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(conn) = http::Conn::plain(addr).await {
                break logon(conn, USER, PASSWORD, false)
                    .await
                    .map_err(|r| r.status)
                    .unwrap();
            }
            assert!(Instant::now() < deadline, "listening again");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // The shell survived the outage.
    let (out, _, _) = s.receive_all(&shell, &id, "PT5S").await;
    assert_eq!(out.stdout, b"wsus-down: slow\r\n");
    ep.shutdown().await;
}

#[tokio::test]
async fn injected_http_500s_are_counted_and_seeded() {
    let ep = start("wsus-500", 18).await;
    let faults = ep.faults("wsus-500").unwrap();
    let mut s = http_logon(&ep, "wsus-500").await;
    faults.fail_next_requests(2);
    assert_eq!(s.raw(create().xml.as_bytes()).await.status, 500);
    assert_eq!(s.raw(create().xml.as_bytes()).await.status, 500);
    s.create_shell().await; // the connection and its sealing are intact
    assert_eq!(ep.counters("wsus-500").unwrap().injected_errors, 2);
    ep.shutdown().await;

    // With a probability, the sequence of failures depends on the seed only.
    async fn statuses(seed: u64) -> Vec<u16> {
        let ep = serve(
            vec![host("wsus-p", 19)],
            EndpointConfig { seed, ..config() },
            stub_host(),
        )
        .await
        .unwrap();
        let mut s = http_logon(&ep, "wsus-p").await;
        let shell = s.create_shell().await;
        let id = s
            .start(&shell, &ps_line("$s=[Console]::In.ReadToEnd()"))
            .await;
        ep.faults("wsus-p").unwrap().set_failure_probability(0.5);
        let mut out = Vec::new();
        for _ in 0..24 {
            let env = send(&shell, &id, b"data", false);
            out.push(s.raw(env.xml.as_bytes()).await.status);
        }
        ep.shutdown().await;
        out
    }
    let a = statuses(42).await;
    assert_eq!(a, statuses(42).await);
    assert!(a.contains(&500), "{a:?}");
    assert!(a.iter().any(|s| *s != 500), "{a:?}");
    assert_ne!(a, statuses(43).await);
}

#[tokio::test]
async fn a_timeout_storm_comes_before_each_answer() {
    let ep = start("wsus-storm", 20).await;
    ep.faults("wsus-storm").unwrap().set_timeout_storm(3);
    let mut s = http_logon(&ep, "wsus-storm").await;
    let shell = s.create_shell().await;
    let id = s.start(&shell, &ps_line("stormy\nexit 2")).await;
    let started = Instant::now();
    let (out, timeouts, replies) = s.receive_all(&shell, &id, "PT20S").await;
    assert_eq!((timeouts, replies), (3, 1));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "storm faults answer at once"
    );
    assert_eq!(out.exit_code, Some(2));
    assert_eq!(ep.counters("wsus-storm").unwrap().timed_out, 3);
    ep.shutdown().await;
}

#[tokio::test]
async fn rejected_credentials_and_latency_faults() {
    let ep = start("wsus-rej", 21).await;
    let faults = ep.faults("wsus-rej").unwrap();
    let mut s = http_logon(&ep, "wsus-rej").await;
    faults.set_reject_credentials(true);
    let conn = http::Conn::plain(ep.host("wsus-rej").unwrap().http)
        .await
        .unwrap();
    assert_eq!(
        logon(conn, USER, PASSWORD, false)
            .await
            .err()
            .unwrap()
            .status,
        401
    );
    // An established logon keeps working.
    s.create_shell().await;
    faults.set_reject_credentials(false);

    faults.set_latency(Duration::from_millis(300));
    let started = Instant::now();
    s.create_shell().await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    faults.clear();
    ep.shutdown().await;
}

#[tokio::test]
async fn hosts_listen_on_their_own_addresses_and_shutdown_drains() {
    let hosts = vec![host("wsus-a", 30), host("wsus-b", 31)];
    let ep = serve(hosts, config(), stub_host()).await.unwrap();
    for (name, last) in [("wsus-a", 30u8), ("wsus-b", 31)] {
        let addrs = ep.host(name).unwrap();
        assert_eq!(addrs.http.ip(), IpAddr::V4(Ipv4Addr::new(127, 0, 77, last)));
        assert_eq!(addrs.https.unwrap().ip(), addrs.http.ip());
        assert_ne!(addrs.http.port(), 0);
        assert_eq!(addrs.http_url(), format!("http://{}/wsman", addrs.http));
        let mut s = http_logon(&ep, name).await;
        assert_eq!(
            s.run("hostname").await.stdout,
            format!("{name}: hostname\r\n").into_bytes()
        );
    }
    assert!(ep.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));

    // Other paths and methods.
    let mut conn = http::Conn::plain(ep.host("wsus-a").unwrap().http)
        .await
        .unwrap();
    assert_eq!(
        conn.request("POST", "/other", &[], b"")
            .await
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        conn.request("GET", "/wsman", &[], b"")
            .await
            .unwrap()
            .status,
        405
    );

    // A Receive waiting on a long command does not hold shutdown up.
    let mut s = http_logon(&ep, "wsus-a").await;
    let shell = s.create_shell().await;
    let id = s.start(&shell, &ps_line("long\nsleep 60000")).await;
    let body = s
        .client
        .as_mut()
        .unwrap()
        .seal(receive(&shell, &id, "PT30S").xml.as_bytes());
    let waiting =
        tokio::spawn(async move { s.conn.post(&[("Content-Type", ENCRYPTED)], &body).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let addr = ep.host("wsus-a").unwrap().http;
    let started = Instant::now();
    ep.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let r = waiting.await.unwrap().unwrap();
    assert_eq!(r.status, 500, "the waiting Receive is answered (TimedOut)");
    assert!(
        http::Conn::plain(addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn a_host_listed_twice_or_an_address_in_use_is_an_error() {
    let err = serve(
        vec![host("dup", 40), host("DUP", 41)],
        config(),
        stub_host(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("listed twice"), "{err}");
    let first = serve(vec![host("one", 42)], config(), stub_host())
        .await
        .unwrap();
    let port = first.host("one").unwrap().http.port();
    let err = serve(
        vec![host("two", 42)],
        EndpointConfig {
            http_port: port,
            ..config()
        },
        stub_host(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("cannot listen"), "{err}");
    first.shutdown().await;
}

/// Like HTTP.sys, the listener closes a connection that does not finish its headers in time (a
/// slow-loris client), and idles past the same limit between requests.
#[tokio::test]
async fn a_client_that_sends_headers_too_slowly_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ep = serve(
        vec![host("wsus-slow", 60)],
        EndpointConfig {
            header_read_timeout: Duration::from_millis(300),
            ..config()
        },
        stub_host(),
    )
    .await
    .unwrap();
    let addr = ep.host("wsus-slow").unwrap().http;
    for partial in [&b"POST /wsman HTTP/1.1\r\nHost: x\r\n"[..], b""] {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(partial).await.unwrap();
        let started = Instant::now();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "the connection was left open");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
    }
    ep.shutdown().await;
}

/// Past MaxConnections, one more connection is answered 503 and closed; a freed slot is used
/// again.
#[tokio::test]
async fn connections_past_the_cap_are_refused_with_503() {
    use tokio::io::AsyncReadExt;
    let ep = serve(
        vec![host("wsus-busy", 61)],
        EndpointConfig {
            max_connections: 2,
            ..config()
        },
        stub_host(),
    )
    .await
    .unwrap();
    let first = http_logon(&ep, "wsus-busy").await;
    let second = http_logon(&ep, "wsus-busy").await;
    let addr = ep.host("wsus-busy").unwrap().http;
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{text}"
    );
    assert_eq!(ep.counters("wsus-busy").unwrap().connections_refused, 1);
    drop(first);
    // The slot comes back once the server has seen the close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let conn = http::Conn::plain(addr).await.unwrap();
        match logon(conn, USER, PASSWORD, false).await {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(r) => panic!("no slot came back: {}", r.status),
        }
    }
    drop(second);
    ep.shutdown().await;
}

/// Extended Protection (CbtHardeningLevel=Strict): over HTTPS an NTLM logon without the channel
/// binding of the listener's certificate is refused; over HTTP nothing changes. (This client
/// sends no binding; the project's client does, see tests/ops_over_winrm.rs.)
#[tokio::test]
async fn extended_protection_refuses_an_unbound_ntlm_logon_over_https() {
    let ep = start("wsus-epa", 62).await;
    ep.faults("wsus-epa").unwrap().set_extended_protection(true);
    let addrs = ep.host("wsus-epa").unwrap().clone();
    for spnego in [false, true] {
        let conn = http::Conn::tls(addrs.https.unwrap(), ep.ca_pem())
            .await
            .unwrap();
        let refused = logon(conn, USER, PASSWORD, spnego)
            .await
            .err()
            .map(|r| r.status);
        assert_eq!(refused, Some(401), "spnego {spnego}");
    }
    let mut s = http_logon(&ep, "wsus-epa").await;
    assert_eq!(s.soap(&create().xml).await.status, 200);
    assert_eq!(ep.counters("wsus-epa").unwrap().auth_failures, 2);
    ep.shutdown().await;
}
