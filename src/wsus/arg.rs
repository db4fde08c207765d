//! Validated script arguments. Each type can only be built by its `parse`, which rejects what
//! the argument never needs to hold (control characters always, and per type everything outside
//! a narrow shape); a value that passes is rendered by [`quote`] into the script and as-is into
//! the marker's JSON. A rejected value is an [`InvalidArg`], never a script.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

use super::quote::quote;
use crate::core::inventory::check_address;
use crate::core::playbook::{is_guid, is_safe_path};

/// An argument that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("argument `{arg}` {reason}: {value}")]
pub struct InvalidArg {
    /// The argument's name in the script contract.
    pub arg: &'static str,
    /// The rejected value, escaped and shortened for display.
    pub value: String,
    /// Why it was rejected.
    pub reason: String,
}

impl InvalidArg {
    fn new(arg: &'static str, value: &str, reason: impl Into<String>) -> Self {
        const MAX: usize = 80;
        let mut shown: String = value.chars().take(MAX).collect();
        if value.chars().count() > MAX {
            shown.push_str("...");
        }
        InvalidArg {
            arg,
            value: format!("{shown:?}"),
            reason: reason.into(),
        }
    }
}

/// Rejects what no argument may hold, whatever its type: C0/C1 control characters (newlines,
/// CR, NUL, ...), the Unicode line and paragraph separators, and bidirectional or invisible
/// formatting characters that make a value read differently from what it is.
fn check_common(arg: &'static str, value: &str, max_len: usize) -> Result<(), InvalidArg> {
    if value.chars().count() > max_len {
        return Err(InvalidArg::new(
            arg,
            value,
            format!("is longer than {max_len} characters"),
        ));
    }
    if let Some(c) = value.chars().find(|&c| {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
    }) {
        return Err(InvalidArg::new(
            arg,
            value,
            format!("holds the control or formatting character U+{:04X}", c as u32),
        ));
    }
    Ok(())
}

/// A value that renders into a script as one or more quoted literals.
pub trait ScriptLiteral {
    /// The PowerShell text that stands for the value (single-quoted literals only).
    fn literal(&self) -> String;
    /// The value in the marker's JSON.
    fn json(&self) -> serde_json::Value;
}

macro_rules! string_arg {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// The validated value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ScriptLiteral for $name {
            fn literal(&self) -> String {
                quote(&self.0)
            }
            fn json(&self) -> serde_json::Value {
                serde_json::Value::String(self.0.clone())
            }
        }
    };
}

string_arg!(
    /// A GUID written 8-4-4-4-12, kept upper-case (update IDs, target group IDs).
    Guid
);
string_arg!(
    /// A Windows service name (`W3SVC`, `MSSQL$MICROSOFT##SSEE`).
    ServiceName
);
string_arg!(
    /// A specific culture name such as `en-US` or `sr-Latn-CS`.
    CultureName
);
string_arg!(
    /// The absolute path (drive or UNC) of a hotfix package, `.exe` or `.msp`.
    PackagePath
);
string_arg!(
    /// A path relative to the WSUS install folder, that cannot leave it.
    InstallPath
);
string_arg!(
    /// A SHA-256 digest, 64 lower-case hex digits.
    Sha256
);
string_arg!(
    /// Installer switches: letters, digits, spaces and `/ - : . _ =`.
    InstallerArgs
);
string_arg!(
    /// A host name or IP address to reach the WSUS web site by.
    HostName
);

impl Guid {
    /// Validates a GUID for argument `arg`.
    pub fn parse(arg: &'static str, value: &str) -> Result<Guid, InvalidArg> {
        check_common(arg, value, 36)?;
        if is_guid(value) {
            Ok(Guid(value.to_ascii_uppercase()))
        } else {
            Err(InvalidArg::new(
                arg,
                value,
                "is not a GUID (8-4-4-4-12 hex digits)",
            ))
        }
    }
}

impl ServiceName {
    /// Validates a service name for argument `arg`.
    pub fn parse(arg: &'static str, value: &str) -> Result<ServiceName, InvalidArg> {
        check_common(arg, value, 80)?;
        if !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.$#".contains(c))
        {
            Ok(ServiceName(value.to_string()))
        } else {
            Err(InvalidArg::new(
                arg,
                value,
                "is not a service name (letters, digits and _ - . $ #)",
            ))
        }
    }
}

impl CultureName {
    /// Validates a culture name: a 2-3 letter language, then up to three `-`-separated
    /// subtags of 2-8 letters or digits (`en-US`, `de-CH`, `sr-Latn-CS`, `es-419`).
    pub fn parse(arg: &'static str, value: &str) -> Result<CultureName, InvalidArg> {
        check_common(arg, value, 32)?;
        let mut parts = value.split('-');
        let lang = parts.next().unwrap_or("");
        let subtags: Vec<&str> = parts.collect();
        let ok = (2..=3).contains(&lang.len())
            && lang.chars().all(|c| c.is_ascii_alphabetic())
            && !subtags.is_empty()
            && subtags.len() <= 3
            && subtags.iter().all(|t| {
                (2..=8).contains(&t.len()) && t.chars().all(|c| c.is_ascii_alphanumeric())
            });
        if ok {
            Ok(CultureName(value.to_string()))
        } else {
            Err(InvalidArg::new(
                arg,
                value,
                "is not a specific culture name like en-US",
            ))
        }
    }
}

fn path_problem(value: &str) -> Option<&'static str> {
    if !is_safe_path(value) {
        return Some("must be printable ASCII without quotes, backticks, `$`, `;` or wildcards");
    }
    if value.split(['\\', '/']).any(|part| part == "..") {
        return Some("must not hold `..`");
    }
    None
}

impl PackagePath {
    /// Validates a package path: absolute (`C:\...` or `\\server\share\...`), safe characters,
    /// ending in `.exe` or `.msp`.
    pub fn parse(arg: &'static str, value: &str) -> Result<PackagePath, InvalidArg> {
        check_common(arg, value, 260)?;
        if let Some(p) = path_problem(value) {
            return Err(InvalidArg::new(arg, value, p));
        }
        let b = value.as_bytes();
        let drive = b.len() > 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\';
        let unc = value.starts_with("\\\\")
            && !value.starts_with("\\\\.\\")
            && value[2..].split('\\').filter(|p| !p.is_empty()).count() >= 3;
        if !drive && !unc {
            return Err(InvalidArg::new(
                arg,
                value,
                "must be an absolute path (C:\\... or \\\\server\\share\\...)",
            ));
        }
        let lower = value.to_ascii_lowercase();
        if !lower.ends_with(".exe") && !lower.ends_with(".msp") {
            return Err(InvalidArg::new(
                arg,
                value,
                "must name an .exe or .msp file",
            ));
        }
        Ok(PackagePath(value.to_string()))
    }

    /// True for a Windows Installer patch (run through msiexec).
    pub fn is_msp(&self) -> bool {
        self.0.to_ascii_lowercase().ends_with(".msp")
    }
}

impl InstallPath {
    /// Validates a path relative to the WSUS install folder.
    pub fn parse(arg: &'static str, value: &str) -> Result<InstallPath, InvalidArg> {
        check_common(arg, value, 260)?;
        if let Some(p) = path_problem(value) {
            return Err(InvalidArg::new(arg, value, p));
        }
        if value.starts_with(['\\', '/']) || value.contains(':') {
            return Err(InvalidArg::new(
                arg,
                value,
                "must be relative to the WSUS install folder",
            ));
        }
        Ok(InstallPath(value.to_string()))
    }
}

impl Sha256 {
    /// Validates a SHA-256 digest (any case; kept lower-case).
    pub fn parse(arg: &'static str, value: &str) -> Result<Sha256, InvalidArg> {
        check_common(arg, value, 64)?;
        if value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(Sha256(value.to_ascii_lowercase()))
        } else {
            Err(InvalidArg::new(arg, value, "is not 64 hex digits"))
        }
    }
}

impl InstallerArgs {
    /// Validates installer switches (may be empty).
    pub fn parse(arg: &'static str, value: &str) -> Result<InstallerArgs, InvalidArg> {
        check_common(arg, value, 512)?;
        if value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " /-:._=".contains(c))
        {
            Ok(InstallerArgs(value.to_string()))
        } else {
            Err(InvalidArg::new(
                arg,
                value,
                "may only hold letters, digits, spaces and / - : . _ =",
            ))
        }
    }
}

impl HostName {
    /// Validates a host name or IP address.
    pub fn parse(arg: &'static str, value: &str) -> Result<HostName, InvalidArg> {
        check_common(arg, value, 253)?;
        match check_address(value) {
            Ok(()) => Ok(HostName(value.to_string())),
            Err((msg, _)) => Err(InvalidArg::new(
                arg,
                value,
                format!("is not a host name or IP address ({msg})"),
            )),
        }
    }
}

/// A number of seconds to wait, 1 to 86 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seconds(u32);

impl Seconds {
    /// The largest accepted value: one day.
    pub const MAX: u32 = 86_400;

    /// Validates a timeout.
    pub fn parse(arg: &'static str, value: u32) -> Result<Seconds, InvalidArg> {
        if (1..=Self::MAX).contains(&value) {
            Ok(Seconds(value))
        } else {
            Err(InvalidArg::new(
                arg,
                &value.to_string(),
                format!("must be 1 to {} seconds", Self::MAX),
            ))
        }
    }

    /// The value in seconds.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl ScriptLiteral for Seconds {
    fn literal(&self) -> String {
        quote(&self.0.to_string())
    }
    fn json(&self) -> serde_json::Value {
        self.0.into()
    }
}

/// A Knowledge Base article number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KbNumber(u32);

impl KbNumber {
    /// Validates a KB number (1 to 99 999 999).
    pub fn parse(arg: &'static str, value: u32) -> Result<KbNumber, InvalidArg> {
        if (1..=99_999_999).contains(&value) {
            Ok(KbNumber(value))
        } else {
            Err(InvalidArg::new(
                arg,
                &value.to_string(),
                "must be a KB number from 1 to 99999999",
            ))
        }
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl ScriptLiteral for KbNumber {
    fn literal(&self) -> String {
        quote(&self.0.to_string())
    }
    fn json(&self) -> serde_json::Value {
        self.0.into()
    }
}

/// A TCP port (1 to 65 535).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Port(u16);

impl Port {
    /// Validates a port.
    pub fn parse(arg: &'static str, value: u16) -> Result<Port, InvalidArg> {
        if value == 0 {
            Err(InvalidArg::new(arg, "0", "must be a port from 1 to 65535"))
        } else {
            Ok(Port(value))
        }
    }

    /// The number.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl ScriptLiteral for Port {
    fn literal(&self) -> String {
        quote(&self.0.to_string())
    }
    fn json(&self) -> serde_json::Value {
        self.0.into()
    }
}

impl ScriptLiteral for bool {
    fn literal(&self) -> String {
        quote(if *self { "true" } else { "false" })
    }
    fn json(&self) -> serde_json::Value {
        (*self).into()
    }
}

/// A point in time, written as ISO 8601 UTC with milliseconds (`2026-11-24T09:30:00.000Z`).
/// `None` renders as the empty string ("since the beginning").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Since(Option<DateTime<Utc>>);

impl Since {
    /// A time, or `None` for no lower bound.
    pub fn new(at: Option<DateTime<Utc>>) -> Since {
        Since(at)
    }

    /// The time, if any.
    pub fn get(self) -> Option<DateTime<Utc>> {
        self.0
    }

    fn text(self) -> String {
        self.0
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
            .unwrap_or_default()
    }
}

impl ScriptLiteral for Since {
    fn literal(&self) -> String {
        quote(&self.text())
    }
    fn json(&self) -> serde_json::Value {
        self.text().into()
    }
}

impl<T: ScriptLiteral> ScriptLiteral for Vec<T> {
    /// The elements' literals separated by `, ` (the template wraps them in `@(...)`).
    fn literal(&self) -> String {
        self.iter()
            .map(ScriptLiteral::literal)
            .collect::<Vec<_>>()
            .join(", ")
    }
    fn json(&self) -> serde_json::Value {
        self.iter().map(ScriptLiteral::json).collect()
    }
}

/// Validates a list of service names (at most 64).
pub fn service_names<S: AsRef<str>>(
    arg: &'static str,
    names: &[S],
) -> Result<Vec<ServiceName>, InvalidArg> {
    if names.len() > 64 {
        return Err(InvalidArg::new(
            arg,
            &format!("{} names", names.len()),
            "must hold at most 64 service names",
        ));
    }
    names
        .iter()
        .map(|n| ServiceName::parse(arg, n.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_normalised() {
        let g = Guid::parse("update", "d359f493-0aad-43fa-af5c-6763326cd98f").unwrap();
        assert_eq!(g.as_str(), "D359F493-0AAD-43FA-AF5C-6763326CD98F");
        assert_eq!(g.literal(), "'D359F493-0AAD-43FA-AF5C-6763326CD98F'");
        assert!(Guid::parse("update", "{D359F493-0AAD-43FA-AF5C-6763326CD98F}").is_err());
        assert!(Guid::parse("update", "D359F493-0AAD-43FA-AF5C-6763326CD98F'").is_err());
    }

    #[test]
    fn rejections_name_the_argument_and_show_the_value_escaped() {
        let e = ServiceName::parse("names", "W3SVC\n; calc").unwrap_err();
        assert_eq!(e.arg, "names");
        assert_eq!(
            e.to_string(),
            "argument `names` holds the control or formatting character U+000A: \"W3SVC\\n; calc\""
        );
        let long = "x".repeat(600);
        let e = InstallerArgs::parse("args", &long).unwrap_err();
        assert!(e.to_string().len() < 200, "{e}");
    }

    #[test]
    fn cultures() {
        for ok in ["en-US", "de-CH", "sr-Latn-CS", "es-419", "zh-CN"] {
            assert!(CultureName::parse("culture", ok).is_ok(), "{ok}");
        }
        for bad in [
            "en",
            "",
            "en_US",
            "en-US'",
            "e-US",
            "en-US-x-y-z",
            "en-\u{2019}",
        ] {
            assert!(CultureName::parse("culture", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn package_paths() {
        for ok in [
            "\\\\fileserver\\wsusfix\\KB954960\\WSUS3SP1-KB954960-x64.exe",
            "C:\\Temp\\Program Files (x86)\\fix.msp",
        ] {
            assert!(PackagePath::parse("path", ok).is_ok(), "{ok}");
        }
        for bad in [
            "fix.exe",
            "\\\\server\\fix.exe",
            "\\\\.\\C:\\fix.exe",
            "C:\\fix.bat",
            "C:\\a\\..\\fix.exe",
            "C:\\fix'.exe",
            "C:\\f$(x).exe",
            "C:\\f\u{e9}.exe",
        ] {
            assert!(PackagePath::parse("path", bad).is_err(), "{bad}");
        }
        assert!(
            PackagePath::parse("path", "C:\\x\\FIX.MSP")
                .unwrap()
                .is_msp()
        );
    }

    #[test]
    fn install_paths_stay_inside() {
        assert!(InstallPath::parse("path", "WebServices\\ClientWebService\\bin\\x.dll").is_ok());
        for bad in [
            "\\Windows\\x.dll",
            "C:\\x.dll",
            "..\\x.dll",
            "a\\..\\..\\x",
            "a/../b",
        ] {
            assert!(InstallPath::parse("path", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_and_times() {
        assert!(Seconds::parse("timeout", 0).is_err());
        assert!(Seconds::parse("timeout", 86_401).is_err());
        assert_eq!(Seconds::parse("timeout", 600).unwrap().literal(), "'600'");
        assert!(KbNumber::parse("kb", 0).is_err());
        assert!(Port::parse("port", 0).is_err());
        let t = DateTime::parse_from_rfc3339("2026-11-24T10:30:00+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(Since::new(Some(t)).literal(), "'2026-11-24T09:30:00.000Z'");
        assert_eq!(Since::new(None).literal(), "''");
        assert_eq!(true.literal(), "'true'");
    }

    #[test]
    fn lists_render_as_comma_separated_literals() {
        let names = service_names("names", &["W3SVC", "MSSQL$SSEE"]).unwrap();
        assert_eq!(names.literal(), "'W3SVC', 'MSSQL$SSEE'");
        assert_eq!(Vec::<ServiceName>::new().literal(), "");
        assert_eq!(names.json(), serde_json::json!(["W3SVC", "MSSQL$SSEE"]));
        assert!(service_names("names", &vec!["a"; 65]).is_err());
    }
}
