//! Logons as a default WinRM 2.0 listener accepts them: `Negotiate` carrying raw NTLMSSP,
//! SPNEGO-wrapped NTLM or Kerberos (SPNEGO or raw krb5; see `kerberos`), an `sspi` acceptor per
//! TCP connection, and `Basic` (HTTPS only, bare local account names). A hardened host refuses
//! NTLM outright. Also the established context's sealing for MS-WSMV encryption.
//!
//! `sspi` does not check the NTLMv2 proof when the MIC is left out, nor the user name; the
//! type-3 message is checked here first (see `ntlm`), and only a message that proves an account
//! reaches `sspi`, with that account's password.

use base64::Engine;
use sspi::ntlm::NtlmConfig;
use sspi::{
    AuthIdentity, AuthIdentityBuffers, BufferType, CredentialsBuffers, DataRepresentation,
    EncryptionFlags, Negotiate, NegotiateConfig, Ntlm, SecurityBuffer, SecurityBufferRef,
    SecurityStatus, ServerRequestFlags, Sspi, Username,
};

use super::framing;
use super::host::Account;
use super::kerberos::{self, KerberosContext, Offer, ServiceKeys};
use super::ntlm;

/// The length of an NTLM signature (the security trailer of NTLM sealing).
const NTLM_SIGNATURE_LEN: usize = 16;

enum Context {
    Ntlm(Box<Ntlm>),
    Negotiate(Box<Negotiate>),
    Kerberos(KerberosContext),
}

/// What a host accepts: its name, accounts, whether NTLM is allowed, its Kerberos keys.
#[derive(Clone, Copy)]
pub(crate) struct Policy<'a> {
    pub host: &'a str,
    pub accounts: &'a [Account],
    pub ntlm: bool,
    pub kerberos: Option<&'a ServiceKeys>,
}

/// The protocol of an established logon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Ntlm,
    Kerberos,
}

/// A logon in progress on one connection.
pub(crate) struct Handshake {
    ctx: Context,
    challenge: Option<[u8; 8]>,
    /// The account a checked type-3 message proved, if one arrived.
    proved: Option<usize>,
}

/// An authenticated connection's security context.
pub(crate) struct Session {
    ctx: Context,
    /// The account's user name as configured.
    pub account: String,
    /// NTLM or Kerberos.
    pub protocol: Protocol,
    /// The security trailer (signature) length of sealing: 16 for NTLM, 60 for Kerberos AES.
    trailer: usize,
}

/// What one handshake leg comes to.
pub(crate) enum Outcome {
    /// Send this token with a 401 and wait for the next leg.
    Continue(Handshake, Vec<u8>),
    /// Logged on; the token (SPNEGO's final one, Kerberos's AP-REP), if any, goes on the 200.
    Established(Session, Option<Vec<u8>>),
    /// Refused: 401, with the token if there is one (a Kerberos KRB-ERROR). The reason is for
    /// the log only.
    Refused { why: String, token: Option<Vec<u8>> },
}

fn refused(why: impl Into<String>) -> Outcome {
    Outcome::Refused {
        why: why.into(),
        token: None,
    }
}

/// Whether a token starts a new logon (an NTLM NEGOTIATE, an SPNEGO NegTokenInit or a raw krb5
/// AP-REQ).
pub(crate) fn is_initial(token: &[u8]) -> bool {
    ntlm::message_type(token) == Some(1) || token.first() == Some(&0x60)
}

fn accept_ntlm(
    ntlm: &mut Ntlm,
    creds: Option<AuthIdentityBuffers>,
    token: &[u8],
) -> sspi::Result<(SecurityStatus, Vec<u8>)> {
    let mut creds = creds;
    let mut input = vec![SecurityBuffer::new(token.to_vec(), BufferType::Token)];
    let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
    let result = ntlm
        .accept_security_context()
        .with_credentials_handle(&mut creds)
        .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
        .with_target_data_representation(DataRepresentation::Native)
        .with_input(&mut input)
        .with_output(&mut output)
        .execute(ntlm)?
        .resolve_to_result()?;
    Ok((result.status, std::mem::take(&mut output[0].buffer)))
}

fn accept_negotiate(
    negotiate: &mut Negotiate,
    creds: Option<AuthIdentityBuffers>,
    token: &[u8],
) -> sspi::Result<(SecurityStatus, Vec<u8>)> {
    let mut creds = creds.map(CredentialsBuffers::AuthIdentity);
    let mut input = vec![SecurityBuffer::new(token.to_vec(), BufferType::Token)];
    let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
    let result = negotiate
        .accept_security_context()
        .with_credentials_handle(&mut creds)
        .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
        .with_target_data_representation(DataRepresentation::Native)
        .with_input(&mut input)
        .with_output(&mut output)
        .execute(negotiate)?
        .resolve_to_result()?;
    Ok((result.status, std::mem::take(&mut output[0].buffer)))
}

/// The names under which `sspi`'s SPNEGO acceptor knows an account. It matches the name of the
/// NTLM message against these, format and domain included; the checks in `ntlm` have already
/// matched the user part, so these cover the usual qualifications: none, the account's own,
/// the host's name, and `.`.
fn spnego_identities(accounts: &[Account], host: &str) -> Vec<AuthIdentity> {
    let short = host.split('.').next().unwrap_or(host).to_ascii_uppercase();
    let mut out = Vec::new();
    for account in accounts {
        let user = ntlm::account_part(&account.username);
        let mut names = vec![Username::parse(user)];
        let configured = Username::parse(&account.username);
        names.push(configured);
        for domain in [short.as_str(), "."] {
            names.push(Username::new_down_level_logon_name(user, domain));
        }
        names.push(Username::new_upn(user, host));
        for name in names.into_iter().flatten() {
            out.push(AuthIdentity {
                username: name,
                password: account.password.expose().to_string().into(),
            });
        }
    }
    out
}

impl Handshake {
    /// Starts a logon with an initial token (see [`is_initial`]).
    pub fn begin(token: &[u8], policy: Policy<'_>) -> Outcome {
        let (host, accounts) = (policy.host, policy.accounts);
        match kerberos::offer(token) {
            Offer::Ntlm if !policy.ntlm => {
                // "Network security: Restrict NTLM: Incoming NTLM traffic = Deny all".
                return refused("NTLM is disabled on this host");
            }
            Offer::Ntlm => {}
            kind @ (Offer::SpnegoKerberos | Offer::RawKerberos) => {
                return Handshake::kerberos(token, kind, policy);
            }
            Offer::Unknown => return refused("not an NTLM or Kerberos token"),
        }
        let ctx = if ntlm::message_type(token) == Some(1) {
            Context::Ntlm(Box::new(Ntlm::with_config(NtlmConfig::new(
                host.to_string(),
            ))))
        } else {
            let config = NegotiateConfig::new(
                Box::new(NtlmConfig::new(host.to_string())),
                Some("ntlm,!kerberos,!pku2u".to_string()),
                host.to_string(),
            );
            match Negotiate::new_server(config, spnego_identities(accounts, host)) {
                Ok(n) => Context::Negotiate(Box::new(n)),
                Err(e) => return refused(format!("negotiate: {e}")),
            }
        };
        Handshake {
            ctx,
            challenge: None,
            proved: None,
        }
        .next(token, accounts)
    }

    /// A Kerberos logon: one leg, the AP-REQ in, the AP-REP out.
    fn kerberos(token: &[u8], kind: Offer, policy: Policy<'_>) -> Outcome {
        let Some(keys) = policy.kerberos else {
            return refused("Kerberos: this host has no service key (no keytab entry)");
        };
        let accepted = match kerberos::accept(token, kind, keys) {
            Ok(a) => a,
            Err(r) => {
                return Outcome::Refused {
                    why: format!("Kerberos: {}", r.why),
                    token: Some(r.token),
                };
            }
        };
        let Some(account) = policy
            .accounts
            .iter()
            .find(|a| kerberos::principal_is(&accepted.client, &a.username))
        else {
            return refused(format!(
                "Kerberos: {} is not an account of this host",
                accepted.client
            ));
        };
        let mut ctx = Context::Kerberos(accepted.context);
        let trailer = trailer_of(&mut ctx);
        Outcome::Established(
            Session {
                ctx,
                account: account.username.clone(),
                protocol: Protocol::Kerberos,
                trailer,
            },
            (!accepted.token.is_empty()).then_some(accepted.token),
        )
    }

    /// Feeds the next token of the logon.
    pub fn next(mut self, token: &[u8], accounts: &[Account]) -> Outcome {
        let mut creds = None;
        if let Some(msg) = ntlm::find_message(token, 3) {
            let Some(challenge) = self.challenge else {
                return refused("AUTHENTICATE before CHALLENGE");
            };
            let checked = ntlm::parse_authenticate(msg).and_then(|auth| {
                let pairs = accounts
                    .iter()
                    .map(|a| (a.username.as_str(), a.password.expose()));
                ntlm::verify(&auth, &challenge, pairs).map(|i| (i, auth))
            });
            match checked {
                Ok((index, auth)) => {
                    self.proved = Some(index);
                    creds = Some(AuthIdentityBuffers::from_utf8(
                        &auth.user,
                        &auth.domain,
                        accounts[index].password.expose(),
                    ));
                }
                Err(refusal) => return refused(refusal.to_string()),
            }
        }

        let stepped = match &mut self.ctx {
            Context::Ntlm(n) => accept_ntlm(n, creds, token).and_then(|(status, out)| {
                if status == SecurityStatus::CompleteNeeded
                    || status == SecurityStatus::CompleteAndContinue
                {
                    let status = n.complete_auth_token(&mut [])?;
                    Ok((status, out))
                } else {
                    Ok((status, out))
                }
            }),
            Context::Negotiate(n) => accept_negotiate(n, creds, token),
            Context::Kerberos(_) => return refused("Kerberos takes one leg"),
        };
        let (status, out) = match stepped {
            Ok(s) => s,
            Err(e) => return refused(format!("{:?}: {}", e.error_type, e.description)),
        };
        if self.challenge.is_none() {
            self.challenge = ntlm::find_message(&out, 2).and_then(ntlm::server_challenge);
        }
        match status {
            SecurityStatus::Ok => match self.proved {
                Some(index) => {
                    let mut ctx = self.ctx;
                    let trailer = trailer_of(&mut ctx);
                    Outcome::Established(
                        Session {
                            ctx,
                            account: accounts[index].username.clone(),
                            protocol: Protocol::Ntlm,
                            trailer,
                        },
                        (!out.is_empty()).then_some(out),
                    )
                }
                None => refused("no AUTHENTICATE message was checked"),
            },
            SecurityStatus::ContinueNeeded | SecurityStatus::CompleteAndContinue => {
                Outcome::Continue(self, out)
            }
            other => refused(format!("unexpected status {other:?}")),
        }
    }
}

/// The security trailer of an established context (NTLM's 16-byte signature when sspi does not
/// say).
fn trailer_of(ctx: &mut Context) -> usize {
    let sizes = match ctx {
        Context::Ntlm(n) => n.query_context_sizes(),
        Context::Negotiate(n) => n.query_context_sizes(),
        Context::Kerberos(KerberosContext::Negotiate(n)) => n.query_context_sizes(),
        Context::Kerberos(KerberosContext::Raw(k)) => k.query_context_sizes(),
    };
    sizes
        .map(|s| s.security_trailer as usize)
        .unwrap_or(NTLM_SIGNATURE_LEN)
}

/// Why a sealed message could not be opened or sealed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SealError {
    #[error(transparent)]
    Framing(#[from] framing::FramingError),
    #[error("sspi: {0}")]
    Sspi(#[from] sspi::Error),
}

impl Session {
    fn encrypt(&mut self, bufs: &mut [SecurityBufferRef<'_>]) -> sspi::Result<()> {
        let flags = EncryptionFlags::empty();
        match &mut self.ctx {
            Context::Ntlm(n) => n.encrypt_message(flags, bufs).map(drop),
            Context::Negotiate(n) => n.encrypt_message(flags, bufs).map(drop),
            Context::Kerberos(KerberosContext::Negotiate(n)) => {
                n.encrypt_message(flags, bufs).map(drop)
            }
            Context::Kerberos(KerberosContext::Raw(k)) => k.encrypt_message(flags, bufs).map(drop),
        }
    }

    fn decrypt(&mut self, bufs: &mut [SecurityBufferRef<'_>]) -> sspi::Result<()> {
        match &mut self.ctx {
            Context::Ntlm(n) => n.decrypt_message(bufs).map(drop),
            Context::Negotiate(n) => n.decrypt_message(bufs).map(drop),
            Context::Kerberos(KerberosContext::Negotiate(n)) => n.decrypt_message(bufs).map(drop),
            Context::Kerberos(KerberosContext::Raw(k)) => k.decrypt_message(bufs).map(drop),
        }
    }

    /// Seals a reply into an MS-WSMV encrypted body.
    pub fn seal(&mut self, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut signature = vec![0u8; self.trailer];
        let mut data = plain.to_vec();
        let mut bufs = [
            SecurityBufferRef::token_buf(&mut signature),
            SecurityBufferRef::data_buf(&mut data),
        ];
        self.encrypt(&mut bufs)?;
        let (sig_len, data_len) = (bufs[0].data().len(), bufs[1].data().len());
        signature.truncate(sig_len);
        data.truncate(data_len);
        Ok(framing::build(plain.len(), &signature, &data))
    }

    /// Opens an MS-WSMV encrypted request body. Any failure desynchronises the sealing state:
    /// the caller drops the session.
    pub fn unseal(&mut self, body: &[u8]) -> Result<Vec<u8>, SealError> {
        let sealed = framing::parse(body)?;
        let mut signature = sealed.signature.to_vec();
        let mut data = sealed.data.to_vec();
        let mut bufs = [
            SecurityBufferRef::token_buf(&mut signature),
            SecurityBufferRef::data_buf(&mut data),
        ];
        self.decrypt(&mut bufs)?;
        let plain = bufs[1].data().to_vec();
        Ok(plain)
    }
}

/// Checks an `Authorization: Basic` value. Windows accepts Basic only for local accounts named
/// without a domain; returns the account's index.
pub(crate) fn check_basic(credentials: &str, accounts: &[Account]) -> Option<usize> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    if user.is_empty() || user.contains('\\') || user.contains('@') {
        return None;
    }
    accounts.iter().position(|a| {
        ntlm::account_part(&a.username).eq_ignore_ascii_case(user)
            && a.password.expose() == password
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_takes_bare_local_names_only() {
        let accounts = [Account::new("LAB\\Administrator", "pw:1")];
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(check_basic(&enc("administrator:pw:1"), &accounts), Some(0));
        assert_eq!(check_basic(&enc("administrator:pw"), &accounts), None);
        assert_eq!(
            check_basic(&enc("LAB\\administrator:pw:1"), &accounts),
            None
        );
        assert_eq!(check_basic(&enc("ghost:pw:1"), &accounts), None);
        assert_eq!(check_basic("%%%", &accounts), None);
    }

    #[test]
    fn recognises_initial_tokens() {
        assert!(is_initial(b"NTLMSSP\0\x01\0\0\0rest"));
        assert!(!is_initial(b"NTLMSSP\0\x03\0\0\0rest"));
        assert!(is_initial(&[0x60, 0x28]));
        assert!(!is_initial(&[0xa1, 0x28]));
    }
}
