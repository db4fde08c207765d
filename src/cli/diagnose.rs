//! `wsusfix diagnose FILE...`: reads client and server logs in any mix, and says whether they show
//! KB 954960's symptom (see `docs/diagnose.md`).
//!
//! This file owns the file handling: it reads each file, gunzips it (by `.gz` name or by magic
//! bytes), decodes it (UTF-8 with or without a byte-order mark, UTF-16 LE/BE with a mark or
//! recognised without one, else the Windows ANSI code page 1252), tells its kind from its content,
//! and hands the texts to the pure [`crate::core::diagnose`].

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, WINDOWS_1252};
use flate2::read::MultiGzDecoder;

use crate::core::diagnose::{self, LogInput, UnreadableInput};
use crate::core::logs::kind::{self, LogKind, Unrecognised};
use crate::exit;

/// Arguments of `wsusfix diagnose`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiagnoseArgs {
    /// Client `WindowsUpdate.log` and server `SoftwareDistribution.log` files, in any mix. Each
    /// may be gzip'd, and UTF-8, UTF-16 or ANSI.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = DiagnoseFormat::Text)]
    pub format: DiagnoseFormat,
}

/// Output format of `wsusfix diagnose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiagnoseFormat {
    /// A report for people.
    Text,
    /// The versioned JSON document of docs/diagnose.md.
    Json,
}

/// Why a file could not be diagnosed. Messages are fragments; the caller puts the path first.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read: {0}")]
    Io(#[source] io::Error),
    #[error("empty file: not a WindowsUpdate.log or SoftwareDistribution.log")]
    Empty,
    #[error("named .gz but not gzip data")]
    NotGzip,
    #[error("corrupt gzip data: {0}")]
    Gzip(#[source] io::Error),
    #[error("binary data, not a text log")]
    Binary,
    #[error("undecodable {0} text")]
    Undecodable(&'static str),
    #[error(
        "not a WindowsUpdate.log or SoftwareDistribution.log: no line reads as a record of either, whole or pasted"
    )]
    NotALog,
    #[error(
        "not a WindowsUpdate.log or SoftwareDistribution.log: its lines are the records of another log (IIS, CBS, CMTrace or the like)"
    )]
    AnotherLog,
}

/// Runs `wsusfix diagnose`: the report goes to `out`, one line per unreadable file to `err`.
/// Returns [`exit::FINDINGS`] when a file's grade is `confirmed` or `likely`, [`exit::OK`] when
/// every file is `not found`, `other failure` or `not analysed`, [`exit::INVALID`] when a file
/// could not be read or is not one of these logs (the others are still reported),
/// [`exit::ERROR`] when `out` fails.
pub fn run(args: &DiagnoseArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if args.files.is_empty() {
        let _ = writeln!(err, "error: no log files given");
        return exit::INVALID;
    }
    let mut logs: Vec<(String, LogKind, String)> = Vec::new();
    let mut errors = Vec::new();
    for path in &args.files {
        let name = path.display().to_string();
        match read_log(path) {
            Ok((kind, text)) => logs.push((name, kind, text)),
            Err(e) => {
                let _ = writeln!(err, "error: {name}: {e}");
                errors.push(UnreadableInput {
                    path: name,
                    message: e.to_string(),
                });
            }
        }
    }
    let inputs: Vec<LogInput<'_>> = logs
        .iter()
        .map(|(path, kind, text)| LogInput {
            path,
            kind: *kind,
            text,
        })
        .collect();
    let mut diagnosis = diagnose::diagnose(&inputs);
    diagnosis.errors = errors;
    let rendered = match args.format {
        DiagnoseFormat::Json => diagnose::render_json(&diagnosis),
        DiagnoseFormat::Text if diagnosis.files.is_empty() => String::new(),
        DiagnoseFormat::Text => diagnose::render_text(&diagnosis),
    };
    if let Err(e) = out
        .write_all(rendered.as_bytes())
        .and_then(|()| out.flush())
    {
        let _ = writeln!(err, "error: cannot write the report: {e}");
        return exit::ERROR;
    }
    if !diagnosis.errors.is_empty() {
        exit::INVALID
    } else if diagnosis.symptom {
        exit::FINDINGS
    } else {
        exit::OK
    }
}

/// Reads, unzips and decodes the log at `path`, and tells its kind.
pub fn read_log(path: &Path) -> Result<(LogKind, String), ReadError> {
    let bytes = std::fs::read(path).map_err(ReadError::Io)?;
    let named_gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let text = decode(&gunzip(&bytes, named_gz)?)?;
    let detected = kind::examine(&text).map_err(|why| match why {
        Unrecognised::NoRecord => ReadError::NotALog,
        Unrecognised::AnotherLog => ReadError::AnotherLog,
    })?;
    Ok((detected.kind, text))
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The bytes of a gzip stream (all its members), or `bytes` themselves when they are not gzip.
pub fn gunzip(bytes: &[u8], named_gz: bool) -> Result<Cow<'_, [u8]>, ReadError> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return if named_gz && !bytes.is_empty() {
            Err(ReadError::NotGzip)
        } else {
            Ok(Cow::Borrowed(bytes))
        };
    }
    let mut plain = Vec::new();
    MultiGzDecoder::new(bytes)
        .read_to_end(&mut plain)
        .map_err(ReadError::Gzip)?;
    Ok(Cow::Owned(plain))
}

/// Decodes a log's bytes to text, as Windows may have written them.
pub fn decode(bytes: &[u8]) -> Result<String, ReadError> {
    if bytes.is_empty() {
        return Err(ReadError::Empty);
    }
    let text = if let Some((encoding, bom)) = Encoding::for_bom(bytes) {
        decode_strict(encoding, &bytes[bom..])?
    } else if let Some(encoding) = sniff_utf16(bytes) {
        decode_strict(encoding, bytes)?
    } else if bytes.contains(&0) {
        return Err(ReadError::Binary);
    } else {
        match std::str::from_utf8(bytes) {
            Ok(text) => text.to_string(),
            // The update agent writes in the ANSI code page; 1252 decodes every byte.
            Err(_) => WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
                .into_owned(),
        }
    };
    if looks_binary(&text) {
        return Err(ReadError::Binary);
    }
    Ok(text)
}

fn decode_strict(encoding: &'static Encoding, bytes: &[u8]) -> Result<String, ReadError> {
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(Cow::into_owned)
        .ok_or(ReadError::Undecodable(encoding.name()))
}

/// UTF-16 without a byte-order mark: mostly ASCII text has a zero in every other byte, the high
/// byte of each unit (odd offsets in little-endian, even offsets in big-endian).
fn sniff_utf16(bytes: &[u8]) -> Option<&'static Encoding> {
    let sample = &bytes[..bytes.len().min(4096) & !1];
    let units = sample.len() / 2;
    if units < 2 {
        return None;
    }
    let zeros = |parity: usize| {
        sample
            .iter()
            .skip(parity)
            .step_by(2)
            .filter(|&&b| b == 0)
            .count()
    };
    let (even, odd) = (zeros(0), zeros(1));
    let mostly = |n: usize| n * 10 >= units * 7;
    let rarely = |n: usize| n * 10 <= units;
    if mostly(odd) && rarely(even) {
        Some(UTF_16LE)
    } else if mostly(even) && rarely(odd) {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// Text logs hold tabs, line ends and printable characters; many other control characters mean
/// the bytes were not text.
fn looks_binary(text: &str) -> bool {
    let mut total = 0usize;
    let mut control = 0usize;
    for c in text.chars() {
        total += 1;
        if c == '\0' || (c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c')) {
            control += 1;
        }
    }
    control * 100 > total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_utf8_with_and_without_bom() {
        assert_eq!(decode(b"abc").unwrap(), "abc");
        assert_eq!(decode(b"\xef\xbb\xbfabc").unwrap(), "abc");
    }

    #[test]
    fn decodes_utf16_with_bom_and_by_sniffing() {
        let le: Vec<u8> = "2009-03-27\tPT"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let be: Vec<u8> = "2009-03-27\tPT"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(
            decode(&[b"\xff\xfe".as_slice(), &le].concat()).unwrap(),
            "2009-03-27\tPT"
        );
        assert_eq!(
            decode(&[b"\xfe\xff".as_slice(), &be].concat()).unwrap(),
            "2009-03-27\tPT"
        );
        assert_eq!(decode(&le).unwrap(), "2009-03-27\tPT");
        assert_eq!(decode(&be).unwrap(), "2009-03-27\tPT");
    }

    #[test]
    fn ansi_text_falls_back_to_code_page_1252() {
        assert_eq!(decode(b"Z\xfcrich").unwrap(), "Zürich");
    }

    #[test]
    fn rejects_binary_empty_and_broken_utf16() {
        assert!(matches!(decode(b""), Err(ReadError::Empty)));
        assert!(matches!(
            decode(b"\x7fELF\x02\x01\x01\0\0\0"),
            Err(ReadError::Binary)
        ));
        assert!(matches!(
            decode(b"\x01\x02\x03\x04abc"),
            Err(ReadError::Binary)
        ));
        // A lone high surrogate, then an odd trailing byte.
        assert!(matches!(
            decode(b"\xff\xfe\x00\xd8a\x00"),
            Err(ReadError::Undecodable("UTF-16LE"))
        ));
        assert!(matches!(
            decode(b"\xff\xfea\x00b"),
            Err(ReadError::Undecodable("UTF-16LE"))
        ));
    }

    #[test]
    fn gunzips_by_magic_and_checks_gz_names() {
        use flate2::{Compression, write::GzEncoder};
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(b"hello").unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(&*gunzip(&gz, false).unwrap(), b"hello");
        assert_eq!(&*gunzip(&gz, true).unwrap(), b"hello");
        assert_eq!(&*gunzip(b"plain", false).unwrap(), b"plain");
        assert!(matches!(gunzip(b"plain", true), Err(ReadError::NotGzip)));
        assert!(matches!(
            gunzip(&gz[..gz.len() - 6], false),
            Err(ReadError::Gzip(_))
        ));
    }
}
