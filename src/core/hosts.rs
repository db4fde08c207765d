//! A hosts file in the `/etc/hosts` format: one address per line followed by its names, `#`
//! starting a comment. `discover --hosts` reads one to resolve the names WSUS reports before
//! asking the system resolver, and `sim serve` writes one for its loopback addresses.
//!
//! Pure: the caller reads the file and passes its text in.

use std::net::IpAddr;

/// A problem on one line of a hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// The entries of a hosts file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsFile {
    entries: Vec<(String, IpAddr)>,
}

impl HostsFile {
    /// Parses `text`. Every bad line is reported, not only the first.
    pub fn parse(text: &str) -> Result<HostsFile, Vec<HostsError>> {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let Some(address) = fields.next() else {
                continue;
            };
            let addr: IpAddr = match address.parse() {
                Ok(a) => a,
                Err(_) => {
                    errors.push(HostsError {
                        line: i + 1,
                        message: format!(
                            "`{address}` is not an IP address (a line is ADDRESS NAME [ALIAS...])"
                        ),
                    });
                    continue;
                }
            };
            let names: Vec<&str> = fields.collect();
            if names.is_empty() {
                errors.push(HostsError {
                    line: i + 1,
                    message: format!("{address} has no name after it"),
                });
                continue;
            }
            for n in names {
                if let Some(bad) = n
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
                {
                    errors.push(HostsError {
                        line: i + 1,
                        message: format!("`{n}` is not a host name (it holds `{bad}`)"),
                    });
                    continue;
                }
                entries.push((n.to_ascii_lowercase(), addr));
            }
        }
        if errors.is_empty() {
            Ok(HostsFile { entries })
        } else {
            Err(errors)
        }
    }

    /// The address of `name` (case-insensitive; the first line that names it wins). A fully
    /// qualified name that is not listed is also looked up by its first label.
    pub fn lookup(&self, name: &str) -> Option<IpAddr> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let find = |n: &str| self.entries.iter().find(|(e, _)| e == n).map(|(_, a)| *a);
        find(&name).or_else(|| {
            let short = name.split('.').next()?;
            (short != name).then(|| find(short)).flatten()
        })
    }

    /// The first name listed for `addr`.
    pub fn name_of(&self, addr: IpAddr) -> Option<&str> {
        self.entries
            .iter()
            .find(|(_, a)| *a == addr)
            .map(|(n, _)| n.as_str())
    }

    /// Number of names listed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the file lists no name.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_and_aliases() {
        let h = HostsFile::parse(
            "\u{feff}# the lab\n127.0.1.1  wsus-hq  wsus-hq.lab.example # top\n\n  \t\n::1 localhost6\n127.0.1.2\tWSUS-EU\n",
        )
        .unwrap();
        assert_eq!(h.len(), 4);
        assert_eq!(h.lookup("wsus-hq"), Some("127.0.1.1".parse().unwrap()));
        assert_eq!(
            h.lookup("WSUS-HQ.lab.example."),
            Some("127.0.1.1".parse().unwrap())
        );
        assert_eq!(h.lookup("wsus-eu"), Some("127.0.1.2".parse().unwrap()));
        assert_eq!(h.lookup("localhost6"), Some("::1".parse().unwrap()));
        assert_eq!(h.name_of("127.0.1.2".parse().unwrap()), Some("wsus-eu"));
        assert_eq!(h.lookup("wsus-us"), None);
    }

    #[test]
    fn a_fully_qualified_name_falls_back_to_its_first_label() {
        let h = HostsFile::parse("127.0.1.2 wsus-eu\n").unwrap();
        assert_eq!(
            h.lookup("wsus-eu.contoso.com"),
            Some("127.0.1.2".parse().unwrap())
        );
        assert_eq!(h.lookup("wsus-eu-paris.contoso.com"), None);
    }

    #[test]
    fn the_first_line_that_names_a_host_wins() {
        let h = HostsFile::parse("127.0.1.1 a\n127.0.1.9 a\n").unwrap();
        assert_eq!(h.lookup("a"), Some("127.0.1.1".parse().unwrap()));
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let e = HostsFile::parse("127.0.1.1 ok\n127.0.1 short\n\n127.0.1.3\n10.0.0.1 bad/name\n")
            .unwrap_err();
        assert_eq!(
            e,
            [
                HostsError {
                    line: 2,
                    message: "`127.0.1` is not an IP address (a line is ADDRESS NAME [ALIAS...])"
                        .into()
                },
                HostsError {
                    line: 4,
                    message: "127.0.1.3 has no name after it".into()
                },
                HostsError {
                    line: 5,
                    message: "`bad/name` is not a host name (it holds `/`)".into()
                },
            ]
        );
    }

    #[test]
    fn an_empty_file_is_valid_and_empty() {
        let h = HostsFile::parse("# nothing\n").unwrap();
        assert!(h.is_empty());
    }
}
