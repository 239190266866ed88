//! Certificate authorities for ozo-signer: one [`Signer`] trait and its backends.

use async_trait::async_trait;
use ozo_domain::VerifiedCsr;
use time::OffsetDateTime;
use uuid::Uuid;

mod cas;
mod local;
mod verify;

pub use cas::{CasClients, CasCredentials, CasError, CasSettings, GoogleCas};
pub use local::{LocalCa, LocalCaError};
pub use ozo_domain::RevocationReason;
pub use verify::{check_issued, CertificateMismatch};

/// The input of one certificate issuance.
#[derive(Clone, Copy, Debug)]
pub struct SigningRequest<'a> {
    /// The id of the request. A backend that calls a remote CA derives its idempotency
    /// ids from it, so that a retried call cannot issue a second certificate.
    pub request_id: Uuid,
    pub csr: &'a VerifiedCsr,
    pub lifetime: time::Duration,
    /// The issuance round of the request, 1 at first. A round ends when the CA returned a
    /// certificate that failed our checks; the next round requests a new one from the CA.
    pub round: i32,
}

/// A certificate to revoke.
#[derive(Clone, Copy, Debug)]
pub struct RevocationRequest<'a> {
    pub request_id: Uuid,
    pub serial_hex: &'a str,
    /// The CA's own name of the certificate, when it has one.
    pub certificate_name: Option<&'a str>,
    pub reason: ozo_domain::RevocationReason,
}

/// A certificate as issued by a CA.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    pub der: Vec<u8>,
    pub pem: String,
    /// The issuing CA certificates in PEM, from the issuer of `pem` up to the root.
    pub chain_pem: String,
    /// The serial number in lowercase hex, without leading zeros.
    pub serial_hex: String,
    pub issuer: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// The SHA-256 of the certificate DER in lowercase hex.
    pub sha256_hex: String,
    /// The remote CA's record of the certificate; `None` for the local CA.
    pub ca_record: Option<CaRecord>,
}

/// A certificate as a remote CA names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaRecord {
    /// The full resource name, `projects/p/locations/l/caPools/pool/certificates/id`.
    pub name: String,
    pub certificate_id: String,
    /// The idempotency id of the call that created it.
    pub request_id: Uuid,
    /// The resource name of the CA in the pool that signed it.
    pub issuing_ca: String,
}

/// A CA's description of the certificate it would issue for a request, made without issuing it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertificatePreview {
    pub subject: String,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    pub key_usages: Vec<String>,
    pub extended_key_usages: Vec<String>,
    pub is_ca: Option<bool>,
    /// The CA that would sign.
    pub issuer: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The CA rejected this request, so retrying it unchanged fails again.
    #[error("the CA rejected the request: {0}")]
    Rejected(String),
    /// The CA could not be reached or failed, and the same request may succeed later.
    #[error("the CA is unavailable: {0}")]
    Unavailable(String),
}

/// A certificate authority that issues client certificates for one environment.
#[async_trait]
pub trait Signer: Send + Sync {
    /// Issues a client-authentication certificate for a verified CSR.
    async fn sign(&self, request: SigningRequest<'_>) -> Result<IssuedCertificate, SignError>;

    /// Tells whether [`Signer::preview`] can describe a certificate before it is issued.
    fn supports_preview(&self) -> bool {
        false
    }

    /// Describes the certificate `sign` would issue, without issuing it; `None` when the
    /// backend cannot.
    async fn preview(&self, request: SigningRequest<'_>) -> Result<Option<CertificatePreview>, SignError> {
        let _ = request;
        Ok(None)
    }

    /// Revokes a certificate this CA issued. Revoking a revoked certificate again
    /// succeeds, so a retried call does no harm.
    async fn revoke(&self, request: RevocationRequest<'_>) -> Result<(), SignError>;

    /// The CA certificate that clients and servers of this environment trust, in PEM.
    fn ca_certificate_pem(&self) -> &str;

    /// A short description of the backend for logs and the operator's pages.
    fn describe(&self) -> String;
}

/// Formats a serial number in lowercase hex without the sign byte or other zero bytes in front.
pub(crate) fn serial_hex(bytes: &[u8]) -> String {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len().saturating_sub(1));
    hex::encode(&bytes[first..])
}
