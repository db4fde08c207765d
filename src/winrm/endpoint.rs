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
    /// SPNEGO (RFC 4178) under the HTTP `Negotiate` scheme: Kerberos when the user is a
    /// `user@REALM` name whose realm has a KDC (in [`Endpoint::kdc`] or `KRB5_CONFIG`) and the
    /// SPN host is a name, otherwise NTLM; with Kerberos, NTLM when the KDC cannot be reached
    /// (as Windows' Negotiate does).
    Negotiate,
    /// Kerberos only (in SPNEGO, under the HTTP `Negotiate` scheme): never NTLM.
    Kerberos,
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
    /// `DOMAIN\user`, `user@realm` or `user` (Kerberos: `user@REALM`).
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
    /// The host name in the service principal, when it is not [`Endpoint::host`] (which may be
    /// an IP address or another name that is dialled). Lower-cased when used.
    pub spn_host: Option<String>,
    /// The service class of the service principal: `HTTP` (default; Active Directory maps it to
    /// the computer's `HOST/` SPN), or `WSMAN` where WinRM registered its own.
    pub spn_service: String,
    /// The KDC of the user's realm, `HOST` or `HOST:PORT`; `None`: the realm's entry in
    /// `KRB5_CONFIG` (`/etc/krb5.conf` when unset).
    pub kdc: Option<String>,
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
/// Default service class of the service principal.
pub const DEFAULT_SPN_SERVICE: &str = "HTTP";

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
            spn_host: None,
            spn_service: DEFAULT_SPN_SERVICE.to_string(),
            kdc: None,
        }
    }

    /// The host name of the service principal, lower-cased (MIT is case-exact, and Active
    /// Directory registers SPNs in lower case).
    pub fn spn_host(&self) -> String {
        self.spn_host
            .as_deref()
            .unwrap_or(&self.host)
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase()
    }

    /// The service principal name, e.g. `HTTP/wsus-hq.corp.example`.
    pub fn spn(&self) -> String {
        format!("{}/{}", self.spn_service, self.spn_host())
    }

    /// Whether the SPN host is an IP address (Kerberos cannot name a service by one).
    pub fn spn_host_is_ip(&self) -> bool {
        self.spn_host().parse::<std::net::IpAddr>().is_ok()
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
        if self.auth == AuthMethod::Kerberos {
            self.validate_kerberos(user)?;
        }
        if let Some(h) = self.spn_host.as_deref()
            && (h.trim().is_empty() || h.chars().any(|c| c.is_whitespace() || "/@\\".contains(c)))
        {
            return Err(format!("the SPN host {h:?} is not a plain host name"));
        }
        let service = self.spn_service.as_str();
        if service.is_empty()
            || !service.starts_with(|c: char| c.is_ascii_alphabetic())
            || !service
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(format!(
                "the SPN service class {service:?} must be a name like HTTP or WSMAN"
            ));
        }
        if let Some(kdc) = &self.kdc {
            super::kerberos::KdcAddr::parse(kdc)?;
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

impl Endpoint {
    fn validate_kerberos(&self, user: &str) -> Result<(), String> {
        if !super::kerberos::is_upn(user) {
            let hint = match user.split_once('\\') {
                Some((domain, account)) if !domain.is_empty() && domain != "." => format!(
                    "write it as {account}@REALM with the domain's DNS name in capitals, e.g. \
                     {account}@{}.EXAMPLE",
                    domain.to_ascii_uppercase()
                ),
                _ => "write it as user@REALM (the account's user principal name)".to_string(),
            };
            return Err(format!(
                "Kerberos needs the user principal name (user@REALM), not {user:?}: a down-level \
                 name does not say the realm; {hint}"
            ));
        }
        if self.spn_host_is_ip() {
            return Err(format!(
                "Kerberos names the service by the host's DNS name, and {} is an IP address: set \
                 the SPN host (`host:` in the inventory) to the name its SPN is registered under",
                self.spn_host()
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
            .field("spn", &self.spn())
            .field("kdc", &self.kdc)
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
    fn kerberos_needs_a_upn_and_a_host_name() {
        let mut e = ep(Scheme::Http, AuthMethod::Kerberos);
        let err = e.validate().unwrap_err();
        assert!(err.contains("user principal name"), "{err}");
        assert!(err.contains("admin@CORP.EXAMPLE"), "{err}");
        e.username = "admin@CORP.EXAMPLE".into();
        assert!(e.validate().is_ok());
        assert_eq!(e.spn(), "HTTP/srv01");
        e.host = "127.0.1.1".into();
        let err = e.validate().unwrap_err();
        assert!(err.contains("127.0.1.1 is an IP address"), "{err}");
        e.spn_host = Some("WSUS-HQ.Corp.Example".into());
        assert!(e.validate().is_ok());
        assert_eq!(e.spn(), "HTTP/wsus-hq.corp.example");
        e.spn_service = "WSMAN".into();
        assert_eq!(e.spn(), "WSMAN/wsus-hq.corp.example");
        e.spn_service = "HTTP/x".into();
        assert!(e.validate().is_err());
        e.spn_service = "HTTP".into();
        e.kdc = Some("dc01.corp.example:88".into());
        assert!(e.validate().is_ok());
        e.kdc = Some("https://proxy/KdcProxy".into());
        assert!(e.validate().is_err());
        // NTLM does not care about the SPN host being an IP.
        let mut n = ep(Scheme::Http, AuthMethod::Ntlm);
        n.host = "127.0.1.1".into();
        assert!(n.validate().is_ok());
    }

    #[test]
    fn debug_hides_the_password() {
        let text = format!("{:?}", ep(Scheme::Https, AuthMethod::Basic));
        assert!(!text.contains("pa55-w0rd!"), "{text}");
        assert!(text.contains("Secret(***)"));
    }
}
