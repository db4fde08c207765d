//! MS-WSMV 2.2.9.1 message encryption framing (`multipart/encrypted`, SPNEGO session encryption)
//! as pywinrm and Windows write it. Pure byte handling; the sealing itself is the security
//! context's business.

/// The protocol string of NTLM/SPNEGO session encryption.
pub(crate) const PROTOCOL: &str = "application/HTTP-SPNEGO-session-encrypted";

/// The `Content-Type` of an encrypted request or reply.
pub(crate) const CONTENT_TYPE: &str = "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\"";

const BOUNDARY: &[u8] = b"--Encrypted Boundary";

/// One sealed message taken apart.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Sealed<'a> {
    /// The plaintext length the sender declared (`OriginalContent: ...;Length=N`).
    pub length: usize,
    pub signature: &'a [u8],
    /// Exactly `length` bytes: NTLM sealing (RC4) keeps the length.
    pub data: &'a [u8],
}

/// Why a body is not a well-formed encrypted message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed encrypted message: {0}")]
pub(crate) struct FramingError(&'static str);

/// Whether a `Content-Type` announces an SPNEGO-encrypted body.
pub(crate) fn is_encrypted(content_type: &str) -> bool {
    let lower = content_type.to_ascii_lowercase();
    lower.starts_with("multipart/encrypted") && lower.contains(&PROTOCOL.to_ascii_lowercase())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Takes an encrypted body apart. Tolerant of whitespace variations in the MIME headers (the
/// leading TABs are optional), strict on lengths.
pub(crate) fn parse(body: &[u8]) -> Result<Sealed<'_>, FramingError> {
    let start = find(body, BOUNDARY).ok_or(FramingError("no boundary"))?;
    let rest = &body[start + BOUNDARY.len()..];
    let second = find(rest, BOUNDARY).ok_or(FramingError("no second boundary"))?;
    let header = std::str::from_utf8(&rest[..second]).map_err(|_| FramingError("header"))?;
    if !header
        .to_ascii_lowercase()
        .contains(&PROTOCOL.to_ascii_lowercase())
    {
        return Err(FramingError("unknown protocol"));
    }
    let length_at = header.find("Length=").ok_or(FramingError("no Length"))?;
    let digits: String = header[length_at + 7..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let length: usize = digits.parse().map_err(|_| FramingError("bad Length"))?;

    let part = &rest[second + BOUNDARY.len()..];
    // "\r\n\tContent-Type: application/octet-stream\r\n" then the binary payload.
    let marker = b"application/octet-stream";
    let at = find(part, marker).ok_or(FramingError("no octet-stream part"))?;
    let mut payload = &part[at + marker.len()..];
    payload = payload
        .strip_prefix(b"\r\n")
        .ok_or(FramingError("no CRLF after part header"))?;
    if payload.len() < 4 {
        return Err(FramingError("short payload"));
    }
    let sig_len = u32::from_le_bytes(payload[..4].try_into().expect("4 bytes")) as usize;
    let after_sig = 4 + sig_len;
    if payload.len() < after_sig + length {
        return Err(FramingError("payload shorter than declared"));
    }
    let signature = &payload[4..after_sig];
    let data = &payload[after_sig..after_sig + length];
    let tail = &payload[after_sig + length..];
    let tail = tail.strip_prefix(b"\r\n").unwrap_or(tail);
    if !tail.starts_with(BOUNDARY) || !tail[BOUNDARY.len()..].starts_with(b"--") {
        return Err(FramingError(
            "no closing boundary after the declared length",
        ));
    }
    Ok(Sealed {
        length,
        signature,
        data,
    })
}

/// Builds an encrypted body, byte for byte as pywinrm does (MS-WSMV 2.2.9.1.1): TABs before the
/// part headers, no CRLF between the sealed bytes and the closing boundary.
pub(crate) fn build(original_length: usize, signature: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(200 + signature.len() + data.len());
    out.extend_from_slice(BOUNDARY);
    out.extend_from_slice(b"\r\n\tContent-Type: ");
    out.extend_from_slice(PROTOCOL.as_bytes());
    out.extend_from_slice(
        b"\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=",
    );
    out.extend_from_slice(original_length.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(BOUNDARY);
    out.extend_from_slice(b"\r\n\tContent-Type: application/octet-stream\r\n");
    out.extend_from_slice(&(signature.len() as u32).to_le_bytes());
    out.extend_from_slice(signature);
    out.extend_from_slice(data);
    out.extend_from_slice(BOUNDARY);
    out.extend_from_slice(b"--\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pywinrm's golden case (`test_encrypt_message`): a 19-byte message, a 4-byte stub signature
    /// and 28 stub bytes of ciphertext frame to 272 bytes.
    #[test]
    fn frames_like_pywinrm() {
        let body = build(19, b"1234", &[b'x'; 28]);
        assert_eq!(body.len(), 272);
        assert!(body.starts_with(b"--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=19\r\n"));
        assert!(body.ends_with(b"xxxx--Encrypted Boundary--\r\n"));
    }

    #[test]
    fn parses_what_it_builds_and_checks_lengths() {
        let body = build(5, &[9; 16], b"hello");
        let sealed = parse(&body).unwrap();
        assert_eq!(
            sealed,
            Sealed {
                length: 5,
                signature: &[9; 16],
                data: b"hello"
            }
        );
        // A lying Length is caught.
        let lying = String::from_utf8_lossy(&body).replace("Length=5", "Length=4");
        assert!(parse(lying.as_bytes()).is_err());
        assert!(parse(b"<s:Envelope/>").is_err());
    }

    #[test]
    fn tolerates_missing_tabs_and_a_crlf_before_the_closing_boundary() {
        let mut body = Vec::new();
        body.extend_from_slice(b"--Encrypted Boundary\r\nContent-Type: application/HTTP-SPNEGO-session-encrypted\r\nOriginalContent: type=application/soap+xml;charset=UTF-8;Length=3\r\n--Encrypted Boundary\r\nContent-Type: application/octet-stream\r\n");
        body.extend_from_slice(&2u32.to_le_bytes());
        body.extend_from_slice(b"ssabc\r\n--Encrypted Boundary--\r\n");
        let sealed = parse(&body).unwrap();
        assert_eq!(sealed.data, b"abc");
        assert_eq!(sealed.signature, b"ss");
    }

    #[test]
    fn recognises_the_content_type() {
        assert!(is_encrypted(CONTENT_TYPE));
        assert!(is_encrypted(
            "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\""
        ));
        assert!(!is_encrypted("application/soap+xml;charset=UTF-8"));
        assert!(!is_encrypted(
            "multipart/encrypted;protocol=\"application/HTTP-CredSSP-session-encrypted\""
        ));
    }
}
