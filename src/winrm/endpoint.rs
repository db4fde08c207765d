//! Where and how to reach one WinRM listener: scheme, port, path, authentication, TLS trust and
//! timeouts. Validation is pure (no I/O): it refuses combinations that can never work or that
//! would leak credentials, before any connection is made.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::util::secret::Secret;

use super::codepage;

/// Transport scheme of the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (default port 5985); messages are sealed with NTLM.
    Http,
    /// HTTPS (default port 5986); TLS 1.2 or newer must be enabled on the host.
    Https,
}

impl Scheme {
    /// The WinRM 2.0 default port for this scheme.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 5985,
            Scheme::Https => 5986,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// How the client authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// SPNEGO (RFC 4178) carrying NTLM, under the HTTP `Negotiate` scheme.
    Negotiate,
    /// Raw NTLMSSP under the HTTP `Negotiate` scheme, as pywinrm's `ntlm` transport does.
    Ntlm,
    /// HTTP Basic; only over HTTPS and only for local accounts on the host.
    Basic,
}

/// How a CA file is trusted (HTTPS only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaMode {
    /// The CA file's certificates are the only roots: a certificate any other authority signed
    /// is refused.
    #[default]
    Only,
    /// The CA file's certificates are trusted in addition to the system's roots.
    Add,
}

/// One WinRM listener and the credentials for it.
#[derive(Clone)]
pub struct Endpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// HTTP or HTTPS.
    pub scheme: Scheme,
    /// TCP port.
    pub port: u16,
    /// URL path of the listener, normally `/wsman`.
    pub path: String,
    /// Authentication method.
    pub auth: AuthMethod,
    /// `DOMAIN\user`, `user@realm` or `user`.
    pub username: String,
    /// The password; never logged, never part of an error.
    pub password: Secret,
    /// PEM file with the trusted root certificates (HTTPS only).
    pub ca_file: Option<PathBuf>,
    /// Whether `ca_file` replaces the system's roots (the default) or adds to them.
    pub ca_mode: CaMode,
    /// Accept any server certificate (HTTPS only). Opt-in per host, for lab use.
    pub insecure_skip_verify: bool,
    /// WS-Management OperationTimeout, whole seconds (default 20 s; the server caps it at
    /// MaxTimeoutms, 60 s by default).
    pub operation_timeout: Duration,
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// `WINRS_CODEPAGE` of the shell and the code page used to decode its output (437 by default;
    /// 65001 is UTF-8 but breaks batch files on Windows Server 2008 RTM).
    pub codepage: u32,
    /// The most stdout and stderr bytes one command may produce (16 MiB by default); a command
    /// that produces more is stopped with an error.
    pub max_output: u64,
}

/// Default WS-Management OperationTimeout (pywinrm's default).
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(20);
/// Default TCP connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default shell code page.
pub const DEFAULT_CODEPAGE: u32 = 437;
/// Default cap on one command's output (stdout and stderr together): 16 MiB. Our scripts print
/// kilobytes; a log tail a few megabytes.
pub const DEFAULT_MAX_OUTPUT: u64 = 16 * 1024 * 1024;

impl Endpoint {
    /// An endpoint with the usual defaults: the scheme's default port, `/wsman`, a 20 s
    /// OperationTimeout, a 10 s connect timeout, code page 437, TLS verification on.
    pub fn new(
        host: impl Into<String>,
        scheme: Scheme,
        auth: AuthMethod,
        username: impl Into<String>,
        password: Secret,
    ) -> Self {
        Endpoint {
            host: host.into(),
            scheme,
            port: scheme.default_port(),
            path: "/wsman".to_string(),
            auth,
            username: username.into(),
            password,
            ca_file: None,
            ca_mode: CaMode::Only,
            insecure_skip_verify: false,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            codepage: DEFAULT_CODEPAGE,
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }

    /// `host:port` as used in error messages (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The listener URL, e.g. `http://srv01:5985/wsman`.
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority(),
            self.path
        )
    }

    /// OperationTimeout in whole seconds (at least 1).
    pub(crate) fn operation_timeout_secs(&self) -> u64 {
        self.operation_timeout.as_secs().max(1)
    }

    /// Checks the configuration without any I/O. The message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        let host = self.host.trim();
        if host.is_empty() {
            return Err("the host name is empty".into());
        }
        if host
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '@'))
        {
            return Err(format!("the host name {host:?} is not a plain host name"));
        }
        if self.port == 0 {
            return Err("port 0 is not a valid port".into());
        }
        if !self.path.starts_with('/') || self.path.chars().any(|c| c.is_whitespace()) {
            return Err(format!(
                "the URL path {:?} must start with '/' and contain no spaces",
                self.path
            ));
        }
        if self.username.trim().is_empty() {
            return Err("the user name is empty".into());
        }
        let user = self.username.trim();
        let account = user.rsplit_once('\\').map_or(user, |(_, account)| account);
        let upn_parts_empty = !user.contains('\\')
            && user
                .rsplit_once('@')
                .is_some_and(|(name, realm)| name.is_empty() || realm.is_empty());
        if account.is_empty() || upn_parts_empty {
            return Err(format!(
                "the user name {:?} must look like DOMAIN\\user, user@realm or user",
                self.username
            ));
        }
        if self.auth != AuthMethod::Basic
            && let Err(e) = sspi::Username::parse(user)
        {
            return Err(format!(
                "the user name {:?} is not usable: {e}",
                self.username
            ));
        }
        if self.auth == AuthMethod::Basic && self.scheme == Scheme::Http {
            return Err(
                "Basic authentication over plain HTTP would send the password in clear \
                 text and WinRM refuses unencrypted Basic by default; use HTTPS, or NTLM / \
                 Negotiate over HTTP (messages are then encrypted)"
                    .into(),
            );
        }
        if self.operation_timeout < Duration::from_secs(1) {
            return Err("the operation timeout must be at least 1 second".into());
        }
        if self.max_output == 0 {
            return Err("the output limit must be greater than zero".into());
        }
        if self.connect_timeout.is_zero() {
            return Err("the connect timeout must be greater than zero".into());
        }
        if !codepage::is_supported(self.codepage) {
            return Err(format!(
                "code page {} is not supported (supported: {})",
                self.codepage,
                codepage::SUPPORTED_LIST
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url())
            .field("auth", &self.auth)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("ca_file", &self.ca_file)
            .field("ca_mode", &self.ca_mode)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .field("operation_timeout", &self.operation_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("codepage", &self.codepage)
            .field("max_output", &self.max_output)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(scheme: Scheme, auth: AuthMethod) -> Endpoint {
        Endpoint::new(
            "srv01",
            scheme,
            auth,
            "CORP\\admin",
            Secret::new("pa55-w0rd!"),
        )
    }

    #[test]
    fn defaults() {
        let e = ep(Scheme::Http, AuthMethod::Ntlm);
        assert_eq!(e.url(), "http://srv01:5985/wsman");
        assert_eq!(ep(Scheme::Https, AuthMethod::Basic).port, 5986);
        assert_eq!(e.operation_timeout, Duration::from_secs(20));
        assert_eq!(e.codepage, 437);
        assert!(e.validate().is_ok());
    }

    #[test]
    fn ipv6_authority_is_bracketed() {
        let mut e = ep(Scheme::Http, AuthMethod::Ntlm);
        e.host = "::1".into();
        assert_eq!(e.url(), "http://[::1]:5985/wsman");
    }

    #[test]
    fn basic_over_http_is_refused() {
        let err = ep(Scheme::Http, AuthMethod::Basic).validate().unwrap_err();
        assert!(
            err.contains("Basic authentication over plain HTTP"),
            "{err}"
        );
        assert!(ep(Scheme::Https, AuthMethod::Basic).validate().is_ok());
    }

    #[test]
    fn other_invalid_settings() {
        let mut e = ep(Scheme::Http, AuthMethod::Negotiate);
        e.host = " ".into();
        assert!(e.validate().is_err());
        let mut e = ep(Scheme::Http, AuthMethod::Negotiate);
        e.path = "wsman".into();
        assert!(e.validate().is_err());
        let mut e = ep(Scheme::Http, AuthMethod::Negotiate);
        e.codepage = 12345;
        assert!(e.validate().unwrap_err().contains("code page 12345"));
        let mut e = ep(Scheme::Http, AuthMethod::Negotiate);
        e.operation_timeout = Duration::from_millis(200);
        assert!(e.validate().is_err());
        let mut e = ep(Scheme::Http, AuthMethod::Negotiate);
        e.username = String::new();
        assert!(e.validate().is_err());
        let mut e = ep(Scheme::Http, AuthMethod::Negotiate);
        e.host = "user@srv01".into();
        assert!(e.validate().is_err());
        for user in ["CORP\\", "@corp.example", "user@"] {
            let mut e = ep(Scheme::Http, AuthMethod::Ntlm);
            e.username = user.into();
            assert!(e.validate().is_err(), "{user}");
        }
        for user in ["CORP\\admin", "admin@corp.example", "admin", ".\\admin"] {
            let mut e = ep(Scheme::Http, AuthMethod::Ntlm);
            e.username = user.into();
            assert!(e.validate().is_ok(), "{user}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let text = format!("{:?}", ep(Scheme::Https, AuthMethod::Basic));
        assert!(!text.contains("pa55-w0rd!"), "{text}");
        assert!(text.contains("Secret(***)"));
    }
}
