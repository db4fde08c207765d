//! The client side of the logons WinRM takes under the HTTP `Negotiate` scheme, over `sspi`: NTLM
//! (raw or wrapped in SPNEGO) and Kerberos (in SPNEGO), and the sealing that MS-WSMV message
//! encryption needs.
//!
//! A [`SecurityContext`] lives for exactly one TCP connection: the logon authenticates the
//! connection, and the sealing state (keys, sequence numbers per direction) must stay in step with
//! the server's. A new connection always gets a new context.
//!
//! Kerberos: the first step talks to the KDC (AS exchange with the password, then TGS for the
//! host's service principal) through [`KdcClient`]; it blocks, so the transport runs it off the
//! async runtime. `MUTUAL_AUTH` is always asked for: sspi takes the acceptor's subkey from the
//! AP-REP and cannot seal without it. No channel bindings are sent with Kerberos: sspi 0.23.1
//! encodes their flag in 2 bytes where MS-KILE and MIT require 4 (docs/winrm.md).
//!
//! sspi's API changes between minor versions (the crate is pinned to 0.23.1); everything that
//! touches it on the client side is in this file and in [`super::kerberos`].

use sspi::ntlm::NtlmConfig;
use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, Credentials, DataRepresentation,
    EncryptionFlags, KerberosConfig, Negotiate, NegotiateConfig, NegotiatedProtocol, Ntlm,
    SecurityBuffer, SecurityBufferRef, SecurityStatus, Sspi, SspiImpl, Username,
};

use crate::util::secret::Secret;

use super::encryption::Sealer;
use super::kerberos::{KdcAddr, KdcClient, KdcLog};

/// The workstation name sspi puts into Kerberos and NTLM messages.
const WORKSTATION: &str = "wsusfix";

/// Which token format goes inside the HTTP `Negotiate` scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mechanism {
    /// Raw NTLMSSP messages (pywinrm / requests-ntlm style).
    RawNtlm,
    /// SPNEGO (RFC 4178) offering NTLM only.
    SpnegoNtlm,
    /// SPNEGO offering Kerberos, with this KDC. With `ntlm_fallback`, sspi falls back to NTLM when
    /// the KDC cannot be reached or does not know the service (what Windows' Negotiate does);
    /// without it every Kerberos error is the logon's error.
    Kerberos { kdc: KdcAddr, ntlm_fallback: bool },
}

/// The protocol a logon used, for statistics and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogonMechanism {
    /// Kerberos (inside SPNEGO).
    Kerberos,
    /// NTLM (raw or inside SPNEGO).
    Ntlm,
    /// HTTP Basic (over HTTPS).
    Basic,
}

impl LogonMechanism {
    /// `kerberos`, `ntlm` or `basic`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogonMechanism::Kerberos => "kerberos",
            LogonMechanism::Ntlm => "ntlm",
            LogonMechanism::Basic => "basic",
        }
    }
}

impl std::fmt::Display for LogonMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

enum Inner {
    Ntlm {
        ctx: Box<Ntlm>,
        creds: Option<sspi::AuthIdentityBuffers>,
    },
    Negotiate {
        ctx: Box<Negotiate>,
        creds: Option<sspi::CredentialsBuffers>,
    },
}

/// One authentication and sealing context.
pub(crate) struct SecurityContext {
    inner: Inner,
    target: String,
    flags: ClientRequestFlags,
    kdc: Option<KdcClient>,
    complete: bool,
    trailer: usize,
    /// A SEC_CHANNEL_BINDINGS structure for the AUTHENTICATE message (NTLM over HTTPS).
    channel_bindings: Option<Vec<u8>>,
}

impl std::fmt::Debug for SecurityContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityContext")
            .field("target", &self.target)
            .field("kdc", &self.kdc)
            .field("complete", &self.complete)
            .finish_non_exhaustive()
    }
}

/// sspi errors carry no credentials, only a kind and a description.
fn describe(e: sspi::Error) -> String {
    format!("{:?}: {}", e.error_type, e.description)
}

/// A client that never reaches a KDC, for NTLM (whose steps never yield a request).
struct NoKdc;

impl sspi::network_client::NetworkClient for NoKdc {
    fn send(&self, _request: &sspi::NetworkRequest) -> sspi::Result<Vec<u8>> {
        Err(sspi::Error::new(
            sspi::ErrorKind::NoAuthenticatingAuthority,
            "no KDC for an NTLM logon",
        ))
    }
}

impl SecurityContext {
    /// A new context for `username` (`DOMAIN\user`, `user@realm` or `user`; Kerberos takes
    /// `user@REALM`) against the service principal `spn` (`HTTP/host`).
    ///
    /// Note: sspi reads a password that starts with `$NTLM$:` as an NT hash.
    pub fn new(
        mechanism: &Mechanism,
        username: &str,
        password: &Secret,
        spn: &str,
        kdc_connect_timeout: std::time::Duration,
    ) -> Result<SecurityContext, String> {
        let username = Username::parse(username)
            .map_err(|e| format!("user name {username:?} is not usable: {e}"))?;
        let identity = AuthIdentity {
            username,
            password: password.expose().to_string().into(),
        };
        let ntlm_flags = ClientRequestFlags::CONFIDENTIALITY
            | ClientRequestFlags::INTEGRITY
            | ClientRequestFlags::ALLOCATE_MEMORY;
        let (inner, flags, kdc) = match mechanism {
            Mechanism::RawNtlm => {
                let mut ctx = Box::new(Ntlm::with_config(NtlmConfig::default()));
                let acquired = ctx
                    .acquire_credentials_handle()
                    .with_credential_use(CredentialUse::Outbound)
                    .with_auth_data(&identity)
                    .execute(ctx.as_mut())
                    .map_err(describe)?;
                let inner = Inner::Ntlm {
                    ctx,
                    creds: acquired.credentials_handle,
                };
                (inner, ntlm_flags, None)
            }
            Mechanism::SpnegoNtlm => {
                let config = NegotiateConfig::new(
                    Box::new(NtlmConfig::default()),
                    Some("!kerberos,!pku2u,ntlm".to_string()),
                    String::new(),
                );
                (negotiate(config, identity)?, ntlm_flags, None)
            }
            Mechanism::Kerberos { kdc, ntlm_fallback } => {
                let kerberos = KerberosConfig::new_with_kdc_url(&kdc.url(), WORKSTATION.into());
                let packages = if *ntlm_fallback {
                    "kerberos,ntlm,!pku2u"
                } else {
                    "kerberos,!ntlm,!pku2u"
                };
                let config = NegotiateConfig::new(
                    Box::new(kerberos),
                    Some(packages.to_string()),
                    WORKSTATION.into(),
                );
                // MUTUAL_AUTH: sspi's Kerberos client finishes only with the acceptor's AP-REP.
                let flags = ClientRequestFlags::MUTUAL_AUTH
                    | ClientRequestFlags::CONFIDENTIALITY
                    | ClientRequestFlags::INTEGRITY
                    | ClientRequestFlags::SEQUENCE_DETECT
                    | ClientRequestFlags::REPLAY_DETECT;
                let client = KdcClient::new(kdc.clone(), kdc_connect_timeout);
                (negotiate(config, identity)?, flags, Some(client))
            }
        };
        Ok(SecurityContext {
            inner,
            target: spn.to_string(),
            flags,
            kdc,
            complete: false,
            trailer: 16,
            channel_bindings: None,
        })
    }

    /// Binds the logon to the TLS channel: `application_data` (the `tls-server-end-point`
    /// binding) goes into the AUTHENTICATE message as MsvAvChannelBindings. Call before the step
    /// that answers the challenge.
    pub fn set_channel_binding(&mut self, application_data: &[u8]) {
        self.channel_bindings = Some(sec_channel_bindings(application_data));
    }

    /// The protocol in use: for Negotiate with Kerberos, NTLM after a fallback.
    pub fn mechanism(&self) -> LogonMechanism {
        match &self.inner {
            Inner::Ntlm { .. } => LogonMechanism::Ntlm,
            Inner::Negotiate { ctx, .. } => match ctx.negotiated_protocol() {
                NegotiatedProtocol::Kerberos(_) => LogonMechanism::Kerberos,
                _ => LogonMechanism::Ntlm,
            },
        }
    }

    /// What the KDC client saw (Kerberos logons).
    pub fn kdc_log(&self) -> Option<KdcLog> {
        self.kdc.as_ref().map(KdcClient::log)
    }

    /// The KDC of a Kerberos logon.
    pub fn kdc(&self) -> Option<&KdcAddr> {
        self.kdc.as_ref().map(KdcClient::kdc)
    }

    /// The service principal name the logon is for.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// True once the handshake is complete (sealing may start).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Runs one handshake step with the server's token (none for the first step) and returns
    /// the token to send (empty when nothing is left to send). Kerberos: the first step talks
    /// to the KDC and blocks.
    pub fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, String> {
        self.step_sspi(input).map_err(describe)
    }

    /// [`Self::step`] with sspi's error as it is (its kind says whether the KDC was involved).
    pub fn step_sspi(&mut self, input: Option<&[u8]>) -> sspi::Result<Vec<u8>> {
        let target = self.target.clone();
        let bindings = self.channel_bindings.clone();
        let flags = self.flags;
        let network: &dyn sspi::network_client::NetworkClient = match &self.kdc {
            Some(k) => k,
            None => &NoKdc,
        };
        let (status, token) = match &mut self.inner {
            Inner::Ntlm { ctx, creds } => init_step(
                ctx.as_mut(),
                creds,
                &target,
                flags,
                input,
                bindings.as_deref(),
                network,
            ),
            Inner::Negotiate { ctx, creds } => init_step(
                ctx.as_mut(),
                creds,
                &target,
                flags,
                input,
                bindings.as_deref(),
                network,
            ),
        }?;
        self.complete = status == SecurityStatus::Ok;
        if self.complete {
            let sizes = match &mut self.inner {
                Inner::Ntlm { ctx, .. } => ctx.query_context_sizes(),
                Inner::Negotiate { ctx, .. } => ctx.query_context_sizes(),
            };
            if let Ok(sizes) = sizes {
                self.trailer = sizes.security_trailer as usize;
            }
        }
        Ok(token)
    }

    /// Seals in place; returns how many bytes of the token and the data sspi wrote.
    fn encrypt(&mut self, token: &mut [u8], data: &mut [u8]) -> sspi::Result<(usize, usize)> {
        let mut bufs = [
            SecurityBufferRef::token_buf(token),
            SecurityBufferRef::data_buf(data),
        ];
        match &mut self.inner {
            Inner::Ntlm { ctx, .. } => ctx.encrypt_message(EncryptionFlags::empty(), &mut bufs),
            Inner::Negotiate { ctx, .. } => {
                ctx.encrypt_message(EncryptionFlags::empty(), &mut bufs)
            }
        }?;
        Ok((bufs[0].data().len(), bufs[1].data().len()))
    }

    fn decrypt(&mut self, token: &mut [u8], data: &mut [u8]) -> sspi::Result<Vec<u8>> {
        let mut bufs = [
            SecurityBufferRef::token_buf(token),
            SecurityBufferRef::data_buf(data),
        ];
        match &mut self.inner {
            Inner::Ntlm { ctx, .. } => ctx.decrypt_message(&mut bufs),
            Inner::Negotiate { ctx, .. } => ctx.decrypt_message(&mut bufs),
        }?;
        Ok(bufs[1].data().to_vec())
    }
}

/// The SEC_CHANNEL_BINDINGS structure sspi reads from a `ChannelBindings` input buffer: eight
/// u32 (initiator and acceptor address types, lengths and offsets all zero; the application
/// data's length and offset 32), then the application data.
fn sec_channel_bindings(application_data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 24];
    out.extend_from_slice(&(application_data.len() as u32).to_le_bytes());
    out.extend_from_slice(&32u32.to_le_bytes());
    out.extend_from_slice(application_data);
    out
}

fn negotiate(config: NegotiateConfig, identity: AuthIdentity) -> Result<Inner, String> {
    let mut ctx = Box::new(Negotiate::new_client(config).map_err(describe)?);
    let credentials = Credentials::AuthIdentity(identity);
    let acquired = ctx
        .acquire_credentials_handle()
        .with_credential_use(CredentialUse::Outbound)
        .with_auth_data(&credentials)
        .execute(ctx.as_mut())
        .map_err(describe)?;
    Ok(Inner::Negotiate {
        ctx,
        creds: acquired.credentials_handle,
    })
}

fn init_step<C>(
    ctx: &mut C,
    creds: &mut C::CredentialsHandle,
    target: &str,
    flags: ClientRequestFlags,
    input: Option<&[u8]>,
    channel_bindings: Option<&[u8]>,
    network: &dyn sspi::network_client::NetworkClient,
) -> sspi::Result<(SecurityStatus, Vec<u8>)>
where
    C: Sspi + SspiImpl,
{
    let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
    // Kerberos (inside Negotiate too) reads the input buffer list on its first step as well:
    // an empty token then. The channel binding goes with the server's challenge.
    let mut input_buffers = vec![SecurityBuffer::new(
        input.map(<[u8]>::to_vec).unwrap_or_default(),
        BufferType::Token,
    )];
    if let (Some(cb), Some(_)) = (channel_bindings, input) {
        input_buffers.push(SecurityBuffer::new(
            cb.to_vec(),
            BufferType::ChannelBindings,
        ));
    }
    let mut builder = ctx
        .initialize_security_context()
        .with_credentials_handle(creds)
        .with_context_requirements(flags)
        .with_target_data_representation(DataRepresentation::Native)
        .with_target_name(target)
        .with_input(&mut input_buffers)
        .with_output(&mut output);
    // The generator yields the KDC requests of a Kerberos step; `network` carries them.
    let result = ctx
        .initialize_security_context_impl(&mut builder)?
        .resolve_with_client(network)?;
    if matches!(
        result.status,
        SecurityStatus::CompleteAndContinue | SecurityStatus::CompleteNeeded
    ) {
        ctx.complete_auth_token(&mut output)?;
    }
    let status = match result.status {
        SecurityStatus::CompleteNeeded => SecurityStatus::Ok,
        SecurityStatus::CompleteAndContinue => SecurityStatus::ContinueNeeded,
        other => other,
    };
    Ok((status, std::mem::take(&mut output[0].buffer)))
}

impl Sealer for SecurityContext {
    fn seal(&mut self, plain: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
        let mut token = vec![0u8; self.trailer];
        let mut data = plain.to_vec();
        let (token_len, data_len) = self
            .encrypt(&mut token, &mut data)
            .map_err(|e| format!("cannot seal the message: {}", describe(e)))?;
        token.truncate(token_len);
        data.truncate(data_len);
        Ok((token, data))
    }

    fn unseal(&mut self, signature: &[u8], sealed: &[u8]) -> Result<Vec<u8>, String> {
        let mut token = signature.to_vec();
        let mut data = sealed.to_vec();
        self.decrypt(&mut token, &mut data)
            .map_err(|e| format!("cannot unseal the reply: {}", describe(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_tokens() {
        let pw = Secret::new("S3cret!");
        let t = std::time::Duration::from_secs(1);
        let mut raw =
            SecurityContext::new(&Mechanism::RawNtlm, "CORP\\alice", &pw, "HTTP/srv01", t).unwrap();
        let token = raw.step(None).unwrap();
        assert!(!raw.is_complete());
        assert!(
            token.starts_with(b"NTLMSSP\0\x01\0\0\0"),
            "{:?}",
            &token[..12]
        );

        let mut spnego = SecurityContext::new(
            &Mechanism::SpnegoNtlm,
            "alice@corp.example",
            &pw,
            "HTTP/srv01",
            t,
        )
        .unwrap();
        let token = spnego.step(None).unwrap();
        assert!(!spnego.is_complete());
        // GSS-API InitialContextToken: [APPLICATION 0] (0x60) with the SPNEGO OID inside.
        assert_eq!(token[0], 0x60);
        let ntlm_oid = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a];
        assert!(token.windows(ntlm_oid.len()).any(|w| w == ntlm_oid));
    }

    #[test]
    fn garbage_challenge_is_an_error_without_the_password() {
        let pw = Secret::new("hunter2-very-secret");
        let t = std::time::Duration::from_secs(1);
        let mut ctx = SecurityContext::new(&Mechanism::RawNtlm, "bob", &pw, "HTTP/h", t).unwrap();
        ctx.step(None).unwrap();
        let err = ctx.step(Some(b"not a challenge")).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(!format!("{ctx:?}").contains("hunter2"));
    }

    #[test]
    fn session_context_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<SecurityContext>();
    }
}
