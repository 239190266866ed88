//! The check every certificate passes before it is recorded: whatever the backend, a
//! certificate is handed to a client only when it certifies the CSR's key and subject for
//! client authentication, within the configured lifetime, under the environment's root.

use der::asn1::ObjectIdentifier as Oid;
use der::{Decode, DecodePem, Encode};
use ozo_domain::VerifiedCsr;
use time::OffsetDateTime;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage};
use x509_cert::name::Name;
use x509_cert::Certificate;

use crate::IssuedCertificate;

const ID_KP_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");
const ID_CE_BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
const ID_CE_EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");

const ID_EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");

/// How far a CA's clock may run ahead of ours, and how much longer than the configured
/// lifetime a certificate may be, to allow for a CA that rounds or backdates.
const TOLERANCE: time::Duration = time::Duration::minutes(5);

/// The reason a certificate returned by a CA must not be handed to the client.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertificateMismatch {
    #[error("the certificate is not a DER X.509 certificate: {0}")]
    Malformed(String),
    #[error("the certificate certifies another public key than the CSR's")]
    PublicKey,
    #[error("the certificate's subject is {found}, not the validated {expected}")]
    Subject { expected: String, found: String },
    #[error("the certificate lacks extendedKeyUsage clientAuth")]
    ClientAuth,
    #[error("the certificate has basicConstraints cA=TRUE, but a client certificate must not be a CA")]
    CaCertificate,
    #[error("the certificate is valid for {days} days, longer than the configured {allowed_days} days")]
    Lifetime { days: i64, allowed_days: i64 },
    #[error("the certificate is not valid now: notBefore {not_before}, notAfter {not_after}")]
    NotCurrent { not_before: OffsetDateTime, not_after: OffsetDateTime },
    #[error("the certificate chain does not lead to the pinned root: {0}")]
    Chain(String),
}

/// Checks that `issued` is the certificate the CSR asked for and chains to `root_pem`.
pub fn check_issued(
    issued: &IssuedCertificate,
    csr: &VerifiedCsr,
    lifetime: time::Duration,
    root_pem: &str,
    now: OffsetDateTime,
) -> Result<(), CertificateMismatch> {
    let leaf = Certificate::from_der(&issued.der).map_err(|e| CertificateMismatch::Malformed(e.to_string()))?;
    let tbs = &leaf.tbs_certificate;

    let certified_key =
        tbs.subject_public_key_info.to_der().map_err(|e| CertificateMismatch::Malformed(e.to_string()))?;
    if certified_key != csr.spki_der() {
        return Err(CertificateMismatch::PublicKey);
    }

    let expected = Name::from_der(csr.subject_der()).map_err(|e| CertificateMismatch::Malformed(e.to_string()))?;
    if attribute_values(&expected) != attribute_values(&tbs.subject) {
        return Err(CertificateMismatch::Subject { expected: expected.to_string(), found: tbs.subject.to_string() });
    }

    check_extensions(&leaf)?;

    let not_before = OffsetDateTime::from(tbs.validity.not_before.to_system_time());
    let not_after = OffsetDateTime::from(tbs.validity.not_after.to_system_time());
    if not_after - not_before > lifetime + TOLERANCE {
        return Err(CertificateMismatch::Lifetime {
            days: (not_after - not_before).whole_days(),
            allowed_days: lifetime.whole_days(),
        });
    }
    if not_before > now + TOLERANCE || not_after <= now {
        return Err(CertificateMismatch::NotCurrent { not_before, not_after });
    }

    let root =
        Certificate::from_pem(root_pem).map_err(|e| CertificateMismatch::Chain(format!("the pinned root: {e}")))?;
    let chain = Certificate::load_pem_chain(issued.chain_pem.as_bytes())
        .map_err(|e| CertificateMismatch::Chain(format!("the returned chain: {e}")))?;
    check_chain(&leaf, &chain, &root).map_err(CertificateMismatch::Chain)
}

fn check_extensions(leaf: &Certificate) -> Result<(), CertificateMismatch> {
    let extensions = leaf.tbs_certificate.extensions.as_deref().unwrap_or_default();
    let mut client_auth = false;
    for extension in extensions {
        let value = extension.extn_value.as_bytes();
        if extension.extn_id == ID_CE_EXT_KEY_USAGE {
            let usages =
                ExtendedKeyUsage::from_der(value).map_err(|e| CertificateMismatch::Malformed(e.to_string()))?;
            client_auth = usages.0.contains(&ID_KP_CLIENT_AUTH);
        }
        if extension.extn_id == ID_CE_BASIC_CONSTRAINTS {
            let constraints =
                BasicConstraints::from_der(value).map_err(|e| CertificateMismatch::Malformed(e.to_string()))?;
            if constraints.ca {
                return Err(CertificateMismatch::CaCertificate);
            }
        }
    }
    if !client_auth {
        return Err(CertificateMismatch::ClientAuth);
    }
    Ok(())
}

/// Follows the chain from the leaf, each certificate signed by the next, until a
/// certificate equal to or signed by the pinned root.
fn check_chain(leaf: &Certificate, chain: &[Certificate], root: &Certificate) -> Result<(), String> {
    let mut child = leaf;
    for (depth, ca) in chain.iter().enumerate() {
        if ca == root {
            return verify_signed_by(child, root)
                .map_err(|e| format!("the root did not sign the certificate below it: {e}"));
        }
        if !is_ca(ca) {
            return Err(format!(
                "chain certificate {} ({}) is not a CA certificate",
                depth + 1,
                ca.tbs_certificate.subject
            ));
        }
        verify_signed_by(child, ca).map_err(|e| {
            format!(
                "chain certificate {} ({}) did not sign the certificate below it: {e}",
                depth + 1,
                ca.tbs_certificate.subject
            )
        })?;
        child = ca;
    }
    verify_signed_by(child, root)
        .map_err(|e| format!("the pinned root ({}) did not sign the chain: {e}", root.tbs_certificate.subject))
}

fn is_ca(certificate: &Certificate) -> bool {
    let extensions = certificate.tbs_certificate.extensions.as_deref().unwrap_or_default();
    extensions.iter().any(|extension| {
        extension.extn_id == ID_CE_BASIC_CONSTRAINTS
            && BasicConstraints::from_der(extension.extn_value.as_bytes()).is_ok_and(|constraints| constraints.ca)
    })
}

/// Verifies that `issuer` signed `child`.
fn verify_signed_by(child: &Certificate, issuer: &Certificate) -> Result<(), String> {
    use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

    if child.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err(format!("issued by {}, not by {}", child.tbs_certificate.issuer, issuer.tbs_certificate.subject));
    }
    let spki = &issuer.tbs_certificate.subject_public_key_info;
    let curve = spki.algorithm.parameters.as_ref().and_then(|parameters| parameters.decode_as::<Oid>().ok());
    let algorithm: &'static dyn VerificationAlgorithm = match (child.signature_algorithm.oid, spki.algorithm.oid, curve)
    {
        (ECDSA_WITH_SHA256, ID_EC_PUBLIC_KEY, Some(SECP256R1)) => &signature::ECDSA_P256_SHA256_ASN1,
        (ECDSA_WITH_SHA384, ID_EC_PUBLIC_KEY, Some(SECP256R1)) => &signature::ECDSA_P256_SHA384_ASN1,
        (ECDSA_WITH_SHA256, ID_EC_PUBLIC_KEY, Some(SECP384R1)) => &signature::ECDSA_P384_SHA256_ASN1,
        (ECDSA_WITH_SHA384, ID_EC_PUBLIC_KEY, Some(SECP384R1)) => &signature::ECDSA_P384_SHA384_ASN1,
        (SHA256_WITH_RSA, RSA_ENCRYPTION, _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (SHA384_WITH_RSA, RSA_ENCRYPTION, _) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (SHA512_WITH_RSA, RSA_ENCRYPTION, _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (signature_oid, key_oid, _) => {
            return Err(format!("the signature algorithm {signature_oid} with a {key_oid} key is not supported"))
        }
    };
    let tbs = child.tbs_certificate.to_der().map_err(|e| e.to_string())?;
    let signature = child.signature.as_bytes().ok_or("the signature is not a whole number of bytes")?;
    UnparsedPublicKey::new(algorithm, spki.subject_public_key.raw_bytes())
        .verify(&tbs, signature)
        .map_err(|_| "the signature does not verify".to_owned())
}

/// The attributes of a name as sorted (type, text) pairs, so that names which differ
/// only in string type (UTF8String or PrintableString) or in the order of their RDNs
/// compare equal.
///
/// NOTE: the order is ignored because a CA may encode the subject in its own attribute
/// order (CAS builds it from structured fields); validation already allows exactly one
/// CN and one O, so the order carries no meaning here.
fn attribute_values(name: &Name) -> Vec<(Oid, String)> {
    let mut values: Vec<(Oid, String)> = name
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .map(|attribute| {
            let text = std::str::from_utf8(attribute.value.value())
                .map(str::to_owned)
                .unwrap_or_else(|_| hex::encode(attribute.value.value()));
            (attribute.oid, text)
        })
        .collect();
    values.sort();
    values
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn subject_comparison_ignores_order_not_values() {
        let client = Name::from_str("O=OZOverbindzorg,CN=zorgverband.nl").unwrap();
        let reordered = Name::from_str("CN=zorgverband.nl,O=OZOverbindzorg").unwrap();
        let other = Name::from_str("O=OZOverbindzorg,CN=connect.zorgverband.nl").unwrap();
        let extra = Name::from_str("O=OZOverbindzorg,OU=IT,CN=zorgverband.nl").unwrap();

        assert_eq!(attribute_values(&client), attribute_values(&reordered));
        assert_ne!(attribute_values(&client), attribute_values(&other));
        assert_ne!(attribute_values(&client), attribute_values(&extra));
    }
}
