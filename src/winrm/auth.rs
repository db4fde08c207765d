//! The client side of NTLM authentication, raw or wrapped in SPNEGO, over `sspi`, and the
//! sealing that MS-WSMV message encryption needs.
//!
//! A [`SecurityContext`] lives for exactly one TCP connection: NTLM authenticates the connection,
//! and the sealing state (RC4 streams, sequence numbers per direction) must stay in step with the
//! server's. A new connection always gets a new context.
//!
//! sspi's API changes between minor versions (the crate is pinned to 0.23.1); everything that
//! touches it is in this file.

use sspi::ntlm::NtlmConfig;
use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, Credentials, DataRepresentation,
    EncryptionFlags, Negotiate, NegotiateConfig, Ntlm, SecurityBuffer, SecurityBufferRef,
    SecurityStatus, Sspi, SspiImpl, Username,
};

use crate::util::secret::Secret;

use super::encryption::Sealer;

/// Which token format goes inside the HTTP `Negotiate` scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    /// Raw NTLMSSP messages (pywinrm / requests-ntlm style).
    RawNtlm,
    /// SPNEGO (RFC 4178) offering NTLM only.
    SpnegoNtlm,
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
    complete: bool,
    trailer: usize,
    /// A SEC_CHANNEL_BINDINGS structure for the AUTHENTICATE message (NTLM over HTTPS).
    channel_bindings: Option<Vec<u8>>,
}

impl std::fmt::Debug for SecurityContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityContext")
            .field("target", &self.target)
            .field("complete", &self.complete)
            .finish_non_exhaustive()
    }
}

/// sspi errors carry no credentials, only a kind and a description.
fn describe(e: sspi::Error) -> String {
    format!("{:?}: {}", e.error_type, e.description)
}

impl SecurityContext {
    /// A new context for `username` (`DOMAIN\user`, `user@realm` or `user`) against `host`.
    ///
    /// Note: sspi reads a password that starts with `$NTLM$:` as an NT hash.
    pub fn new(
        mechanism: Mechanism,
        username: &str,
        password: &Secret,
        host: &str,
    ) -> Result<SecurityContext, String> {
        let username = Username::parse(username)
            .map_err(|e| format!("user name {username:?} is not usable: {e}"))?;
        let identity = AuthIdentity {
            username,
            password: password.expose().to_string().into(),
        };
        let inner = match mechanism {
            Mechanism::RawNtlm => {
                let mut ctx = Box::new(Ntlm::with_config(NtlmConfig::default()));
                let acquired = ctx
                    .acquire_credentials_handle()
                    .with_credential_use(CredentialUse::Outbound)
                    .with_auth_data(&identity)
                    .execute(ctx.as_mut())
                    .map_err(describe)?;
                Inner::Ntlm {
                    ctx,
                    creds: acquired.credentials_handle,
                }
            }
            Mechanism::SpnegoNtlm => {
                let config = NegotiateConfig::new(
                    Box::new(NtlmConfig::default()),
                    Some("!kerberos,!pku2u,ntlm".to_string()),
                    String::new(),
                );
                let mut ctx = Box::new(Negotiate::new_client(config).map_err(describe)?);
                let credentials = Credentials::AuthIdentity(identity);
                let acquired = ctx
                    .acquire_credentials_handle()
                    .with_credential_use(CredentialUse::Outbound)
                    .with_auth_data(&credentials)
                    .execute(ctx.as_mut())
                    .map_err(describe)?;
                Inner::Negotiate {
                    ctx,
                    creds: acquired.credentials_handle,
                }
            }
        };
        Ok(SecurityContext {
            inner,
            target: format!("HTTP/{host}"),
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

    /// True once the handshake is complete (sealing may start).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Runs one handshake step with the server's token (none for the first step) and returns
    /// the token to send (empty when nothing is left to send).
    pub fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, String> {
        let target = self.target.clone();
        let bindings = self.channel_bindings.as_deref();
        let (status, token) = match &mut self.inner {
            Inner::Ntlm { ctx, creds } => init_step(ctx.as_mut(), creds, &target, input, bindings),
            Inner::Negotiate { ctx, creds } => {
                init_step(ctx.as_mut(), creds, &target, input, bindings)
            }
        }
        .map_err(describe)?;
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

    fn encrypt(&mut self, token: &mut [u8], data: &mut [u8]) -> sspi::Result<()> {
        let mut bufs = [
            SecurityBufferRef::token_buf(token),
            SecurityBufferRef::data_buf(data),
        ];
        match &mut self.inner {
            Inner::Ntlm { ctx, .. } => ctx.encrypt_message(EncryptionFlags::empty(), &mut bufs),
            Inner::Negotiate { ctx, .. } => {
                ctx.encrypt_message(EncryptionFlags::empty(), &mut bufs)
            }
        }
        .map(|_| ())
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

fn init_step<C>(
    ctx: &mut C,
    creds: &mut C::CredentialsHandle,
    target: &str,
    input: Option<&[u8]>,
    channel_bindings: Option<&[u8]>,
) -> sspi::Result<(SecurityStatus, Vec<u8>)>
where
    C: Sspi + SspiImpl,
{
    let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
    let mut input_buffers = input.map(|t| {
        let mut buffers = vec![SecurityBuffer::new(t.to_vec(), BufferType::Token)];
        if let Some(cb) = channel_bindings {
            buffers.push(SecurityBuffer::new(
                cb.to_vec(),
                BufferType::ChannelBindings,
            ));
        }
        buffers
    });
    let mut builder = ctx
        .initialize_security_context()
        .with_credentials_handle(creds)
        .with_context_requirements(
            ClientRequestFlags::CONFIDENTIALITY
                | ClientRequestFlags::INTEGRITY
                | ClientRequestFlags::ALLOCATE_MEMORY,
        )
        .with_target_data_representation(DataRepresentation::Native)
        .with_target_name(target)
        .with_output(&mut output);
    if let Some(buffers) = input_buffers.as_mut() {
        builder = builder.with_input(buffers);
    }
    let result = ctx
        .initialize_security_context_impl(&mut builder)?
        .resolve_to_result()?;
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
        self.encrypt(&mut token, &mut data)
            .map_err(|e| format!("cannot seal the message: {}", describe(e)))?;
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
        let mut raw =
            SecurityContext::new(Mechanism::RawNtlm, "CORP\\alice", &pw, "srv01").unwrap();
        let token = raw.step(None).unwrap();
        assert!(!raw.is_complete());
        assert!(
            token.starts_with(b"NTLMSSP\0\x01\0\0\0"),
            "{:?}",
            &token[..12]
        );

        let mut spnego =
            SecurityContext::new(Mechanism::SpnegoNtlm, "alice@corp.example", &pw, "srv01")
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
        let mut ctx = SecurityContext::new(Mechanism::RawNtlm, "bob", &pw, "h").unwrap();
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
