//! Kerberos for the WinRM client, around `sspi`: where the KDC of a logon is, the KDC exchange
//! over TCP, and what a KDC's or a host's KRB-ERROR says, as messages that name the cause.
//!
//! sspi builds every KDC message itself and *yields* it (a [`NetworkRequest`], already framed
//! with its 4-byte length for TCP); [`KdcClient`] carries it to the KDC and back. That client also
//! keeps what it saw (which KDC could not be reached, which error codes the KDC answered), so the
//! transport can say why a logon failed from facts, not from the wording of sspi's messages.
//!
//! No DNS SRV lookup happens here: the KDC comes from the inventory, or from `KRB5_CONFIG`'s
//! `[realms]` entry of the realm (`/etc/krb5.conf` when unset), read by sspi.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::Duration;

use sspi::network_client::NetworkClient;
use sspi::{ErrorKind, NetworkRequest};

/// The KDC port when none is given.
pub(crate) const DEFAULT_KDC_PORT: u16 = 88;
/// The largest KDC reply accepted (a ticket with a large PAC is some kilobytes).
const MAX_KDC_REPLY: usize = 1 << 20;
/// How long one KDC may take to answer.
const KDC_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// RFC 4120 7.5.9 error codes that wsusfix names.
pub(crate) mod code {
    pub const C_PRINCIPAL_UNKNOWN: i32 = 6;
    pub const S_PRINCIPAL_UNKNOWN: i32 = 7;
    pub const POLICY: i32 = 12;
    pub const ETYPE_NOSUPP: i32 = 14;
    pub const CLIENT_REVOKED: i32 = 18;
    pub const KEY_EXPIRED: i32 = 23;
    pub const PREAUTH_FAILED: i32 = 24;
    pub const PREAUTH_REQUIRED: i32 = 25;
    pub const AP_ERR_BAD_INTEGRITY: i32 = 31;
    pub const AP_ERR_TKT_EXPIRED: i32 = 32;
    pub const AP_ERR_TKT_NYV: i32 = 33;
    pub const AP_ERR_REPEAT: i32 = 34;
    pub const AP_ERR_SKEW: i32 = 37;
    pub const AP_ERR_MODIFIED: i32 = 41;
    pub const WRONG_REALM: i32 = 68;
}

/// The RFC 4120 name of an error code.
pub(crate) fn code_name(c: i32) -> &'static str {
    match c {
        code::C_PRINCIPAL_UNKNOWN => "KDC_ERR_C_PRINCIPAL_UNKNOWN",
        code::S_PRINCIPAL_UNKNOWN => "KDC_ERR_S_PRINCIPAL_UNKNOWN",
        code::POLICY => "KDC_ERR_POLICY",
        code::ETYPE_NOSUPP => "KDC_ERR_ETYPE_NOSUPP",
        code::CLIENT_REVOKED => "KDC_ERR_CLIENT_REVOKED",
        code::KEY_EXPIRED => "KDC_ERR_KEY_EXPIRED",
        code::PREAUTH_FAILED => "KDC_ERR_PREAUTH_FAILED",
        code::PREAUTH_REQUIRED => "KDC_ERR_PREAUTH_REQUIRED",
        code::AP_ERR_BAD_INTEGRITY => "KRB_AP_ERR_BAD_INTEGRITY",
        code::AP_ERR_TKT_EXPIRED => "KRB_AP_ERR_TKT_EXPIRED",
        code::AP_ERR_TKT_NYV => "KRB_AP_ERR_TKT_NYV",
        code::AP_ERR_REPEAT => "KRB_AP_ERR_REPEAT",
        code::AP_ERR_SKEW => "KRB_AP_ERR_SKEW",
        code::AP_ERR_MODIFIED => "KRB_AP_ERR_MODIFIED",
        code::WRONG_REALM => "KDC_ERR_WRONG_REALM",
        _ => "KRB_ERR",
    }
}

/// A KDC address: host name or IP, and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KdcAddr {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for KdcAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl KdcAddr {
    /// Parses `host`, `host:port`, `[v6]:port`, or a `tcp://` / `udp://` URL of one. UDP
    /// addresses are used over TCP (every KDC listens on both; TCP carries large tickets).
    pub fn parse(text: &str) -> Result<KdcAddr, String> {
        let bad = || format!("`{text}` is not a KDC address (HOST or HOST:PORT)");
        let rest = text.trim();
        let rest = rest
            .strip_prefix("tcp://")
            .or_else(|| rest.strip_prefix("udp://"))
            .unwrap_or(rest);
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains("://") || rest.contains('/') {
            return Err(bad());
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err(bad()),
            }
        } else if rest.matches(':').count() > 1 {
            // A bare IPv6 address.
            (rest, None)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
            None => DEFAULT_KDC_PORT,
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '@') {
            return Err(bad());
        }
        Ok(KdcAddr {
            host: host.to_string(),
            port,
        })
    }

    /// The URL sspi is given (its requests then name this KDC).
    pub fn url(&self) -> String {
        format!("tcp://{self}")
    }
}

/// Whether a user name is a user principal name, `user@suffix` (pure: no file is read).
pub(crate) fn is_upn(username: &str) -> bool {
    username
        .trim()
        .rsplit_once('@')
        .is_some_and(|(user, suffix)| {
            !user.is_empty() && !suffix.is_empty() && !user.contains('\\')
        })
}

/// The realm of a user principal name, as sspi computes it for the AS-REQ: the UPN suffix mapped
/// through `KRB5_CONFIG`'s `[domain_realm]`, else in capitals. `None` for other name forms.
/// Reads `KRB5_CONFIG`.
pub(crate) fn realm_of(username: &str) -> Option<String> {
    is_upn(username)
        .then(|| sspi::kerberos::client::principal::get_client_principal_realm(username.trim(), ""))
}

/// The KDC of `realm` that `KRB5_CONFIG` (or `/etc/krb5.conf`) names, through sspi's own lookup
/// (`SSPI_KDC_URL_<REALM>` and `SSPI_KDC_URL` first). No DNS.
pub(crate) fn configured_kdc(realm: &str) -> Option<KdcAddr> {
    let url = sspi::detect_kdc_url(realm)?;
    if !matches!(url.scheme(), "tcp" | "udp") {
        return None;
    }
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    Some(KdcAddr {
        host: host.to_string(),
        port: url.port().unwrap_or(DEFAULT_KDC_PORT),
    })
}

/// What the KDC client saw during one logon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KdcLog {
    /// Requests answered.
    pub exchanges: u64,
    /// The KDC that could not be reached, and why (the last failure).
    pub unreachable: Option<(String, String)>,
    /// Every KRB-ERROR the KDC answered, in order.
    pub errors: Vec<KrbError>,
}

impl KdcLog {
    /// The error that explains a failed exchange: the last one other than the expected
    /// "pre-authentication required" (a skew error that sspi recovered from is followed by others
    /// or by success).
    pub fn decisive_error(&self) -> Option<&KrbError> {
        self.errors
            .iter()
            .rev()
            .find(|e| e.code != code::PREAUTH_REQUIRED)
    }
}

/// The KDC exchange over TCP, for sspi's generator. Blocking: run it off the async runtime.
pub(crate) struct KdcClient {
    kdc: KdcAddr,
    connect_timeout: Duration,
    log: Mutex<KdcLog>,
}

impl std::fmt::Debug for KdcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KdcClient")
            .field("kdc", &self.kdc)
            .finish_non_exhaustive()
    }
}

impl KdcClient {
    pub fn new(kdc: KdcAddr, connect_timeout: Duration) -> KdcClient {
        KdcClient {
            kdc,
            connect_timeout,
            log: Mutex::new(KdcLog::default()),
        }
    }

    /// The KDC.
    pub fn kdc(&self) -> &KdcAddr {
        &self.kdc
    }

    /// What happened so far.
    pub fn log(&self) -> KdcLog {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn exchange(&self, addr: &str, data: &[u8]) -> Result<Vec<u8>, String> {
        let addrs: Vec<_> = addr
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve it: {e}"))?
            .collect();
        let mut last = "no address".to_string();
        for sa in addrs {
            let mut s = match TcpStream::connect_timeout(&sa, self.connect_timeout) {
                Ok(s) => s,
                Err(e) => {
                    last = lower_first(&e.to_string());
                    continue;
                }
            };
            s.set_read_timeout(Some(KDC_READ_TIMEOUT)).ok();
            s.set_write_timeout(Some(KDC_READ_TIMEOUT)).ok();
            s.write_all(data).map_err(|e| format!("sending: {e}"))?;
            let mut len = [0u8; 4];
            s.read_exact(&mut len).map_err(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    format!("no answer within {} s", KDC_READ_TIMEOUT.as_secs())
                }
                _ => format!("reading the answer: {e}"),
            })?;
            let body = u32::from_be_bytes(len) as usize;
            if body > MAX_KDC_REPLY {
                return Err(format!(
                    "it answered with {body} bytes, more than a KDC sends"
                ));
            }
            let mut reply = len.to_vec();
            reply.resize(4 + body, 0);
            s.read_exact(&mut reply[4..])
                .map_err(|e| format!("reading the answer: {e}"))?;
            return Ok(reply);
        }
        Err(last)
    }
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl NetworkClient for KdcClient {
    fn send(&self, request: &NetworkRequest) -> sspi::Result<Vec<u8>> {
        let unreachable = |why: String| {
            if let Ok(mut log) = self.log.lock() {
                log.unreachable = Some((self.kdc.to_string(), why.clone()));
            }
            sspi::Error::new(
                ErrorKind::NoAuthenticatingAuthority,
                format!("KDC {}: {why}", self.kdc),
            )
        };
        if !matches!(
            request.protocol,
            sspi::NetworkProtocol::Tcp | sspi::NetworkProtocol::Udp
        ) {
            return Err(unreachable(format!(
                "KDC proxies ({:?}) are not supported",
                request.protocol
            )));
        }
        // The data is framed for TCP (4-byte big-endian length) whatever the URL says: sspi
        // frames by the URL's scheme, and the URL is always ours (tcp://).
        let addr = match (request.url.host_str(), request.url.port()) {
            (Some(h), p) => {
                let h = h.trim_start_matches('[').trim_end_matches(']');
                KdcAddr {
                    host: h.to_string(),
                    port: p.unwrap_or(DEFAULT_KDC_PORT),
                }
            }
            _ => self.kdc.clone(),
        };
        let target = if addr.host.contains(':') {
            format!("[{}]:{}", addr.host, addr.port)
        } else {
            format!("{}:{}", addr.host, addr.port)
        };
        let reply = self.exchange(&target, &request.data).map_err(unreachable)?;
        if let Ok(mut log) = self.log.lock() {
            log.exchanges += 1;
            if let Some(e) = parse_krb_error(&reply[4..]) {
                log.errors.push(e);
            }
        }
        Ok(reply)
    }
}

/// A KRB-ERROR's code and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KrbError {
    pub code: i32,
    pub text: Option<String>,
}

impl KrbError {
    /// `KRB_AP_ERR_SKEW (37)`, with the KDC's text when it sent one.
    pub fn label(&self) -> String {
        match &self.text {
            Some(t) if !t.trim().is_empty() => {
                format!("{} ({}): {}", code_name(self.code), self.code, t.trim())
            }
            _ => format!("{} ({})", code_name(self.code), self.code),
        }
    }
}

/// One DER element: (tag byte, contents, the bytes after it).
fn der(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn der_integer(content: &[u8]) -> Option<i32> {
    if content.is_empty() || content.len() > 4 {
        return None;
    }
    let negative = content[0] & 0x80 != 0;
    let mut v: i64 = if negative { -1 } else { 0 };
    for &b in content {
        v = (v << 8) | i64::from(b);
    }
    i32::try_from(v).ok()
}

/// Parses a KRB-ERROR message (`[APPLICATION 30]`, RFC 4120 5.9.1).
pub(crate) fn parse_krb_error(msg: &[u8]) -> Option<KrbError> {
    let (tag, body, _) = der(msg)?;
    if tag != 0x7e {
        return None;
    }
    let (seq_tag, mut fields, _) = der(body)?;
    if seq_tag != 0x30 {
        return None;
    }
    let mut code = None;
    let mut text = None;
    while let Some((tag, content, rest)) = der(fields) {
        match tag {
            // [6] error-code Int32
            0xa6 => {
                code = der(content)
                    .and_then(|(t, v, _)| (t == 0x02).then_some(v))
                    .and_then(der_integer)
            }
            // [11] e-text KerberosString (GeneralString)
            0xab => {
                text = der(content).map(|(_, v, _)| String::from_utf8_lossy(v).into_owned());
            }
            _ => {}
        }
        fields = rest;
    }
    Some(KrbError { code: code?, text })
}

/// The krb5 mechanism OID (1.2.840.113554.1.2.2), DER-encoded with its tag.
const KRB5_OID: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02,
];

/// The KRB-ERROR inside a token a host sent with its 401: an SPNEGO NegTokenResp (reject)
/// carrying a GSS krb5 error token, a bare GSS krb5 error token, or a bare KRB-ERROR, as Windows
/// sends when it refuses a ticket (a clock out of step, a key it does not have).
pub(crate) fn krb_error_in_token(token: &[u8]) -> Option<KrbError> {
    let (tag, body, _) = der(token)?;
    match tag {
        // NegTokenResp: [1] SEQUENCE { [0] negState, [1] supportedMech, [2] responseToken, .. }.
        // One SPNEGO layer only: what it carries is a GSS token or a KRB-ERROR, never another
        // NegTokenResp (a hostile host cannot make this recurse).
        0xa1 => {
            let (seq, mut fields, _) = der(body)?;
            if seq != 0x30 {
                return None;
            }
            while let Some((t, content, rest)) = der(fields) {
                if t == 0xa2 {
                    let (octets, inner, _) = der(content)?;
                    return (octets == 0x04).then(|| bare_krb_error(inner)).flatten();
                }
                fields = rest;
            }
            None
        }
        _ => bare_krb_error(token),
    }
}

/// A GSS krb5 error token (InitialContextToken: [APPLICATION 0] { krb5 OID, token ID 03 00
/// (KRB_ERROR, RFC 1964 1.1), KRB-ERROR }) or a bare KRB-ERROR.
fn bare_krb_error(token: &[u8]) -> Option<KrbError> {
    let (tag, body, _) = der(token)?;
    match tag {
        0x7e => parse_krb_error(token),
        0x60 => {
            let inner = body.strip_prefix(&KRB5_OID[..])?;
            let inner = inner.strip_prefix(&[0x03, 0x00][..])?;
            parse_krb_error(inner)
        }
        _ => None,
    }
}

/// Whether a KDC error says the account or its password is wrong: the KDC counted a failed
/// logon, or will refuse every one; no other host should be tried with these credentials.
pub(crate) fn refuses_credentials(code: i32) -> bool {
    matches!(
        code,
        code::PREAUTH_FAILED
            | code::C_PRINCIPAL_UNKNOWN
            | code::CLIENT_REVOKED
            | code::KEY_EXPIRED
            | code::AP_ERR_BAD_INTEGRITY
    )
}

/// What the KDC's error means for this logon, as a sentence with what to do.
pub(crate) fn explain_kdc_error(e: &KrbError, user: &str, spn: &str, realm: &str) -> String {
    let what = e.label();
    match e.code {
        code::PREAUTH_FAILED | code::AP_ERR_BAD_INTEGRITY => format!(
            "the KDC refused the password of {user} ({what}); no other host was tried with it"
        ),
        code::C_PRINCIPAL_UNKNOWN => format!(
            "the KDC of {realm} does not know the account {user} ({what}): check the user \
             principal name"
        ),
        code::CLIENT_REVOKED => format!(
            "the account {user} is disabled, locked out or outside its logon hours ({what})"
        ),
        code::KEY_EXPIRED => format!("the password of {user} has expired ({what})"),
        code::S_PRINCIPAL_UNKNOWN => format!(
            "the KDC of {realm} knows no service principal {spn} ({what}): `host:` must be the \
             name the host's SPN is registered under (setspn -L HOST shows them), lower-case"
        ),
        code::AP_ERR_SKEW => format!(
            "the clocks of this machine and the KDC of {realm} differ by more than the KDC allows \
             ({what}); fix the time service"
        ),
        code::WRONG_REALM => format!(
            "the KDC does not serve the realm {realm} ({what}): check `kerberos.kdc` or the \
             realm's entry in KRB5_CONFIG"
        ),
        code::ETYPE_NOSUPP => format!(
            "the KDC offers no encryption type wsusfix supports ({what}): the account needs AES \
             keys (AES128/AES256 Kerberos encryption enabled on the account)"
        ),
        _ => format!("the KDC of {realm} refused the logon of {user} to {spn} ({what})"),
    }
}

/// What a host's refusal of a Kerberos ticket means.
pub(crate) fn explain_acceptor_error(e: Option<&KrbError>, spn: &str) -> String {
    match e {
        Some(e) if e.code == code::AP_ERR_SKEW || e.code == code::AP_ERR_TKT_NYV => format!(
            "the host refused the Kerberos ticket for {spn}: its clock and the KDC's differ by \
             more than the allowed skew, 5 minutes by default ({}); fix the host's time service",
            e.label()
        ),
        Some(e) if e.code == code::AP_ERR_MODIFIED => format!(
            "the host cannot decrypt the Kerberos ticket for {spn} ({}): the SPN may be \
             registered to another account, or the host's key changed (setspn -Q {spn} shows \
             who holds it)",
            e.label()
        ),
        Some(e) if e.code == code::AP_ERR_REPEAT => format!(
            "the host refused the Kerberos ticket for {spn} as a replay ({})",
            e.label()
        ),
        Some(e) => format!(
            "the host refused the Kerberos ticket for {spn} ({})",
            e.label()
        ),
        None => format!(
            "the host refused the Kerberos ticket for {spn} (HTTP 401): check that `host:` is the \
             host's own name and that its account may use WinRM"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A KRB-ERROR as MIT's KDC sends it for a wrong password (captured shape, our own bytes).
    fn krb_error(code: u8, text: Option<&str>) -> Vec<u8> {
        let mut fields = Vec::new();
        let mut push = |tag: u8, inner: Vec<u8>| {
            fields.push(tag);
            fields.push(inner.len() as u8);
            fields.extend(inner);
        };
        push(0xa0, vec![0x02, 0x01, 0x05]);
        push(0xa1, vec![0x02, 0x01, 0x1e]);
        let time = b"20260101000000Z";
        let mut t = vec![0x18, time.len() as u8];
        t.extend_from_slice(time);
        push(0xa4, t);
        push(0xa5, vec![0x02, 0x01, 0x00]);
        push(0xa6, vec![0x02, 0x01, code]);
        push(
            0xa9,
            vec![0x1b, 0x08, b'L', b'A', b'B', b'.', b'T', b'E', b'S', b'T'],
        );
        if let Some(text) = text {
            let mut s = vec![0x1b, text.len() as u8];
            s.extend_from_slice(text.as_bytes());
            push(0xab, s);
        }
        let mut seq = vec![0x30, fields.len() as u8];
        seq.extend(fields);
        let mut msg = vec![0x7e, seq.len() as u8];
        msg.extend(seq);
        msg
    }

    #[test]
    fn kdc_addresses() {
        let a = KdcAddr::parse("dc01.corp.example").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("dc01.corp.example", 88));
        assert_eq!(
            KdcAddr::parse("127.0.0.1:18888").unwrap().to_string(),
            "127.0.0.1:18888"
        );
        assert_eq!(
            KdcAddr::parse("tcp://10.0.0.5:88").unwrap().host,
            "10.0.0.5"
        );
        assert_eq!(
            KdcAddr::parse("[::1]:750").unwrap().to_string(),
            "[::1]:750"
        );
        assert_eq!(KdcAddr::parse("::1").unwrap().port, 88);
        assert_eq!(
            KdcAddr::parse("[::1]:750").unwrap().url(),
            "tcp://[::1]:750"
        );
        for bad in [
            "",
            "dc:0",
            "dc:x",
            "https://kdcproxy/KdcProxy",
            "a b",
            "dc:88/x",
        ] {
            assert!(KdcAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn krb_errors_are_read_from_kdc_replies_and_tokens() {
        let msg = krb_error(24, Some("PREAUTH_FAILED"));
        let e = parse_krb_error(&msg).unwrap();
        assert_eq!(e.code, 24);
        assert_eq!(e.label(), "KDC_ERR_PREAUTH_FAILED (24): PREAUTH_FAILED");
        assert!(refuses_credentials(e.code));
        assert!(!refuses_credentials(code::S_PRINCIPAL_UNKNOWN));
        assert_eq!(krb_error_in_token(&msg), Some(e.clone()));

        // A GSS error token: 60 LEN krb5-OID 03 00 KRB-ERROR.
        let skew = krb_error(37, None);
        let mut gss = KRB5_OID.to_vec();
        gss.extend([0x03, 0x00]);
        gss.extend(&skew);
        let mut wrapped = vec![0x60, gss.len() as u8];
        wrapped.extend(&gss);
        assert_eq!(krb_error_in_token(&wrapped).unwrap().code, 37);

        // Inside an SPNEGO NegTokenResp { negState reject, responseToken }.
        let mut resp = vec![0xa0, 0x03, 0x0a, 0x01, 0x02, 0xa2];
        let mut octets = vec![0x04, wrapped.len() as u8];
        octets.extend(&wrapped);
        resp.push(octets.len() as u8);
        resp.extend(octets);
        let mut seq = vec![0x30, resp.len() as u8];
        seq.extend(resp);
        let mut token = vec![0xa1, seq.len() as u8];
        token.extend(seq);
        let e = krb_error_in_token(&token).unwrap();
        assert_eq!(e.code, code::AP_ERR_SKEW);
        assert!(explain_acceptor_error(Some(&e), "HTTP/h").contains("clock"));

        for junk in [&b""[..], b"\x7e\x05\x30", b"\xa1\x02\x30\x00", b"NTLMSSP\0"] {
            assert!(krb_error_in_token(junk).is_none());
        }
        // NegTokenResps nested in each other are not followed.
        let mut nested = token.clone();
        for _ in 0..3 {
            let mut octets = vec![0x04, nested.len() as u8];
            octets.extend(&nested);
            let mut field = vec![0xa2, octets.len() as u8];
            field.extend(octets);
            let mut seq = vec![0x30, field.len() as u8];
            seq.extend(field);
            nested = vec![0xa1, seq.len() as u8];
            nested.extend(seq);
            if nested.len() > 120 {
                break;
            }
        }
        assert!(krb_error_in_token(&nested).is_none());
    }

    #[test]
    fn the_decisive_error_skips_the_expected_ones() {
        let mut log = KdcLog::default();
        log.errors.push(KrbError {
            code: code::PREAUTH_REQUIRED,
            text: None,
        });
        assert!(log.decisive_error().is_none());
        log.errors.push(KrbError {
            code: code::S_PRINCIPAL_UNKNOWN,
            text: None,
        });
        assert_eq!(log.decisive_error().unwrap().code, 7);
        let text = explain_kdc_error(
            log.decisive_error().unwrap(),
            "wsusfix@LAB.TEST",
            "HTTP/wsus-hq.lab.test",
            "LAB.TEST",
        );
        assert!(
            text.contains("knows no service principal HTTP/wsus-hq.lab.test"),
            "{text}"
        );
    }

    #[test]
    fn realms_of_user_names() {
        assert_eq!(realm_of("wsusfix@lab.test").as_deref(), Some("LAB.TEST"));
        assert_eq!(realm_of("LAB\\wsusfix"), None);
        assert_eq!(realm_of("wsusfix"), None);
        assert_eq!(realm_of("@lab.test"), None);
        assert!(is_upn("a@b") && !is_upn("a@") && !is_upn("D\\a@b") && !is_upn("a"));
    }

    #[test]
    fn an_unreachable_kdc_is_recorded() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = KdcClient::new(
            KdcAddr::parse(&format!("127.0.0.1:{port}")).unwrap(),
            Duration::from_secs(2),
        );
        let request = NetworkRequest {
            protocol: sspi::NetworkProtocol::Tcp,
            url: format!("tcp://127.0.0.1:{port}").parse().unwrap(),
            data: vec![0, 0, 0, 1, 0x6a],
        };
        let err = client.send(&request).unwrap_err();
        assert_eq!(err.error_type, ErrorKind::NoAuthenticatingAuthority);
        let log = client.log();
        let (kdc, why) = log.unreachable.unwrap();
        assert_eq!(kdc, format!("127.0.0.1:{port}"));
        assert!(why.contains("refused"), "{why}");
    }
}
