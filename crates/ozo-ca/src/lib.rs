//! Certificate authorities for ozo-signer: one [`Signer`] trait and its backends.

use async_trait::async_trait;
use ozo_domain::VerifiedCsr;
use time::OffsetDateTime;
use uuid::Uuid;

mod local;

pub use local::{LocalCa, LocalCaError};
pub use ozo_domain::RevocationReason;

/// The input of one certificate issuance.
#[derive(Clone, Copy, Debug)]
pub struct SigningRequest<'a> {
    /// The id of the request. A backend that calls a remote CA derives its idempotency
    /// ids from it, so that a retried call cannot issue a second certificate.
    pub request_id: Uuid,
    pub csr: &'a VerifiedCsr,
    pub lifetime: time::Duration,
}

/// A certificate to revoke.
#[derive(Clone, Copy, Debug)]
pub struct RevocationRequest<'a> {
    pub request_id: Uuid,
    pub serial_hex: &'a str,
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

    /// Revokes a certificate this CA issued. Revoking a revoked certificate again
    /// succeeds, so a retried call does no harm.
    async fn revoke(&self, request: RevocationRequest<'_>) -> Result<(), SignError>;

    /// The CA certificate that clients and servers of this environment trust, in PEM.
    fn ca_certificate_pem(&self) -> &str;

    /// A short description of the backend for logs and the operator's pages.
    fn describe(&self) -> String;
}
