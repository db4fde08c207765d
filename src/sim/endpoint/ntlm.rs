//! NTLM checks the acceptor makes itself, before a type-3 (AUTHENTICATE) message reaches `sspi`.
//!
//! `sspi` 0.23 as an acceptor trusts the MIC to prove the password, and a client may leave the MIC
//! out; it also accepts any user name that comes with the right password. So the endpoint parses
//! the AUTHENTICATE message here, picks the account by its user name, refuses NTLMv1 and anonymous
//! responses, and recomputes the NTLMv2 proof (MS-NLMP 3.3.2) from the password and the server
//! challenge it sent. Pure functions; no I/O.

use hmac::{Hmac, Mac};
use md4::{Digest, Md4};
use md5::Md5;

/// `NTLMSSP\0`, the first eight bytes of every NTLM message.
pub(crate) const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

/// NTLMSSP_NEGOTIATE_UNICODE: strings in the message are UTF-16LE (otherwise OEM).
const NEGOTIATE_UNICODE: u32 = 0x0000_0001;

/// The shortest NTLMv2 response: a 16-byte proof plus the fixed 28-byte head of the blob. An
/// NTLMv1 response is 24 bytes, an anonymous one is empty.
const MIN_NTLMV2_RESPONSE: usize = 16 + 28;

/// Why an AUTHENTICATE message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("not an NTLM AUTHENTICATE message")]
    Malformed,
    #[error("NTLMv1 or anonymous response refused")]
    NotNtlmV2,
    #[error("unknown user name")]
    UnknownUser,
    #[error("NTLMv2 proof does not match the password")]
    WrongPassword,
}

/// The fields of an AUTHENTICATE message that the checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authenticate {
    pub user: String,
    pub domain: String,
    pub nt_response: Vec<u8>,
}

/// MsvAvChannelBindings and MsvAvEOL (MS-NLMP 2.2.2.1).
const AV_CHANNEL_BINDINGS: u16 = 0x000a;
const AV_EOL: u16 = 0x0000;

/// The MsvAvChannelBindings value (the MD5 of the client's channel bindings) among the AV pairs
/// of an NTLMv2 response, if it carries one. The AV pairs follow the 16-byte proof and the
/// 28-byte fixed head of the blob.
pub(crate) fn channel_bindings_of(nt_response: &[u8]) -> Option<[u8; 16]> {
    let mut pairs = nt_response.get(MIN_NTLMV2_RESPONSE..)?;
    while pairs.len() >= 4 {
        let id = u16::from_le_bytes([pairs[0], pairs[1]]);
        let len = usize::from(u16::from_le_bytes([pairs[2], pairs[3]]));
        let value = pairs.get(4..4 + len)?;
        if id == AV_EOL {
            return None;
        }
        if id == AV_CHANNEL_BINDINGS {
            return value.try_into().ok();
        }
        pairs = &pairs[4 + len..];
    }
    None
}

/// The MsvAvChannelBindings a client bound to a TLS channel sends: the MD5 of a
/// gss_channel_bindings_struct (RFC 2744) with no addresses and `application_data` (for HTTPS,
/// `tls-server-end-point:` and the certificate's hash, RFC 5929).
pub(crate) fn channel_bindings_hash(application_data: &[u8]) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update([0u8; 16]); // initiator and acceptor: address type and length, both zero
    md5.update((application_data.len() as u32).to_le_bytes());
    md5.update(application_data);
    md5.finalize().into()
}

/// The message type (1, 2 or 3) of an NTLM message, if `msg` is one.
pub(crate) fn message_type(msg: &[u8]) -> Option<u32> {
    if msg.len() < 12 || &msg[..8] != SIGNATURE {
        return None;
    }
    Some(u32::from_le_bytes(msg[8..12].try_into().ok()?))
}

/// The NTLM message of type `msg_type` inside `token`: the token itself for raw NTLMSSP, or the
/// mechanism token inside an SPNEGO wrapper. The NTLM fields are offsets from the message start,
/// so the bytes after it (the rest of the DER) do no harm.
pub(crate) fn find_message(token: &[u8], msg_type: u32) -> Option<&[u8]> {
    let mut from = 0;
    while let Some(pos) = token[from..].windows(8).position(|w| w == SIGNATURE) {
        let start = from + pos;
        if message_type(&token[start..]) == Some(msg_type) {
            return Some(&token[start..]);
        }
        from = start + 1;
    }
    None
}

/// The 8-byte server challenge of a CHALLENGE (type-2) message.
pub(crate) fn server_challenge(challenge: &[u8]) -> Option<[u8; 8]> {
    if message_type(challenge) != Some(2) || challenge.len() < 32 {
        return None;
    }
    challenge[24..32].try_into().ok()
}

fn field(msg: &[u8], at: usize) -> Result<&[u8], Refusal> {
    let head = msg.get(at..at + 8).ok_or(Refusal::Malformed)?;
    let len = usize::from(u16::from_le_bytes([head[0], head[1]]));
    let offset = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if len == 0 {
        return Ok(&[]);
    }
    msg.get(offset..offset + len).ok_or(Refusal::Malformed)
}

fn decode_string(bytes: &[u8], unicode: bool) -> Result<String, Refusal> {
    if unicode {
        if !bytes.len().is_multiple_of(2) {
            return Err(Refusal::Malformed);
        }
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).map_err(|_| Refusal::Malformed)
    } else {
        // OEM code page; names in the simulator are ASCII.
        Ok(bytes.iter().map(|&b| char::from(b)).collect())
    }
}

/// Parses an AUTHENTICATE (type-3) message (MS-NLMP 2.2.1.3).
pub(crate) fn parse_authenticate(msg: &[u8]) -> Result<Authenticate, Refusal> {
    if message_type(msg) != Some(3) || msg.len() < 64 {
        return Err(Refusal::Malformed);
    }
    let flags = u32::from_le_bytes(msg[60..64].try_into().map_err(|_| Refusal::Malformed)?);
    let unicode = flags & NEGOTIATE_UNICODE != 0;
    Ok(Authenticate {
        nt_response: field(msg, 20)?.to_vec(),
        domain: decode_string(field(msg, 28)?, unicode)?,
        user: decode_string(field(msg, 36)?, unicode)?,
    })
}

/// The account part of a user name: `DOMAIN\user`, `user@realm` and `user` all give `user`.
pub(crate) fn account_part(name: &str) -> &str {
    let name = name.rsplit('\\').next().unwrap_or(name);
    match name.split_once('@') {
        Some((user, _)) => user,
        None => name,
    }
}

/// Whether the name a client sent designates `account` (case-insensitive, any qualification).
pub(crate) fn same_account(sent: &str, account: &str) -> bool {
    let (a, b) = (account_part(sent), account_part(account));
    !a.is_empty() && a.to_lowercase() == b.to_lowercase()
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = <Hmac<Md5> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// NTOWFv2 (MS-NLMP 3.3.2): HMAC-MD5 keyed with MD4(UTF-16LE(password)) over
/// UTF-16LE(UPPER(user) || domain).
pub(crate) fn ntowf_v2(password: &str, user: &str, domain: &str) -> [u8; 16] {
    let nt_hash: [u8; 16] = Md4::digest(utf16le(password)).into();
    let mut who = utf16le(&user.to_uppercase());
    who.extend(utf16le(domain));
    hmac_md5(&nt_hash, &[&who])
}

/// NTProofStr = HMAC-MD5(NTOWFv2, server challenge || blob).
pub(crate) fn nt_proof(ntowf: &[u8; 16], challenge: &[u8; 8], blob: &[u8]) -> [u8; 16] {
    hmac_md5(ntowf, &[challenge, blob])
}

/// Checks an AUTHENTICATE message against the accounts: returns the index of the account it
/// proves. The user name picks the account; the NTLMv2 proof must match that account's password
/// for the challenge this server sent.
pub(crate) fn verify<'a>(
    auth: &Authenticate,
    challenge: &[u8; 8],
    accounts: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<usize, Refusal> {
    if auth.nt_response.len() < MIN_NTLMV2_RESPONSE {
        return Err(Refusal::NotNtlmV2);
    }
    let (index, password) = accounts
        .into_iter()
        .enumerate()
        .find(|(_, (name, _))| same_account(&auth.user, name))
        .map(|(i, (_, password))| (i, password))
        .ok_or(Refusal::UnknownUser)?;
    let (proof, blob) = auth.nt_response.split_at(16);
    let expected = nt_proof(
        &ntowf_v2(password, &auth.user, &auth.domain),
        challenge,
        blob,
    );
    // Not secret-dependent timing that matters here (a simulator), but cheap to do right.
    let diff = expected
        .iter()
        .zip(proof)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff == 0 {
        Ok(index)
    } else {
        Err(Refusal::WrongPassword)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MS-NLMP 4.2.4.1.1: NTOWFv2("Password", "User", "Domain").
    #[test]
    fn ntowf_v2_matches_the_specification_example() {
        let expected = [
            0x0c, 0x86, 0x8a, 0x40, 0x3b, 0xfd, 0x7a, 0x93, 0xa3, 0x00, 0x1e, 0xf2, 0x2e, 0xf0,
            0x2e, 0x3f,
        ];
        assert_eq!(ntowf_v2("Password", "User", "Domain"), expected);
    }

    /// MS-NLMP 4.2.4.2.2: NTProofStr for the example challenge and blob.
    #[test]
    fn nt_proof_matches_the_specification_example() {
        let challenge = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
        let mut blob = vec![0x01, 0x01, 0, 0, 0, 0, 0, 0];
        blob.extend([0u8; 8]); // time
        blob.extend([0xaa; 8]); // client challenge
        blob.extend([0u8; 4]);
        // AV pairs: NetBIOS domain "Domain", NetBIOS computer "Server", EOL.
        blob.extend([0x02, 0x00, 0x0c, 0x00]);
        blob.extend(utf16le("Domain"));
        blob.extend([0x01, 0x00, 0x0c, 0x00]);
        blob.extend(utf16le("Server"));
        blob.extend([0u8; 4]);
        blob.extend([0u8; 4]);
        let expected = [
            0x68, 0xcd, 0x0a, 0xb8, 0x51, 0xe5, 0x1c, 0x96, 0xaa, 0xbc, 0x92, 0x7b, 0xeb, 0xef,
            0x6a, 0x1c,
        ];
        let proof = nt_proof(&ntowf_v2("Password", "User", "Domain"), &challenge, &blob);
        assert_eq!(proof, expected);
    }

    #[test]
    fn account_names_compare_by_their_account_part() {
        assert!(same_account("Administrator", "administrator"));
        assert!(same_account("CORP\\wsusadmin", "wsusadmin"));
        assert!(same_account("wsusadmin@corp.example", "CORP\\WsusAdmin"));
        assert!(!same_account("guest", "administrator"));
        assert!(!same_account("", ""));
        assert_eq!(account_part("a\\b@c"), "b");
    }

    fn authenticate_message(user: &str, domain: &str, nt: &[u8]) -> Vec<u8> {
        let (d, u) = (utf16le(domain), utf16le(user));
        let mut msg = Vec::new();
        msg.extend(SIGNATURE);
        msg.extend(3u32.to_le_bytes());
        let mut offset = 64u32;
        let mut payload = Vec::new();
        for bytes in [&[][..], nt, &d, &u, &[], &[]] {
            let len = bytes.len() as u16;
            msg.extend(len.to_le_bytes());
            msg.extend(len.to_le_bytes());
            msg.extend(offset.to_le_bytes());
            offset += u32::from(len);
            payload.extend_from_slice(bytes);
        }
        msg.extend(NEGOTIATE_UNICODE.to_le_bytes());
        msg.extend(payload);
        msg
    }

    #[test]
    fn verify_picks_the_account_and_checks_the_proof() {
        let challenge = [7u8; 8];
        let blob = [
            vec![1, 1, 0, 0, 0, 0, 0, 0],
            vec![0; 8],
            vec![0x55; 8],
            vec![0; 4],
            vec![0; 4],
        ]
        .concat();
        let proof = nt_proof(&ntowf_v2("s3cret", "ops", "LAB"), &challenge, &blob);
        let nt = [proof.to_vec(), blob.clone()].concat();
        let accounts = [("admin", "other"), ("LAB\\ops", "s3cret")];

        let auth = parse_authenticate(&authenticate_message("ops", "LAB", &nt)).unwrap();
        assert_eq!(auth.user, "ops");
        assert_eq!(auth.domain, "LAB");
        assert_eq!(verify(&auth, &challenge, accounts), Ok(1));

        let wrong_user = parse_authenticate(&authenticate_message("ghost", "LAB", &nt)).unwrap();
        assert_eq!(
            verify(&wrong_user, &challenge, accounts),
            Err(Refusal::UnknownUser)
        );
        assert_eq!(
            verify(&auth, &[8u8; 8], accounts),
            Err(Refusal::WrongPassword)
        );
        let v1 = parse_authenticate(&authenticate_message("ops", "LAB", &[0u8; 24])).unwrap();
        assert_eq!(verify(&v1, &challenge, accounts), Err(Refusal::NotNtlmV2));
    }

    #[test]
    fn finds_ntlm_messages_inside_spnego_tokens() {
        let mut token = vec![0xa1, 0x81, 0x99, 0x30, 0x04];
        token.extend(authenticate_message("u", "", &[1; 48]));
        token.extend([0xa3, 0x12]);
        let msg = find_message(&token, 3).unwrap();
        assert_eq!(message_type(msg), Some(3));
        assert_eq!(parse_authenticate(msg).unwrap().user, "u");
        assert!(find_message(&token, 2).is_none());
        assert!(parse_authenticate(b"NTLMSSP\0\x03\0\0\0").is_err());
    }

    #[test]
    fn channel_bindings_hash_as_pyspnego_computes_it() {
        // md5(GssChannelBindings(application_data=b"tls-server-end-point:" + bytes(range(32))).pack())
        let mut data = b"tls-server-end-point:".to_vec();
        data.extend(0u8..32);
        let hex: String = channel_bindings_hash(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "8f1214c9c9cab8dc3bf866da9aba57a7");
    }

    #[test]
    fn channel_bindings_are_read_from_the_av_pairs() {
        let mut response = vec![0u8; MIN_NTLMV2_RESPONSE];
        // MsvAvNbDomainName "D", MsvAvChannelBindings, MsvAvEOL.
        response.extend_from_slice(&[2, 0, 2, 0, b'D', 0]);
        response.extend_from_slice(&[0x0a, 0, 16, 0]);
        response.extend_from_slice(&[7u8; 16]);
        response.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(channel_bindings_of(&response), Some([7u8; 16]));
        let mut without = vec![0u8; MIN_NTLMV2_RESPONSE];
        without.extend_from_slice(&[2, 0, 2, 0, b'D', 0, 0, 0, 0, 0]);
        assert_eq!(channel_bindings_of(&without), None);
        assert_eq!(channel_bindings_of(&[0u8; 10]), None);
        // A length past the end is no binding, not a panic.
        let mut cut = vec![0u8; MIN_NTLMV2_RESPONSE];
        cut.extend_from_slice(&[0x0a, 0, 16, 0, 1, 2]);
        assert_eq!(channel_bindings_of(&cut), None);
    }
}
