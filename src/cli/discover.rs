//! `wsusfix discover`: walk a WSUS hierarchy from its top server through the WSUS API and write
//! the inventory it finds, with comments for what it could not learn.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::core::discovered::{self, Discovery};
use crate::core::hosts::HostsFile;
use crate::core::inventory::{self, AuthKind, CaMode, Credentials, Scheme, SecretRef, WinrmTarget};
use crate::core::playbook;
use crate::exec::connect::WinrmConnector;
use crate::exec::walk::{self, WinrmProbe};
use crate::exit;
use crate::util::credentials::Resolver;

/// WinRM scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemeArg {
    /// HTTP with NTLM message encryption (port 5985).
    Http,
    /// HTTPS (port 5986).
    Https,
}

/// WinRM authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthArg {
    /// SPNEGO: Kerberos with a user@REALM account whose realm has a KDC, else NTLM.
    Negotiate,
    /// Kerberos only (with a user@REALM account; see --kdc).
    Kerberos,
    /// Raw NTLMSSP.
    Ntlm,
    /// Basic (HTTPS only).
    Basic,
}

/// Arguments of `discover`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiscoverArgs {
    /// The server to start from, normally the top one: a name (looked up in --hosts, then by the
    /// system resolver) or an address.
    #[arg(long, value_name = "HOST")]
    pub root: String,
    /// Write the inventory to FILE (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// A hosts file (/etc/hosts format) consulted before the system resolver.
    #[arg(long, value_name = "FILE")]
    pub hosts: Option<PathBuf>,
    /// The account to log on with (DOMAIN\user, user@realm or a local user).
    #[arg(long, value_name = "U", env = "WSUSFIX_USERNAME")]
    pub username: String,
    /// Where the password comes from: env:VAR, file:PATH or prompt. Written into the inventory as
    /// given; the password itself never is.
    #[arg(long, value_name = "REF", default_value = "env:WSUSFIX_PASSWORD")]
    pub password: String,
    /// WinRM scheme.
    #[arg(long, value_enum, default_value_t = SchemeArg::Http)]
    pub scheme: SchemeArg,
    /// WinRM port (default: 5985 for http, 5986 for https).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// WinRM authentication.
    #[arg(long, value_enum, default_value_t = AuthArg::Negotiate)]
    pub auth: AuthArg,
    /// With --scheme https: a PEM file of CA certificates to trust (written into the inventory).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Log on to a downstream server only if its name ends in this DNS suffix (corp.example) or
    /// it is in this network (10.1.0.0/16); repeatable. Names in --hosts are always allowed;
    /// the others are listed as found but not contacted.
    #[arg(long, value_name = "SUFFIX|CIDR")]
    pub allow: Vec<String>,
    /// The KDC of the account's realm, HOST or HOST:PORT (written into the inventory); without
    /// it, the realm's entry in KRB5_CONFIG.
    #[arg(long, value_name = "HOST:PORT")]
    pub kdc: Option<String>,
}

/// Servers read at once.
const PARALLEL: usize = 16;

/// Parses a password reference as the inventory takes it.
pub fn parse_secret_ref(text: &str) -> Result<SecretRef, String> {
    if text == "prompt" {
        return Ok(SecretRef::Prompt);
    }
    if let Some(var) = text.strip_prefix("env:") {
        let valid = !var.is_empty()
            && !var.starts_with(|c: char| c.is_ascii_digit())
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        return if valid {
            Ok(SecretRef::Env(var.to_string()))
        } else {
            Err(format!(
                "--password `{text}` does not name an environment variable (letters, digits and underscores)"
            ))
        };
    }
    if let Some(path) = text.strip_prefix("file:") {
        return if path.trim().is_empty() {
            Err("--password `file:` needs a path".into())
        } else {
            Ok(SecretRef::File(path.to_string()))
        };
    }
    Err("--password takes a reference, not a password: env:VAR, file:PATH or prompt (it is written into the inventory)".into())
}

/// Reads and parses the `--hosts` file; errors name the file and line.
fn load_hosts(path: &Path, err: &mut dyn Write) -> Result<HostsFile, i32> {
    let text = super::inputs::read_text(path, "hosts file").map_err(|m| {
        let _ = writeln!(err, "error: {m}");
        exit::INVALID
    })?;
    HostsFile::parse(&text).map_err(|errors| {
        for e in errors {
            let _ = writeln!(err, "error: {}:{}: {}", path.display(), e.line, e.message);
        }
        let _ = writeln!(
            err,
            "  = help: a hosts file has lines `ADDRESS NAME [ALIAS...]`, `#` starts a comment"
        );
        exit::INVALID
    })
}

/// Runs `discover`.
pub fn run(a: &DiscoverArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let password = match parse_secret_ref(&a.password) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return exit::INVALID;
        }
    };
    let scheme = match a.scheme {
        SchemeArg::Http => Scheme::Http,
        SchemeArg::Https => Scheme::Https,
    };
    let auth = match a.auth {
        AuthArg::Negotiate => AuthKind::Negotiate,
        AuthArg::Kerberos => AuthKind::Kerberos,
        AuthArg::Ntlm => AuthKind::Ntlm,
        AuthArg::Basic => AuthKind::Basic,
    };
    if auth == AuthKind::Basic && scheme == Scheme::Http {
        let _ = writeln!(
            err,
            "error: --auth basic over --scheme http would send the password in clear (and WinRM refuses it)\n  = help: use --scheme https, or --auth negotiate"
        );
        return exit::INVALID;
    }
    let ca_file = match &a.ca_file {
        None => None,
        Some(_) if scheme == Scheme::Http => {
            let _ = writeln!(err, "error: --ca-file only applies with --scheme https");
            return exit::INVALID;
        }
        Some(f) => match std::fs::canonicalize(f) {
            Ok(abs) => Some(abs.display().to_string()),
            Err(e) => {
                let _ = writeln!(err, "error: cannot read the CA file {}: {e}", f.display());
                return exit::INVALID;
            }
        },
    };
    let allow = match walk::AllowList::parse(&a.allow) {
        Ok(allow) => allow,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return exit::INVALID;
        }
    };
    let port = a.port.unwrap_or(scheme.default_port());
    if port == 0 {
        let _ = writeln!(err, "error: --port must be from 1 to 65535");
        return exit::INVALID;
    }
    if a.username.trim().is_empty() {
        let _ = writeln!(err, "error: --username is empty");
        return exit::INVALID;
    }
    if auth == AuthKind::Kerberos && inventory::upn_realm(&a.username).is_none() {
        let _ = writeln!(
            err,
            "error: --auth kerberos needs the user principal name (user@REALM), not {:?}\n  = help: a down-level DOMAIN\\user name does not say the realm; write e.g. wsusfix@CORP.EXAMPLE",
            a.username
        );
        return exit::INVALID;
    }
    if let Some(kdc) = &a.kdc
        && let Err(m) = inventory::check_kdc(kdc)
    {
        let _ = writeln!(err, "error: --kdc: {m}");
        return exit::INVALID;
    }
    let kdc = a
        .kdc
        .clone()
        .filter(|_| matches!(auth, AuthKind::Kerberos | AuthKind::Negotiate))
        .filter(|_| inventory::upn_realm(&a.username).is_some());
    if let Err((msg, _)) = inventory::check_address(&a.root) {
        let _ = writeln!(err, "error: --root: {msg}");
        return exit::INVALID;
    }
    let hosts = match &a.hosts {
        Some(p) => match load_hosts(p, err) {
            Ok(h) => Some((h, p.display().to_string())),
            Err(code) => return code,
        },
        None => None,
    };
    // The root's inventory name: its name, or the name the hosts file gives its address.
    let root_name = match a.root.parse::<std::net::IpAddr>() {
        Ok(ip) => hosts
            .as_ref()
            .and_then(|(h, _)| h.name_of(ip))
            .map(str::to_string)
            .unwrap_or_else(|| walk::inventory_name(&a.root).0),
        Err(_) => walk::inventory_name(&a.root).0,
    };
    let base = match &a.out {
        Some(p) => super::remote::base_dir(p).to_path_buf(),
        None => PathBuf::from("."),
    };
    let resolver = Arc::new(Resolver::new(&base));
    if let Err(e) = resolver.resolve(&password, &a.username) {
        let _ = writeln!(err, "error: {e}");
        return exit::INVALID;
    }
    let update = match playbook::load(playbook::DEFAULT_PLAYBOOK).playbook {
        Some(pb) => crate::exec::run::update_of(&pb),
        None => {
            let _ = writeln!(err, "error: the built-in playbook does not load");
            return exit::ERROR;
        }
    };
    let rt = match super::remote::runtime(err) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let probe = Arc::new(WinrmProbe {
        connector: Arc::new(WinrmConnector::new(resolver, &base)),
        hosts: hosts.clone(),
        winrm: WinrmTarget {
            scheme,
            port,
            auth,
            ca_file: ca_file.clone(),
            ca_mode: CaMode::Only,
            insecure_skip_tls_verify: false,
            operation_timeout: 20,
            max_output_mb: inventory::DEFAULT_MAX_OUTPUT_MB,
            spn_service: None,
            kdc: kdc.clone(),
        },
        credentials: Credentials {
            username: a.username.clone(),
            password: password.clone(),
        },
        update,
        retry: crate::exec::facts::read_retry(),
    });
    let found = match rt.block_on(walk::walk(probe, &root_name, &a.root, PARALLEL, &allow)) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(
                err,
                "error: {}\n  = help: check --root, the account and the WinRM settings (--scheme, --port, --auth); nothing was written",
                crate::util::terminal::one_line(&e)
            );
            return exit::ERROR;
        }
    };
    let d = Discovery {
        root: a.root.clone(),
        username: a.username.clone(),
        password: password.to_string(),
        scheme,
        port,
        auth,
        ca_file,
        kdc,
        hosts_file: hosts.as_ref().map(|(_, name)| name.clone()),
        servers: found.servers,
        not_contacted: found.not_contacted,
    };
    let text = discovered::render(&d);
    let loaded = inventory::load(&text);
    if loaded.inventory.is_none() {
        let _ = writeln!(
            err,
            "error: the inventory discover wrote does not validate; this is a bug in wsusfix:"
        );
        super::inputs::report(err, &loaded.diagnostics, "(discovered inventory)", &text);
        return exit::ERROR;
    }
    let unreached = d.unreached().count();
    let unresolved = d.unresolved().count();
    match &a.out {
        Some(path) => {
            if let Err(e) = super::plan::write_atomically(path, &text) {
                let _ = writeln!(
                    err,
                    "error: cannot write the inventory to {}: {e}",
                    path.display()
                );
                return exit::ERROR;
            }
        }
        None => {
            let _ = out.write_all(text.as_bytes());
        }
    }
    let _ = writeln!(
        err,
        "discovered {} server{} from {}{}{}",
        d.servers.len(),
        if d.servers.len() == 1 { "" } else { "s" },
        a.root,
        if unreached > 0 {
            format!(
                "; {unreached} could not be read{} (see the comments)",
                if unresolved > 0 {
                    format!(", {unresolved} of them because the name did not resolve")
                } else {
                    String::new()
                }
            )
        } else {
            String::new()
        },
        match &a.out {
            Some(p) => format!("; wrote {}", p.display()),
            None => String::new(),
        }
    );
    if !d.not_contacted.is_empty() {
        let _ = writeln!(
            err,
            "{} server{} found but not contacted (outside the allow-list; see the comments):",
            d.not_contacted.len(),
            if d.not_contacted.len() == 1 { "" } else { "s" }
        );
        for c in &d.not_contacted {
            let _ = writeln!(
                err,
                "  {} (listed by {}): {}",
                crate::util::terminal::one_line(&c.name),
                c.listed_by,
                crate::util::terminal::one_line(&c.why)
            );
        }
        let _ = writeln!(
            err,
            "  = help: if they are yours, allow them with --allow SUFFIX or --allow CIDR, or list them in --hosts"
        );
    }
    for s in &d.servers {
        if let Err(why) = &s.reached {
            let _ = writeln!(
                err,
                "  {}: not read: {}",
                s.name,
                crate::util::terminal::one_line(why)
            );
        }
    }
    if unreached > 0 || !d.not_contacted.is_empty() {
        exit::FINDINGS
    } else {
        exit::OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_references() {
        assert_eq!(
            parse_secret_ref("env:WSUSFIX_PASSWORD"),
            Ok(SecretRef::Env("WSUSFIX_PASSWORD".into()))
        );
        assert_eq!(
            parse_secret_ref("file:pw.txt"),
            Ok(SecretRef::File("pw.txt".into()))
        );
        assert_eq!(parse_secret_ref("prompt"), Ok(SecretRef::Prompt));
        assert!(
            parse_secret_ref("hunter2")
                .unwrap_err()
                .contains("not a password")
        );
        assert!(parse_secret_ref("env:1X").is_err());
        assert!(parse_secret_ref("file: ").is_err());
    }
}
