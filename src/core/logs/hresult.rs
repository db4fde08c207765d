//! Windows error codes (HRESULTs) as the client log writes them: `0x8024400E`, `0x8024400e`,
//! `hr = 80072ee2`, `hr=8024A000`.

use std::fmt;

/// `WU_E_PT_SOAP_SERVER`: the server could not process the message. KB 954960's code, but not
/// only KB 954960's: other server faults produce it too.
pub const SOAP_SERVER: HResult = HResult(0x8024_400E);
/// `WU_E_AU_NOSERVICE`: Automatic Updates could not be asked to detect (`hr=8024A000`).
pub const AU_NOSERVICE: HResult = HResult(0x8024_A000);

/// A 32-bit Windows error code. Displays as `0x8024400E` (upper-case hex, eight digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HResult(pub u32);

impl HResult {
    /// True for failure codes (the severity bit is set).
    pub fn is_failure(self) -> bool {
        self.0 & 0x8000_0000 != 0
    }

    /// Parses eight hex digits, with or without a `0x` prefix.
    pub fn parse(s: &str) -> Option<HResult> {
        let digits = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(digits, 16).ok().map(HResult)
    }

    /// The first failure code written in `text` as `0x` + eight hex digits, or as eight hex
    /// digits after `hr =` / `hr=` / `error code`. Shorter hex numbers (`SOAP Fault: 0x000190`)
    /// and success codes (`Exit code = 0x00000000`) are not failure codes.
    pub fn find_failure(text: &str) -> Option<HResult> {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let candidate = if bytes[i..].starts_with(b"0x") || bytes[i..].starts_with(b"0X") {
                let preceded_by_hex = i > 0 && bytes[i - 1].is_ascii_alphanumeric();
                (!preceded_by_hex)
                    .then(|| eight_hex_at(bytes, i + 2))
                    .flatten()
            } else {
                after_keyword(text, i)
            };
            if let Some(code) = candidate.filter(|c| c.is_failure()) {
                return Some(code);
            }
            i += 1;
        }
        None
    }
}

/// Eight hex digits starting at `at`, not followed by a ninth.
fn eight_hex_at(bytes: &[u8], at: usize) -> Option<HResult> {
    let digits = bytes.get(at..at + 8)?;
    if !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    if bytes.get(at + 8).is_some_and(u8::is_ascii_hexdigit) {
        return None;
    }
    // Eight ASCII hex digits are valid UTF-8.
    let s = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(s, 16).ok().map(HResult)
}

/// A bare code after `hr =`, `hr=` or `error code ` starting at byte `i` (case-insensitive).
fn after_keyword(text: &str, i: usize) -> Option<HResult> {
    const KEYWORDS: [&str; 3] = ["hr =", "hr=", "error code "];
    let bytes = text.as_bytes();
    if i > 0 && bytes[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    let rest = &bytes[i..];
    let keyword = KEYWORDS
        .iter()
        .find(|k| rest.len() >= k.len() && rest[..k.len()].eq_ignore_ascii_case(k.as_bytes()))?;
    let mut at = i + keyword.len();
    while bytes.get(at) == Some(&b' ') {
        at += 1;
    }
    if bytes[at..].starts_with(b"0x") || bytes[at..].starts_with(b"0X") {
        at += 2;
    }
    eight_hex_at(bytes, at)
}

/// What a code means, for the codes a WSUS client meets most (Windows Update error reference).
pub fn describe(code: HResult) -> Option<&'static str> {
    Some(match code.0 {
        0x8024_000E => {
            "WU_E_XML_INVALID: the update agent found invalid information in an update's XML data"
        }
        0x8024_4007 => "WU_E_PT_SOAPCLIENT_SOAPFAULT: the server answered with a SOAP fault",
        0x8024_4008 => {
            "WU_E_PT_SOAPCLIENT_PARSEFAULT: the client could not parse the server's SOAP fault"
        }
        0x8024_400D => "WU_E_PT_SOAP_CLIENT: the server found the client's request malformed",
        0x8024_400E => "WU_E_PT_SOAP_SERVER: the server could not process the request",
        0x8024_4010 => "WU_E_PT_EXCEEDED_MAX_SERVER_TRIPS: too many round trips to the server",
        0x8024_4017 => "WU_E_PT_HTTP_STATUS_DENIED: HTTP 401, access denied",
        0x8024_4018 => "WU_E_PT_HTTP_STATUS_FORBIDDEN: HTTP 403, forbidden",
        0x8024_4019 => "WU_E_PT_HTTP_STATUS_NOT_FOUND: HTTP 404, not found",
        0x8024_401B => {
            "WU_E_PT_HTTP_STATUS_PROXY_AUTH_REQ: HTTP 407, the proxy requires authentication"
        }
        0x8024_401C => "WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT: HTTP 408, request timed out",
        0x8024_401F => "WU_E_PT_HTTP_STATUS_SERVER_ERROR: HTTP 500, the server failed inside",
        0x8024_402C => "WU_E_PT_WINHTTP_NAME_NOT_RESOLVED: the server name could not be resolved",
        0x8024_402F => {
            "WU_E_PT_ECP_SUCCEEDED_WITH_ERRORS: external cab file processing completed with errors"
        }
        0x8024_A000 => "WU_E_AU_NOSERVICE: Automatic Updates could not take the request",
        0x8007_2EE2 => "ERROR_INTERNET_TIMEOUT: the connection to the server timed out",
        0x8007_2EE7 => "ERROR_INTERNET_NAME_NOT_RESOLVED: the server name could not be resolved",
        0x8007_2EFD => "ERROR_INTERNET_CANNOT_CONNECT: could not connect to the server",
        0x8007_2EFE => "ERROR_INTERNET_CONNECTION_ABORTED: the connection was ended abnormally",
        _ => return None,
    })
}

impl fmt::Display for HResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08X}", self.0)
    }
}

impl serde::Serialize for HResult {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_codes_in_the_forms_the_client_log_uses() {
        let cases = [
            (
                "WARNING: SyncUpdates failure, error = 0x8024400E, soap client error = 7",
                0x8024400E,
            ),
            ("WARNING: PTError: 0x8024400e", 0x8024400E),
            ("WARNING: Send failed with hr = 80072ee2.", 0x80072EE2),
            (
                "WARNING: Unable to trigger Automatic Updates to detect now, hr=8024A000",
                0x8024A000,
            ),
            (
                "  # WARNING: Failed to find updates with error code 8024400E",
                0x8024400E,
            ),
            (
                "WARNING: WinHttp: SendRequestUsingProxy failed for <http://w/>. error 0x80072ee2",
                0x80072EE2,
            ),
        ];
        for (text, code) in cases {
            assert_eq!(HResult::find_failure(text), Some(HResult(code)), "{text}");
        }
    }

    #[test]
    fn ignores_short_hex_success_codes_and_guids() {
        for text in [
            "WARNING: SOAP Fault: 0x000190",
            "  * WARNING: Exit code = 0x00000000",
            "  + ServiceId = {3DA21691-E39D-4DA6-8A4B-B43877BCB1B7}, Server URL = http://w/",
            "WARNING: ID:c0a7445f-b989-43fa-ac20-11f8ca65fa8c",
            "value 0x8024400E1 is too long",
        ] {
            assert_eq!(HResult::find_failure(text), None, "{text}");
        }
    }

    #[test]
    fn displays_and_parses_eight_upper_case_digits() {
        assert_eq!(SOAP_SERVER.to_string(), "0x8024400E");
        assert_eq!(HResult::parse("0x8024400e"), Some(SOAP_SERVER));
        assert_eq!(HResult::parse("8024A000"), Some(AU_NOSERVICE));
        assert_eq!(HResult::parse("0x190"), None);
    }
}
