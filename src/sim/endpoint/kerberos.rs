//! Kerberos as a WinRM listener on a domain member accepts it: the host's service keys (read from
//! an MIT keytab, as a real host has its computer account's keys), `sspi`'s acceptor for the
//! AP-REQ (inside SPNEGO, or raw krb5 as pywinrm sends it), mutual authentication (the AP-REP),
//! and refusals the way Windows sends them: HTTP 401 with a KRB-ERROR (`KRB_AP_ERR_SKEW` when the
//! host's clock and the KDC's differ by more than 5 minutes, `KRB_AP_ERR_MODIFIED` when the
//! ticket is not for a key the host has, `KRB_AP_ERR_REPEAT` for a replayed authenticator).
//!
//! The KDC is not simulated: the tickets come from a real MIT KDC (`tests/kdc/realm.sh`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sspi::kerberos::ServerProperties;
use sspi::{
    BufferType, CredentialsBuffers, DataRepresentation, KdcResolution, Kerberos, KerberosConfig,
    KerberosServerConfig, Negotiate, NegotiateConfig, SecurityBuffer, SecurityStatus,
    ServerRequestFlags, Sspi, SspiImpl,
};

/// Windows' MaxClockSkew (5 minutes).
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);
/// How long an authenticator is remembered for replay detection (twice the skew, as Windows).
const REPLAY_WINDOW: Duration = Duration::from_secs(600);

/// The krb5 mechanism OID (1.2.840.113554.1.2.2) with its DER tag and length.
const KRB5_OID: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02,
];
/// Microsoft's krb5 OID (1.2.840.48018.1.2.2), which Windows and sspi list first.
const MS_KRB5_OID: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02,
];

/// RFC 4120 error codes the acceptor answers with.
pub(crate) const KRB_AP_ERR_REPEAT: i32 = 34;
pub(crate) const KRB_AP_ERR_SKEW: i32 = 37;
pub(crate) const KRB_AP_ERR_MODIFIED: i32 = 41;

/// One key of an MIT keytab.
#[derive(Clone, PartialEq, Eq)]
pub struct KeytabEntry {
    /// The principal's components (`HTTP`, `wsus-hq.lab.test`).
    pub components: Vec<String>,
    /// Its realm.
    pub realm: String,
    /// The encryption type (17 = aes128-cts-hmac-sha1-96, 18 = aes256-cts-hmac-sha1-96).
    pub enctype: u16,
    /// The key version.
    pub kvno: u32,
    key: Vec<u8>,
}

impl std::fmt::Debug for KeytabEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeytabEntry")
            .field(
                "principal",
                &format!("{}@{}", self.components.join("/"), self.realm),
            )
            .field("enctype", &self.enctype)
            .field("kvno", &self.kvno)
            .finish_non_exhaustive()
    }
}

/// Why a keytab cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeytabError {
    /// Not readable.
    #[error("cannot read the keytab {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Not an MIT keytab of format 0x0502.
    #[error("the keytab is not an MIT keytab of version 0x0502")]
    Version,
    /// An entry runs past the end of the file or is malformed.
    #[error("the keytab is damaged at byte {0}")]
    Damaged(usize),
}

/// The keys of a keytab file (MIT format 0x0502, as `kadmin ktadd` and `ktpass` write it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keytab {
    /// Every key in the file.
    pub entries: Vec<KeytabEntry>,
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], KeytabError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(KeytabError::Damaged(self.at))?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, KeytabError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, KeytabError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, KeytabError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String, KeytabError> {
        let n = usize::from(self.u16()?);
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

impl Keytab {
    /// Reads a keytab file.
    pub fn read(path: &std::path::Path) -> Result<Keytab, KeytabError> {
        let bytes = std::fs::read(path).map_err(|e| KeytabError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Keytab::parse(&bytes)
    }

    /// Parses a keytab (https://web.mit.edu/kerberos/krb5-latest/doc/formats/keytab_file_format.html).
    pub fn parse(bytes: &[u8]) -> Result<Keytab, KeytabError> {
        if bytes.get(..2) != Some(&[0x05, 0x02]) {
            return Err(KeytabError::Version);
        }
        let mut r = Reader { buf: bytes, at: 2 };
        let mut entries = Vec::new();
        while r.at + 4 <= bytes.len() {
            let size = r.u32()? as i32;
            if size <= 0 {
                // A hole left by a removed entry (or padding).
                r.take(size.unsigned_abs() as usize)?;
                continue;
            }
            let start = r.at;
            let end = start + size as usize;
            if end > bytes.len() {
                return Err(KeytabError::Damaged(start));
            }
            let mut e = Reader {
                buf: &bytes[..end],
                at: start,
            };
            let count = e.u16()?;
            let realm = e.string()?;
            let components = (0..count)
                .map(|_| e.string())
                .collect::<Result<Vec<_>, _>>()?;
            let _name_type = e.u32()?;
            let _timestamp = e.u32()?;
            let vno8 = e.u8()?;
            let enctype = e.u16()?;
            let key_len = usize::from(e.u16()?);
            let key = e.take(key_len)?.to_vec();
            // The 32-bit kvno follows when the entry has room for it (and is non-zero).
            let kvno = match e.u32() {
                Ok(k) if k != 0 => k,
                _ => u32::from(vno8),
            };
            entries.push(KeytabEntry {
                components,
                realm,
                enctype,
                kvno,
                key,
            });
            r.at = end;
        }
        if r.at != bytes.len() {
            // Fewer than four bytes left: a size field cut short.
            return Err(KeytabError::Damaged(r.at));
        }
        Ok(Keytab { entries })
    }

    /// The keys of the service principals of `host` (`<service>/<host>`, any service), or
    /// `None` when the keytab has none.
    pub fn service_keys(&self, host: &str) -> Option<ServiceKeys> {
        let mut best: HashMap<(String, String), &KeytabEntry> = HashMap::new();
        for e in &self.entries {
            if e.components.len() != 2 || !e.components[1].eq_ignore_ascii_case(host) {
                continue;
            }
            let name = (e.components[0].clone(), e.components[1].clone());
            // sspi decrypts a ticket with the one key it has for the ticket's name: keep the
            // strongest (aes256 first, the KDC's choice) of the newest version.
            let rank = |x: &KeytabEntry| (x.kvno, x.enctype == 18);
            match best.get(&name) {
                Some(have) if rank(have) >= rank(e) => {}
                _ => {
                    best.insert(name, e);
                }
            }
        }
        if best.is_empty() {
            return None;
        }
        let mut keys: Vec<ServiceKey> = best
            .into_iter()
            .map(|((service, host), e)| ServiceKey {
                service,
                host,
                realm: e.realm.clone(),
                key: e.key.clone(),
            })
            .collect();
        keys.sort_by(|a, b| a.service.cmp(&b.service));
        Some(ServiceKeys {
            host: host.to_ascii_lowercase(),
            keys,
            replay: Mutex::new(HashMap::new()),
        })
    }
}

/// One service principal of a host and its key.
#[derive(Clone)]
struct ServiceKey {
    service: String,
    host: String,
    realm: String,
    key: Vec<u8>,
}

/// A host's Kerberos identity: the keys of its service principals, and the authenticators it
/// has seen (replay detection spans the host's connections, as Windows' replay cache does).
pub struct ServiceKeys {
    host: String,
    keys: Vec<ServiceKey>,
    replay: Mutex<HashMap<[u8; 32], Instant>>,
}

impl std::fmt::Debug for ServiceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceKeys")
            .field("principals", &self.principals())
            .finish_non_exhaustive()
    }
}

impl ServiceKeys {
    /// The service principals, e.g. `HTTP/wsus-hq.lab.test@LAB.TEST`.
    pub fn principals(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| format!("{}/{}@{}", k.service, k.host, k.realm))
            .collect()
    }

    /// The host name of the principals (lower-case).
    pub fn host(&self) -> &str {
        &self.host
    }

    fn realm(&self) -> &str {
        self.keys.first().map(|k| k.realm.as_str()).unwrap_or("")
    }

    fn server_properties(&self) -> sspi::Result<ServerProperties> {
        let first = &self.keys[0];
        let mut props = ServerProperties::new(
            &[first.service.as_str(), first.host.as_str()],
            None,
            MAX_CLOCK_SKEW,
            Some(first.key.clone().into()),
        )?;
        for k in &self.keys[1..] {
            props.add_service_key(&[k.service.as_str(), k.host.as_str()], k.key.clone().into())?;
        }
        Ok(props)
    }

    /// Records an AP-REQ; false if the same one was seen within the replay window.
    fn first_sight(&self, token: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(token).into();
        let now = Instant::now();
        let Ok(mut seen) = self.replay.lock() else {
            return true;
        };
        seen.retain(|_, at| now.duration_since(*at) < REPLAY_WINDOW);
        seen.insert(digest, now).is_none()
    }
}

/// What an initial `Negotiate` token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// NTLM: raw NTLMSSP, or SPNEGO with an NTLM mechanism token.
    Ntlm,
    /// Kerberos inside SPNEGO (Windows, sspi, pyspnego).
    SpnegoKerberos,
    /// A raw krb5 GSS token (pywinrm's kerberos transport).
    RawKerberos,
    /// Neither.
    Unknown,
}

/// Classifies an initial token (the first `Authorization: Negotiate` of a logon).
pub(crate) fn offer(token: &[u8]) -> Offer {
    if super::ntlm::find_message(token, 1).is_some() {
        return Offer::Ntlm;
    }
    if token.first() != Some(&0x60) {
        return Offer::Unknown;
    }
    // 0x60 LEN, then the mechanism OID: SPNEGO (1.3.6.1.5.5.2) or krb5.
    let header = match token.get(1) {
        Some(&b) if b & 0x80 == 0 => 2,
        Some(&b) => 2 + usize::from(b & 0x7f),
        None => return Offer::Unknown,
    };
    let after = token.get(header..).unwrap_or_default();
    if after.starts_with(&KRB5_OID) {
        return Offer::RawKerberos;
    }
    let has = |oid: &[u8]| token.windows(oid.len()).any(|w| w == oid);
    if has(&KRB5_OID) || has(&MS_KRB5_OID) {
        Offer::SpnegoKerberos
    } else {
        Offer::Unknown
    }
}

/// An established Kerberos context of one connection.
pub(crate) enum KerberosContext {
    Negotiate(Box<Negotiate>),
    Raw(Box<Kerberos>),
}

impl std::fmt::Debug for KerberosContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KerberosContext::Negotiate(_) => "KerberosContext::Negotiate",
            KerberosContext::Raw(_) => "KerberosContext::Raw",
        })
    }
}

/// A refused ticket: why (for the log) and the token for the 401.
#[derive(Debug)]
pub(crate) struct Refused {
    pub why: String,
    pub token: Vec<u8>,
}

/// A logon the acceptor took: the context, the client principal, the AP-REP token.
pub(crate) struct Accepted {
    pub context: KerberosContext,
    pub client: String,
    pub token: Vec<u8>,
}

fn accept_step<C>(ctx: &mut C, token: &[u8]) -> sspi::Result<(SecurityStatus, Vec<u8>)>
where
    C: Sspi + SspiImpl<CredentialsHandle = Option<CredentialsBuffers>>,
{
    let mut creds: Option<CredentialsBuffers> = None;
    let mut input = vec![SecurityBuffer::new(token.to_vec(), BufferType::Token)];
    let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
    let result = ctx
        .accept_security_context()
        .with_credentials_handle(&mut creds)
        .with_context_requirements(
            ServerRequestFlags::MUTUAL_AUTH
                | ServerRequestFlags::INTEGRITY
                | ServerRequestFlags::CONFIDENTIALITY
                | ServerRequestFlags::SEQUENCE_DETECT
                | ServerRequestFlags::REPLAY_DETECT,
        )
        .with_target_data_representation(DataRepresentation::Native)
        .with_input(&mut input)
        .with_output(&mut output)
        .execute(ctx)?
        .resolve_to_result()?;
    Ok((result.status, std::mem::take(&mut output[0].buffer)))
}

/// Accepts the AP-REQ in `token` with `keys`. Kerberos takes one leg: the result is a logon or a
/// refusal, never "continue".
pub(crate) fn accept(token: &[u8], kind: Offer, keys: &ServiceKeys) -> Result<Accepted, Refused> {
    let spnego = kind == Offer::SpnegoKerberos;
    let refuse = |code: i32, why: String| Refused {
        token: error_token(code, keys, spnego),
        why,
    };
    if !keys.first_sight(token) {
        return Err(refuse(
            KRB_AP_ERR_REPEAT,
            "the AP-REQ was seen before (replay)".into(),
        ));
    }
    let config = KerberosConfig {
        kdc_resolution: KdcResolution::KdcUrl(None),
        client_computer_name: keys.host.clone(),
    };
    let props = keys
        .server_properties()
        .map_err(|e| refuse(KRB_AP_ERR_MODIFIED, format!("service keys: {e}")))?;
    let stepped = if spnego {
        let server = NegotiateConfig::new(
            Box::new(KerberosServerConfig {
                kerberos_config: config,
                server_properties: props,
            }),
            Some("kerberos,!ntlm,!pku2u".into()),
            keys.host.clone(),
        );
        Negotiate::new_server(server, Vec::new()).and_then(|n| {
            let mut n = Box::new(n);
            let r = accept_step(n.as_mut(), token)?;
            Ok((KerberosContext::Negotiate(n), r))
        })
    } else {
        Kerberos::new_server_from_config(config, props).and_then(|k| {
            let mut k = Box::new(k);
            let r = accept_step(k.as_mut(), token)?;
            Ok((KerberosContext::Raw(k), r))
        })
    };
    let (mut context, (status, out)) = stepped.map_err(|e| {
        let code = if e.error_type == sspi::ErrorKind::TimeSkew {
            KRB_AP_ERR_SKEW
        } else {
            KRB_AP_ERR_MODIFIED
        };
        refuse(code, format!("{:?}: {}", e.error_type, e.description))
    })?;
    if status != SecurityStatus::Ok {
        return Err(refuse(
            KRB_AP_ERR_MODIFIED,
            format!("the acceptor wants another leg ({status:?})"),
        ));
    }
    let names = match &mut context {
        KerberosContext::Negotiate(n) => n.query_context_names(),
        KerberosContext::Raw(k) => k.query_context_names(),
    };
    let client = names
        .map(|n| n.username.inner().to_string())
        .map_err(|e| refuse(KRB_AP_ERR_MODIFIED, format!("no client name: {e}")))?;
    Ok(Accepted {
        context,
        client,
        token: out,
    })
}

/// Whether the client principal of a ticket (`user@REALM`, `user@realm`, or an enterprise name
/// `user@upnsuffix`) is `account` (`user@REALM`, `DOMAIN\user` or `user`): the user parts match
/// (case-insensitively), and the realms too when the account says one.
pub(crate) fn principal_is(client: &str, account: &str) -> bool {
    let unescape = |s: &str| s.replace("\\@", "@");
    let client = unescape(client);
    // An enterprise name may arrive as "user@suffix@REALM": the user part is before the first @.
    let (c_user, c_realm) = match client.split_once('@') {
        Some((u, rest)) => (
            u.to_string(),
            Some(rest.rsplit('@').next().unwrap_or(rest).to_string()),
        ),
        None => (client.clone(), None),
    };
    let (a_user, a_realm) = match account.rsplit_once('\\') {
        Some((_, user)) => (user, None),
        None => match account.rsplit_once('@') {
            Some((user, realm)) => (user, Some(realm)),
            None => (account, None),
        },
    };
    if c_user.is_empty() || !c_user.eq_ignore_ascii_case(a_user) {
        return false;
    }
    match (a_realm, c_realm) {
        (Some(a), Some(c)) => a.eq_ignore_ascii_case(&c),
        _ => true,
    }
}

/// DER: a tag, a length (short or long form), the contents.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn der_int(v: i32) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 3
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    tlv(0x02, &bytes[start..])
}

/// A KRB-ERROR (RFC 4120 5.9.1) from this host's service principal.
pub(crate) fn krb_error(code: i32, keys: &ServiceKeys) -> Vec<u8> {
    let now = chrono::Utc::now().format("%Y%m%d%H%M%SZ").to_string();
    let sname = match keys.keys.first() {
        Some(k) => vec![k.service.clone(), k.host.clone()],
        None => vec!["HTTP".into(), keys.host.clone()],
    };
    let names: Vec<u8> = sname.iter().flat_map(|s| tlv(0x1b, s.as_bytes())).collect();
    let principal = tlv(
        0x30,
        &[tlv(0xa0, &der_int(2)), tlv(0xa1, &tlv(0x30, &names))].concat(),
    );
    let fields = [
        tlv(0xa0, &der_int(5)),
        tlv(0xa1, &der_int(30)),
        tlv(0xa4, &tlv(0x18, now.as_bytes())),
        tlv(0xa5, &der_int(0)),
        tlv(0xa6, &der_int(code)),
        tlv(0xa9, &tlv(0x1b, keys.realm().as_bytes())),
        tlv(0xaa, &principal),
    ]
    .concat();
    tlv(0x7e, &tlv(0x30, &fields))
}

/// The token of a refusal: a GSS krb5 error token (token ID 03 00), inside an SPNEGO
/// NegTokenResp with negState `reject` when the client spoke SPNEGO.
fn error_token(code: i32, keys: &ServiceKeys, spnego: bool) -> Vec<u8> {
    let gss = tlv(
        0x60,
        &[&KRB5_OID[..], &[0x03, 0x00], &krb_error(code, keys)].concat(),
    );
    if !spnego {
        return gss;
    }
    let resp = [tlv(0xa0, &tlv(0x0a, &[0x02])), tlv(0xa2, &tlv(0x04, &gss))].concat();
    tlv(0xa1, &tlv(0x30, &resp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(realm: &str, comps: &[&str], enctype: u16, kvno: u32, key: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend((comps.len() as u16).to_be_bytes());
        e.extend((realm.len() as u16).to_be_bytes());
        e.extend(realm.as_bytes());
        for c in comps {
            e.extend((c.len() as u16).to_be_bytes());
            e.extend(c.as_bytes());
        }
        e.extend(1u32.to_be_bytes()); // NT_PRINCIPAL
        e.extend(0u32.to_be_bytes()); // timestamp
        e.push(kvno as u8);
        e.extend(enctype.to_be_bytes());
        e.extend((key.len() as u16).to_be_bytes());
        e.extend(key);
        e.extend(kvno.to_be_bytes());
        let mut out = (e.len() as u32).to_be_bytes().to_vec();
        out.extend(e);
        out
    }

    fn keytab() -> Vec<u8> {
        let mut kt = vec![0x05, 0x02];
        kt.extend(entry(
            "LAB.TEST",
            &["HTTP", "wsus-hq.lab.test"],
            17,
            2,
            &[1; 16],
        ));
        kt.extend(entry(
            "LAB.TEST",
            &["HTTP", "wsus-hq.lab.test"],
            18,
            2,
            &[2; 32],
        ));
        // A hole, then an older key and another host.
        kt.extend((-8i32).to_be_bytes());
        kt.extend([0u8; 8]);
        kt.extend(entry(
            "LAB.TEST",
            &["HTTP", "wsus-hq.lab.test"],
            18,
            1,
            &[3; 32],
        ));
        kt.extend(entry(
            "LAB.TEST",
            &["WSMAN", "wsus-hq.lab.test"],
            18,
            2,
            &[4; 32],
        ));
        kt.extend(entry(
            "LAB.TEST",
            &["HTTP", "wsus-eu.lab.test"],
            18,
            2,
            &[5; 32],
        ));
        kt
    }

    #[test]
    fn reads_mit_keytabs_and_picks_each_principals_strongest_newest_key() {
        let kt = Keytab::parse(&keytab()).unwrap();
        assert_eq!(kt.entries.len(), 5);
        assert_eq!(kt.entries[0].components, ["HTTP", "wsus-hq.lab.test"]);
        assert_eq!(kt.entries[0].kvno, 2);
        let keys = kt.service_keys("WSUS-HQ.lab.test").unwrap();
        assert_eq!(
            keys.principals(),
            [
                "HTTP/wsus-hq.lab.test@LAB.TEST",
                "WSMAN/wsus-hq.lab.test@LAB.TEST"
            ]
        );
        assert_eq!(keys.keys[0].key, vec![2; 32], "aes256 of kvno 2");
        assert!(kt.service_keys("wsus-us.lab.test").is_none());
        assert!(
            !format!("{:?}", kt.entries[0]).contains("[2, 2"),
            "keys stay out of logs"
        );
    }

    #[test]
    fn damaged_keytabs_are_errors_not_panics() {
        assert_eq!(Keytab::parse(b"\x05\x01"), Err(KeytabError::Version));
        let kt = keytab();
        for cut in [5, 9, 20, 40, kt.len() - 3] {
            assert!(Keytab::parse(&kt[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = vec![0x05, 0x02];
        bad.extend(0x7fff_ffffu32.to_be_bytes());
        assert!(Keytab::parse(&bad).is_err());
        assert!(Keytab::parse(&[0x05, 0x02]).unwrap().entries.is_empty());
    }

    #[test]
    fn offers_are_told_apart() {
        assert_eq!(offer(b"NTLMSSP\0\x01\0\0\0rest"), Offer::Ntlm);
        let mut raw = vec![0x60, 0x20];
        raw.extend(KRB5_OID);
        raw.extend([0x01, 0x00, 0x6e]);
        assert_eq!(offer(&raw), Offer::RawKerberos);
        let mut spnego = vec![
            0x60, 0x30, 0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02, 0xa0,
        ];
        spnego.extend(MS_KRB5_OID);
        assert_eq!(offer(&spnego), Offer::SpnegoKerberos);
        assert_eq!(offer(&[0xa1, 0x05]), Offer::Unknown);
    }

    #[test]
    fn client_principals_match_accounts() {
        assert!(principal_is("wsusfix@LAB.TEST", "wsusfix@LAB.TEST"));
        assert!(principal_is("wsusfix@lab.test", "WSUSFIX@LAB.TEST"));
        assert!(principal_is(
            "wsusfix\\@LAB.TEST@LAB.TEST",
            "wsusfix@LAB.TEST"
        ));
        assert!(principal_is("wsusfix@lab.test", "LAB\\wsusfix"));
        assert!(!principal_is("wsusfix@OTHER.TEST", "wsusfix@LAB.TEST"));
        assert!(!principal_is("guest@LAB.TEST", "wsusfix@LAB.TEST"));
        assert!(!principal_is("", "wsusfix"));
    }

    #[test]
    fn refusals_carry_a_krb_error_windows_style() {
        let kt = Keytab::parse(&keytab()).unwrap();
        let keys = kt.service_keys("wsus-hq.lab.test").unwrap();
        let e = krb_error(KRB_AP_ERR_SKEW, &keys);
        assert_eq!(e[0], 0x7e);
        let token = error_token(KRB_AP_ERR_SKEW, &keys, true);
        assert_eq!(&token[..1], &[0xa1]);
        assert!(token.windows(e.len()).any(|w| w == e.as_slice()));
        let raw = error_token(KRB_AP_ERR_MODIFIED, &keys, false);
        assert_eq!(raw[0], 0x60);
        assert!(raw.windows(2).any(|w| w == [0x03, 0x00]));
        // Long-form lengths past 127 bytes.
        assert_eq!(&tlv(0x04, &[0; 200])[..3], &[0x04, 0x81, 200]);
        assert_eq!(der_int(37), vec![0x02, 0x01, 37]);
        assert_eq!(der_int(200), vec![0x02, 0x02, 0x00, 200]);
    }

    #[test]
    fn a_replayed_authenticator_is_seen() {
        let kt = Keytab::parse(&keytab()).unwrap();
        let keys = kt.service_keys("wsus-hq.lab.test").unwrap();
        assert!(keys.first_sight(b"ap-req 1"));
        assert!(!keys.first_sight(b"ap-req 1"));
        assert!(keys.first_sight(b"ap-req 2"));
    }
}
