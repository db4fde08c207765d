//! Reading a script's output per the contract: `wsusfix:KEY=BASE64` lines on stdout (other
//! lines ignored), exit code 0 for success, 1 with `error_kind` for a known failure. Pure.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::error::{ErrorKind, Malformed, OpError};
use super::op::OpName;
use super::remote::RemoteOutput;

const PREFIX: &str = "wsusfix:";

/// The keys of one output, in order; a key may repeat (its values form a list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    entries: Vec<(String, String)>,
}

impl Keys {
    /// Keys from `(key, value)` pairs (for tests and fakes).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Keys {
        Keys {
            entries: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Decodes every `wsusfix:` line of `stdout`.
    pub fn decode(stdout: &str) -> Result<Keys, Malformed> {
        let mut entries = Vec::new();
        for (i, raw) in stdout.lines().enumerate() {
            let line = raw.trim_end();
            let Some(rest) = line.strip_prefix(PREFIX) else {
                continue;
            };
            let Some((key, b64)) = rest.split_once('=') else {
                return Err(Malformed::BadLine { line: i + 1 });
            };
            if key.is_empty()
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(Malformed::BadLine { line: i + 1 });
            }
            let bytes = BASE64.decode(b64).map_err(|_| Malformed::BadBase64 {
                key: key.to_string(),
            })?;
            let value = String::from_utf8(bytes).map_err(|_| Malformed::NotUtf8 {
                key: key.to_string(),
            })?;
            entries.push((key.to_string(), value));
        }
        Ok(Keys { entries })
    }

    /// Every `(key, value)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a single-valued key, if present.
    pub fn opt<'a>(&'a self, key: &str) -> Result<Option<&'a str>, Malformed> {
        let mut values = self
            .entries
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        let more = values.count();
        if more > 0 {
            return Err(Malformed::Repeated {
                key: key.to_string(),
                count: more + 1,
            });
        }
        Ok(first)
    }

    /// The value of a key that must be present once.
    pub fn one<'a>(&'a self, key: &str) -> Result<&'a str, Malformed> {
        self.opt(key)?.ok_or_else(|| Malformed::Missing {
            key: key.to_string(),
        })
    }

    /// A `true`/`false` key.
    pub fn bool(&self, key: &str) -> Result<bool, Malformed> {
        parse_bool(key, self.one(key)?)
    }

    /// A key holding a number.
    pub fn number<T: std::str::FromStr>(&self, key: &str) -> Result<T, Malformed> {
        let v = self.one(key)?;
        v.trim()
            .parse()
            .map_err(|_| Malformed::bad_value(key, v, "a number"))
    }

    fn without(&self, skip: &[&str]) -> Keys {
        Keys {
            entries: self
                .entries
                .iter()
                .filter(|(k, _)| !skip.contains(&k.as_str()))
                .cloned()
                .collect(),
        }
    }
}

pub(crate) fn parse_bool(key: &str, v: &str) -> Result<bool, Malformed> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Malformed::bad_value(key, v, "true or false")),
    }
}

/// Reads a script's output: the keys of a success, or the failure as an [`OpError`].
pub fn parse_output(op: OpName, out: &RemoteOutput) -> Result<Keys, OpError> {
    let malformed = |detail| OpError::Malformed { op, detail };
    match out.exit_code {
        0 => {
            let keys = Keys::decode(&out.stdout).map_err(malformed)?;
            if let Some(kind) = keys.all("error_kind").next() {
                return Err(malformed(Malformed::ErrorOnSuccess {
                    kind: kind.to_string(),
                }));
            }
            Ok(keys)
        }
        1 => {
            let keys = Keys::decode(&out.stdout).map_err(malformed)?;
            let Some(kind_text) = keys.opt("error_kind").map_err(malformed)? else {
                return Err(OpError::Unexpected {
                    op,
                    exit_code: 1,
                    stderr: out.stderr.clone(),
                });
            };
            let kind = ErrorKind::parse(kind_text).ok_or_else(|| {
                malformed(Malformed::UnknownKind {
                    kind: kind_text.to_string(),
                })
            })?;
            let error_type = keys.opt("error_type").map_err(malformed)?.unwrap_or("");
            let message = keys.opt("error").map_err(malformed)?.unwrap_or("");
            Err(OpError::Known {
                op,
                kind,
                error_type: error_type.to_string(),
                message: message.to_string(),
                extra: keys.without(&["error_kind", "error_type", "error"]),
            })
        }
        code => Err(OpError::Unexpected {
            op,
            exit_code: code,
            stderr: out.stderr.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(key: &str, value: &str) -> String {
        format!("wsusfix:{key}={}\r\n", BASE64.encode(value))
    }

    fn out(code: i32, stdout: &str) -> RemoteOutput {
        RemoteOutput {
            exit_code: code,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    #[test]
    fn keys_decode_in_order_and_ignore_noise() {
        let text = format!(
            "noise\n{}WARNING: something\n{}{}wsusfix-other:x\n",
            line("changed", "true"),
            line("service", "W3SVC|Running"),
            line("service", "SMTPSVC|NotInstalled"),
        );
        let k = Keys::decode(&text).unwrap();
        assert!(k.bool("changed").unwrap());
        assert_eq!(
            k.all("service").collect::<Vec<_>>(),
            ["W3SVC|Running", "SMTPSVC|NotInstalled"]
        );
        assert_eq!(
            k.one("service"),
            Err(Malformed::Repeated {
                key: "service".into(),
                count: 2
            })
        );
        assert_eq!(
            k.one("absent"),
            Err(Malformed::Missing {
                key: "absent".into()
            })
        );
    }

    #[test]
    fn empty_values_and_unicode() {
        let k = Keys::decode(&format!(
            "{}{}",
            line("dll_version", ""),
            line("e", "Zürich ’x’")
        ))
        .unwrap();
        assert_eq!(k.one("dll_version").unwrap(), "");
        assert_eq!(k.one("e").unwrap(), "Zürich ’x’");
    }

    #[test]
    fn bad_lines_are_malformed() {
        assert_eq!(
            Keys::decode("x\nwsusfix:novalue\n"),
            Err(Malformed::BadLine { line: 2 })
        );
        assert_eq!(
            Keys::decode("wsusfix:Upper=dHJ1ZQ==\n"),
            Err(Malformed::BadLine { line: 1 })
        );
        assert_eq!(
            Keys::decode("wsusfix:k=not base64!\n"),
            Err(Malformed::BadBase64 { key: "k".into() })
        );
        assert_eq!(
            Keys::decode("wsusfix:k=/w==\n"),
            Err(Malformed::NotUtf8 { key: "k".into() })
        );
    }

    #[test]
    fn exit_codes() {
        let ok = parse_output(OpName::Decline, &out(0, &line("changed", "true"))).unwrap();
        assert!(ok.bool("changed").unwrap());

        let known = parse_output(
            OpName::InstallHotfix,
            &out(
                1,
                &format!(
                    "{}{}{}{}",
                    line("actual_sha256", "ab"),
                    line("error_kind", "hash-mismatch"),
                    line(
                        "error_type",
                        "System.Security.Cryptography.CryptographicException"
                    ),
                    line("error", "has SHA-256 ab")
                ),
            ),
        )
        .unwrap_err();
        match known {
            OpError::Known {
                op,
                kind,
                error_type,
                message,
                extra,
            } => {
                assert_eq!(op, OpName::InstallHotfix);
                assert_eq!(kind, ErrorKind::HashMismatch);
                assert_eq!(
                    error_type,
                    "System.Security.Cryptography.CryptographicException"
                );
                assert_eq!(message, "has SHA-256 ab");
                assert_eq!(extra, Keys::from_pairs([("actual_sha256", "ab")]));
            }
            other => panic!("{other:?}"),
        }

        let no_kind = RemoteOutput {
            exit_code: 1,
            stdout: "partial\n".into(),
            stderr: "The term 'Get-Foo' is not recognized".into(),
        };
        match parse_output(OpName::Facts, &no_kind).unwrap_err() {
            OpError::Unexpected {
                exit_code, stderr, ..
            } => {
                assert_eq!(exit_code, 1);
                assert_eq!(stderr, "The term 'Get-Foo' is not recognized");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_output(OpName::Facts, &out(-1073741510, "")),
            Err(OpError::Unexpected {
                exit_code: -1073741510,
                ..
            })
        ));
        assert!(matches!(
            parse_output(OpName::Facts, &out(0, &line("error_kind", "other"))),
            Err(OpError::Malformed {
                detail: Malformed::ErrorOnSuccess { .. },
                ..
            })
        ));
        assert!(matches!(
            parse_output(OpName::Facts, &out(1, &line("error_kind", "gremlins"))),
            Err(OpError::Malformed {
                detail: Malformed::UnknownKind { .. },
                ..
            })
        ));
    }
}
