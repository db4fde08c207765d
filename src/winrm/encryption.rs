//! MS-WSMV 2.2.9.1 message encryption over HTTP ("HTTP-SPNEGO-session-encrypted").
//!
//! With NTLM (raw or inside SPNEGO) over plain HTTP, Windows only accepts SOAP sealed with the
//! security context of the connection. The body is a two-part MIME-like frame, byte for byte as
//! pywinrm writes it (the leading TABs are required by MS-WSMV 2.2.9.1.1.2.2; there is no CRLF
//! between the sealed bytes and the closing boundary):
//!
//! ```text
//! --Encrypted Boundary\r\n
//! \tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n
//! \tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=<plain length>\r\n
//! --Encrypted Boundary\r\n
//! \tContent-Type: application/octet-stream\r\n
//! <u32 LE signature length><signature><sealed bytes>--Encrypted Boundary--\r\n
//! ```
//!
//! Replies are only unwrapped when their Content-Type says they are encrypted; the decrypted
//! length must equal `Length=`.

/// The MS-WSMV protocol string for SPNEGO/NTLM sealing.
pub(crate) const PROTOCOL: &str = "application/HTTP-SPNEGO-session-encrypted";
/// Content-Type of an encrypted request.
pub(crate) const CONTENT_TYPE: &str = "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\"";
const BOUNDARY: &str = "Encrypted Boundary";

/// Seals and unseals messages with an established security context.
pub(crate) trait Sealer {
    /// Returns `(signature, sealed bytes)` for `plain`.
    fn seal(&mut self, plain: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String>;
    /// Verifies `signature` and returns the plain bytes of `sealed`.
    fn unseal(&mut self, signature: &[u8], sealed: &[u8]) -> Result<Vec<u8>, String>;
}

/// Wraps a SOAP message into the encrypted multipart body.
pub(crate) fn wrap(sealer: &mut dyn Sealer, plain: &[u8]) -> Result<Vec<u8>, String> {
    let (signature, sealed) = sealer.seal(plain)?;
    let sig_len = u32::try_from(signature.len()).map_err(|_| "signature too long".to_string())?;
    let mut body = Vec::with_capacity(plain.len() + signature.len() + 256);
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\n\tContent-Type: {PROTOCOL}\r\n\
             \tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={}\r\n\
             --{BOUNDARY}\r\n\tContent-Type: application/octet-stream\r\n",
            plain.len()
        )
        .as_bytes(),
    );
    body.extend_from_slice(&sig_len.to_le_bytes());
    body.extend_from_slice(&signature);
    body.extend_from_slice(&sealed);
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    Ok(body)
}

/// True if a reply with this Content-Type carries an encrypted body.
pub(crate) fn is_encrypted(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.starts_with("multipart/encrypted")
            && ct.contains(&format!("protocol=\"{}\"", PROTOCOL.to_ascii_lowercase()))
    })
}

fn boundary_of(content_type: &str) -> String {
    let lower = content_type.to_ascii_lowercase();
    lower
        .find("boundary=")
        .map(|at| {
            let rest = &content_type[at + "boundary=".len()..];
            let rest = rest.trim_start();
            match rest.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next().unwrap_or("").to_string(),
                None => rest.split(';').next().unwrap_or("").trim().to_string(),
            }
        })
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| BOUNDARY.to_string())
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// Unwraps an encrypted reply body (Content-Type already checked with [`is_encrypted`]).
pub(crate) fn unwrap(
    sealer: &mut dyn Sealer,
    content_type: &str,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let marker = format!("--{}", boundary_of(content_type));
    let marker = marker.as_bytes();
    let first = find(body, marker, 0).ok_or("encrypted reply has no boundary")?;
    let header_start = first + marker.len();
    let second = find(body, marker, header_start).ok_or("encrypted reply has one part only")?;
    let header = String::from_utf8_lossy(&body[header_start..second]);
    let length: usize = header
        .split(|c: char| c == ';' || c.is_whitespace())
        .find_map(|t| t.strip_prefix("Length="))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("encrypted reply has no OriginalContent Length")?;
    if !header.contains(PROTOCOL) {
        return Err(format!("encrypted reply is not {PROTOCOL}"));
    }
    // The second part: CRLF, "\tContent-Type: application/octet-stream\r\n", then the payload.
    let after = second + marker.len();
    let octet = b"application/octet-stream";
    let octet_at = find(body, octet, after).ok_or("encrypted reply has no octet-stream part")?;
    let mut payload_start = octet_at + octet.len();
    if body[payload_start..].starts_with(b"\r\n") {
        payload_start += 2;
    } else {
        return Err("malformed octet-stream part header".into());
    }
    // The closing boundary ends the payload; search from the end (sealed bytes are random).
    let closing = rfind(body, &[marker, b"--".as_slice()].concat())
        .filter(|&at| at >= payload_start)
        .ok_or("encrypted reply has no closing boundary")?;
    let payload = &body[payload_start..closing];
    if payload.len() < 4 {
        return Err("encrypted payload is truncated".into());
    }
    let sig_len = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize;
    if payload.len() < 4 + sig_len {
        return Err(format!(
            "signature length {sig_len} exceeds the payload of {} bytes",
            payload.len()
        ));
    }
    let signature = &payload[4..4 + sig_len];
    let sealed = &payload[4 + sig_len..];
    let plain = sealer.unseal(signature, sealed)?;
    if plain.len() != length {
        return Err(format!(
            "decrypted {} bytes, but the reply announced Length={length}",
            plain.len()
        ));
    }
    Ok(plain)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stand-in for NTLM sealing: a fixed 4-byte signature and a ciphertext of fixed length,
    /// like pywinrm's published framing case (19-byte message, 28 bytes of "ciphertext").
    pub(crate) struct StubSealer;

    impl Sealer for StubSealer {
        fn seal(&mut self, plain: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
            let mut sealed = b"SEALED:".to_vec();
            sealed.extend(plain.iter().map(|b| b ^ 0x20));
            sealed.resize(28.max(sealed.len()), b'.');
            Ok((b"SIG!".to_vec(), sealed))
        }

        fn unseal(&mut self, signature: &[u8], sealed: &[u8]) -> Result<Vec<u8>, String> {
            if signature != b"SIG!" {
                return Err("bad signature".into());
            }
            let inner = sealed.strip_prefix(b"SEALED:").ok_or("not sealed")?;
            Ok(inner
                .iter()
                .take_while(|&&b| b != b'.')
                .map(|b| b ^ 0x20)
                .collect())
        }
    }

    /// RC4-like: sealed length equals plain length, like NTLM; 16-byte signature.
    pub(crate) struct XorSealer(pub u8);

    impl Sealer for XorSealer {
        fn seal(&mut self, plain: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
            Ok((vec![self.0; 16], plain.iter().map(|b| b ^ self.0).collect()))
        }
        fn unseal(&mut self, signature: &[u8], sealed: &[u8]) -> Result<Vec<u8>, String> {
            if signature != vec![self.0; 16] {
                return Err("bad signature".into());
            }
            Ok(sealed.iter().map(|b| b ^ self.0).collect())
        }
    }

    #[test]
    fn framing_math_matches_the_published_case() {
        let plain = b"unencrypted message";
        assert_eq!(plain.len(), 19);
        let body = wrap(&mut StubSealer, plain).unwrap();
        // 4-byte signature and 28 bytes of sealed data give a 272-byte body.
        assert_eq!(body.len(), 272);
        let shown: String = body
            .iter()
            .map(|&b| match b {
                b'\t' => "<TAB>".to_string(),
                b'\r' => "<CR>".to_string(),
                b'\n' => "<LF>\n".to_string(),
                0x20..=0x7e => char::from(b).to_string(),
                _ => format!("<{b:02X}>"),
            })
            .collect();
        insta::assert_snapshot!(shown);
        assert!(body.ends_with(b".--Encrypted Boundary--\r\n"));
    }

    #[test]
    fn round_trip_and_length_check() {
        let plain = "<s:Envelope>caf\u{e9}</s:Envelope>".as_bytes();
        let body = wrap(&mut XorSealer(0x5a), plain).unwrap();
        assert!(is_encrypted(Some(CONTENT_TYPE)));
        assert_eq!(
            unwrap(&mut XorSealer(0x5a), CONTENT_TYPE, &body).unwrap(),
            plain
        );

        // A body announcing a different length is refused.
        let forged = String::from_utf8_lossy(&body).replacen(
            &format!("Length={}", plain.len()),
            "Length=999",
            1,
        );
        let err = unwrap(&mut XorSealer(0x5a), CONTENT_TYPE, forged.as_bytes());
        assert!(err.is_err());

        // A bad signature is refused.
        assert!(unwrap(&mut XorSealer(0x33), CONTENT_TYPE, &body).is_err());
    }

    /// Kerberos (RFC 4121 wrap token, AES): a 60-byte signature (EC 0, RRC 28) or, from other
    /// peers, a 76-byte one (EC 16); the sealed data keeps the plain length.
    struct KerberosLike(usize);

    impl Sealer for KerberosLike {
        fn seal(&mut self, plain: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
            let mut sig = vec![0x05, 0x04];
            sig.resize(self.0, 0xee);
            Ok((sig, plain.iter().map(|b| b ^ 0xa5).collect()))
        }
        fn unseal(&mut self, signature: &[u8], sealed: &[u8]) -> Result<Vec<u8>, String> {
            if signature.len() != self.0 || signature[..2] != [0x05, 0x04] {
                return Err(format!("a {}-byte wrap token header expected", self.0));
            }
            Ok(sealed.iter().map(|b| b ^ 0xa5).collect())
        }
    }

    #[test]
    fn kerberos_signatures_frame_with_their_own_length() {
        for sig_len in [60, 76] {
            let plain = b"<s:Envelope>kerberos</s:Envelope>";
            let body = wrap(&mut KerberosLike(sig_len), plain).unwrap();
            let at = find(&body, b"octet-stream\r\n", 0).unwrap() + 14;
            assert_eq!(
                u32::from_le_bytes(body[at..at + 4].try_into().unwrap()) as usize,
                sig_len
            );
            assert_eq!(
                unwrap(&mut KerberosLike(sig_len), CONTENT_TYPE, &body).unwrap(),
                plain
            );
        }
    }

    #[test]
    fn sealed_bytes_that_look_like_a_boundary_do_not_confuse_the_parser() {
        let plain = b"--Encrypted Boundary--\r\n and more";
        // XOR with 0 leaves the bytes as they are: the payload contains the closing marker.
        let body = wrap(&mut XorSealer(0), plain).unwrap();
        assert_eq!(
            unwrap(&mut XorSealer(0), CONTENT_TYPE, &body).unwrap(),
            plain
        );
    }

    #[test]
    fn content_type_detection() {
        assert!(!is_encrypted(None));
        assert!(!is_encrypted(Some("application/soap+xml;charset=UTF-8")));
        assert!(is_encrypted(Some(
            "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\""
        )));
        assert!(!is_encrypted(Some(
            "multipart/encrypted;protocol=\"application/HTTP-CredSSP-session-encrypted\""
        )));
        assert_eq!(
            boundary_of("multipart/encrypted;boundary=Other;x=y"),
            "Other"
        );
        assert_eq!(boundary_of("multipart/encrypted"), "Encrypted Boundary");
    }

    #[test]
    fn truncated_bodies_are_errors() {
        let body = wrap(&mut XorSealer(1), b"hello").unwrap();
        for cut in [10, 60, 150, body.len() - 30] {
            assert!(
                unwrap(&mut XorSealer(1), CONTENT_TYPE, &body[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}
