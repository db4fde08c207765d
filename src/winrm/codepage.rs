//! Decoding of shell output bytes in the shell's code page (`WINRS_CODEPAGE`).
//!
//! WinRS hands stdout/stderr over as raw bytes in the console code page the shell was created
//! with. 437 (the default, what pywinrm uses) gets a full table here; 65001 is UTF-8; a few more
//! Windows code pages are decoded through `encoding_rs`. Decoding happens once, after all chunks
//! of a stream are joined, so characters split across chunks decode correctly.

/// Code pages accepted in [`crate::winrm::Endpoint::codepage`], for messages.
pub(crate) const SUPPORTED_LIST: &str = "437, 65001, 866, 874, 932, 936, 949, 950, 1250-1258";

/// True if output in this code page can be decoded.
pub(crate) fn is_supported(codepage: u32) -> bool {
    codepage == 437 || codepage == 65001 || other_encoding(codepage).is_some()
}

/// Decodes `bytes` from `codepage`; undecodable sequences become U+FFFD.
pub(crate) fn decode(codepage: u32, bytes: &[u8]) -> String {
    match codepage {
        437 => bytes.iter().map(|&b| cp437_char(b)).collect(),
        65001 => String::from_utf8_lossy(strip_utf8_bom(bytes)).into_owned(),
        other => match other_encoding(other) {
            Some(enc) => enc.decode_without_bom_handling(bytes).0.into_owned(),
            None => String::from_utf8_lossy(bytes).into_owned(),
        },
    }
}

fn strip_utf8_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

fn other_encoding(codepage: u32) -> Option<&'static encoding_rs::Encoding> {
    Some(match codepage {
        866 => encoding_rs::IBM866,
        874 => encoding_rs::WINDOWS_874,
        932 => encoding_rs::SHIFT_JIS,
        936 => encoding_rs::GBK,
        949 => encoding_rs::EUC_KR,
        950 => encoding_rs::BIG5,
        1250 => encoding_rs::WINDOWS_1250,
        1251 => encoding_rs::WINDOWS_1251,
        1252 => encoding_rs::WINDOWS_1252,
        1253 => encoding_rs::WINDOWS_1253,
        1254 => encoding_rs::WINDOWS_1254,
        1255 => encoding_rs::WINDOWS_1255,
        1256 => encoding_rs::WINDOWS_1256,
        1257 => encoding_rs::WINDOWS_1257,
        1258 => encoding_rs::WINDOWS_1258,
        _ => return None,
    })
}

fn cp437_char(b: u8) -> char {
    if b < 0x80 {
        char::from(b)
    } else {
        CP437_HIGH[usize::from(b - 0x80)]
    }
}

/// Code page 437, bytes 0x80..=0xFF (bytes below 0x80 are ASCII, as Windows converts them).
const CP437_HIGH: [char; 128] = [
    '\u{00C7}', '\u{00FC}', '\u{00E9}', '\u{00E2}', '\u{00E4}', '\u{00E0}', '\u{00E5}', '\u{00E7}',
    '\u{00EA}', '\u{00EB}', '\u{00E8}', '\u{00EF}', '\u{00EE}', '\u{00EC}', '\u{00C4}', '\u{00C5}',
    '\u{00C9}', '\u{00E6}', '\u{00C6}', '\u{00F4}', '\u{00F6}', '\u{00F2}', '\u{00FB}', '\u{00F9}',
    '\u{00FF}', '\u{00D6}', '\u{00DC}', '\u{00A2}', '\u{00A3}', '\u{00A5}', '\u{20A7}', '\u{0192}',
    '\u{00E1}', '\u{00ED}', '\u{00F3}', '\u{00FA}', '\u{00F1}', '\u{00D1}', '\u{00AA}', '\u{00BA}',
    '\u{00BF}', '\u{2310}', '\u{00AC}', '\u{00BD}', '\u{00BC}', '\u{00A1}', '\u{00AB}', '\u{00BB}',
    '\u{2591}', '\u{2592}', '\u{2593}', '\u{2502}', '\u{2524}', '\u{2561}', '\u{2562}', '\u{2556}',
    '\u{2555}', '\u{2563}', '\u{2551}', '\u{2557}', '\u{255D}', '\u{255C}', '\u{255B}', '\u{2510}',
    '\u{2514}', '\u{2534}', '\u{252C}', '\u{251C}', '\u{2500}', '\u{253C}', '\u{255E}', '\u{255F}',
    '\u{255A}', '\u{2554}', '\u{2569}', '\u{2566}', '\u{2560}', '\u{2550}', '\u{256C}', '\u{2567}',
    '\u{2568}', '\u{2564}', '\u{2565}', '\u{2559}', '\u{2558}', '\u{2552}', '\u{2553}', '\u{256B}',
    '\u{256A}', '\u{2518}', '\u{250C}', '\u{2588}', '\u{2584}', '\u{258C}', '\u{2590}', '\u{2580}',
    '\u{03B1}', '\u{00DF}', '\u{0393}', '\u{03C0}', '\u{03A3}', '\u{03C3}', '\u{00B5}', '\u{03C4}',
    '\u{03A6}', '\u{0398}', '\u{03A9}', '\u{03B4}', '\u{221E}', '\u{03C6}', '\u{03B5}', '\u{2229}',
    '\u{2261}', '\u{00B1}', '\u{2265}', '\u{2264}', '\u{2320}', '\u{2321}', '\u{00F7}', '\u{2248}',
    '\u{00B0}', '\u{2219}', '\u{00B7}', '\u{221A}', '\u{207F}', '\u{00B2}', '\u{25A0}', '\u{00A0}',
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp437_upper_half() {
        // "é" is 0x82, "ü" 0x81, box drawing 0xC9 0xCD 0xBB, "ß" 0xE1, NBSP 0xFF.
        assert_eq!(
            decode(437, b"caf\x82 \x81 \xC9\xCD\xBB \xE1\xFF"),
            "café ü ╔═╗ ß\u{A0}"
        );
        assert_eq!(decode(437, b"plain\r\n"), "plain\r\n");
    }

    #[test]
    fn utf8_and_others() {
        assert_eq!(
            decode(65001, "h\u{e9}llo \u{2713}".as_bytes()),
            "h\u{e9}llo \u{2713}"
        );
        assert_eq!(decode(65001, b"\xEF\xBB\xBFx"), "x");
        assert_eq!(decode(65001, b"bad \xFF"), "bad \u{FFFD}");
        assert_eq!(decode(1252, b"\x80"), "\u{20AC}");
        assert_eq!(decode(866, b"\x8F"), "\u{41F}");
    }

    #[test]
    fn supported_set() {
        for cp in [437, 65001, 866, 874, 932, 936, 949, 950, 1250, 1258] {
            assert!(is_supported(cp), "{cp}");
        }
        assert!(!is_supported(850));
        assert!(!is_supported(0));
    }
}
