//! Channel binding for NTLM over HTTPS: the `tls-server-end-point` binding of RFC 5929 §4.
//!
//! Windows hosts with Extended Protection for Authentication (WinRM's `CbtHardeningLevel`
//! `Strict`) refuse an NTLM logon over HTTPS unless the AUTHENTICATE message carries a hash of
//! the TLS channel it travels in, so that a logon relayed through another TLS connection is
//! useless. The binding is `"tls-server-end-point:"` followed by a hash of the server's
//! certificate, made with the hash of the certificate's signature algorithm (SHA-256 when that
//! is MD5 or SHA-1, RFC 5929 §4.1); sspi turns it into the NTLM `MsvAvChannelBindings` value.
//!
//! Pure: it reads the certificate's DER just far enough to find its signature algorithm.

use sha2::{Digest, Sha256, Sha384, Sha512};

/// The prefix of the binding's application data (RFC 5929 §4).
const PREFIX: &[u8] = b"tls-server-end-point:";

/// The hash function a certificate's binding uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BindingHash {
    Sha256,
    Sha384,
    Sha512,
}

/// The application data of the `tls-server-end-point` binding for a DER certificate.
pub(crate) fn tls_server_end_point(cert_der: &[u8]) -> Result<Vec<u8>, String> {
    let hash = match binding_hash(cert_der)? {
        BindingHash::Sha256 => Sha256::digest(cert_der).to_vec(),
        BindingHash::Sha384 => Sha384::digest(cert_der).to_vec(),
        BindingHash::Sha512 => Sha512::digest(cert_der).to_vec(),
    };
    let mut data = PREFIX.to_vec();
    data.extend_from_slice(&hash);
    Ok(data)
}

// Signature algorithm OIDs (DER content bytes).
const RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const SHA384_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
const SHA512_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
const ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
// Hash OIDs, as RSASSA-PSS parameters name them.
const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];

/// The binding's hash for a certificate: its signature's hash, SHA-256 for MD5, SHA-1, SHA-256,
/// and for algorithms RFC 5929 does not cover (EdDSA).
pub(crate) fn binding_hash(cert_der: &[u8]) -> Result<BindingHash, String> {
    let (certificate, _) = tlv(cert_der, 0x30).ok_or("the certificate is not a DER SEQUENCE")?;
    let (_tbs, rest) = tlv(certificate, 0x30).ok_or("the certificate has no tbsCertificate")?;
    let (algorithm, _) = tlv(rest, 0x30).ok_or("the certificate has no signatureAlgorithm")?;
    let (oid, params) = tlv(algorithm, 0x06).ok_or("the signature algorithm has no OID")?;
    Ok(match oid {
        SHA384_RSA | ECDSA_SHA384 => BindingHash::Sha384,
        SHA512_RSA | ECDSA_SHA512 => BindingHash::Sha512,
        RSA_PSS => pss_hash(params),
        _ => BindingHash::Sha256,
    })
}

/// RSASSA-PSS-params: `SEQUENCE { [0] hashAlgorithm AlgorithmIdentifier DEFAULT sha1, ... }`.
fn pss_hash(params: &[u8]) -> BindingHash {
    let hash_oid = tlv(params, 0x30)
        .and_then(|(seq, _)| tlv(seq, 0xa0))
        .and_then(|(explicit, _)| tlv(explicit, 0x30))
        .and_then(|(alg, _)| tlv(alg, 0x06))
        .map(|(oid, _)| oid);
    match hash_oid {
        Some(SHA384) => BindingHash::Sha384,
        Some(SHA512) => BindingHash::Sha512,
        _ => BindingHash::Sha256,
    }
}

/// Splits one DER element with tag `tag` off `data`: `(content, rest)`.
fn tlv(data: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = data.split_first()?;
    if first != tag {
        return None;
    }
    let (&len0, rest) = rest.split_first()?;
    let (len, rest) = if len0 < 0x80 {
        (usize::from(len0), rest)
    } else {
        let n = usize::from(len0 & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(key: &rcgen::KeyPair) -> Vec<u8> {
        let params = rcgen::CertificateParams::new(vec!["srv01.example".to_string()]).unwrap();
        params.self_signed(key).unwrap().der().to_vec()
    }

    #[test]
    fn sha256_and_sha384_certificates() {
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let der = cert(&p256);
        assert_eq!(binding_hash(&der), Ok(BindingHash::Sha256));
        let data = tls_server_end_point(&der).unwrap();
        assert!(data.starts_with(b"tls-server-end-point:"));
        assert_eq!(&data[PREFIX.len()..], Sha256::digest(&der).as_slice());

        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let der = cert(&p384);
        assert_eq!(binding_hash(&der), Ok(BindingHash::Sha384));
        assert_eq!(tls_server_end_point(&der).unwrap().len(), PREFIX.len() + 48);
    }

    #[test]
    fn sha1_and_rsa_pss_parameters() {
        // A hand-built Certificate: tbs (empty SEQUENCE), sha1WithRSAEncryption, signature.
        let sha1 = [
            0x30, 0x11, 0x30, 0x00, 0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
            0x01, 0x01, 0x05, 0x03, 0x01, 0x00,
        ];
        assert_eq!(binding_hash(&sha1), Ok(BindingHash::Sha256));
        // RSASSA-PSS with hashAlgorithm sha512.
        let mut alg = vec![0x06, 0x09];
        alg.extend_from_slice(RSA_PSS);
        let hash_alg = [&[0x06, 0x09][..], SHA512].concat();
        let hash_alg = [&[0x30, hash_alg.len() as u8][..], &hash_alg].concat();
        let explicit = [&[0xa0, hash_alg.len() as u8][..], &hash_alg].concat();
        let params = [&[0x30, explicit.len() as u8][..], &explicit].concat();
        alg.extend_from_slice(&params);
        let alg = [&[0x30, alg.len() as u8][..], &alg].concat();
        let body = [&[0x30, 0x00][..], &alg, &[0x03, 0x01, 0x00]].concat();
        let der = [&[0x30, body.len() as u8][..], &body].concat();
        assert_eq!(binding_hash(&der), Ok(BindingHash::Sha512));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(binding_hash(b"").is_err());
        assert!(binding_hash(&[0x30, 0x85, 1, 2, 3, 4, 5]).is_err());
        assert!(binding_hash(&[0x30, 0x02, 0x30, 0x00]).is_err());
    }
}
