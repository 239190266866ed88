//! Issued certificates.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// A certificate to record for a request.
#[derive(Clone, Debug)]
pub struct NewCertificate<'a> {
    pub request_id: Uuid,
    pub serial_hex: &'a str,
    pub issuer: &'a str,
    pub pem: &'a str,
    pub chain_pem: &'a str,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub sha256: &'a [u8],
    pub spki_sha256: &'a [u8],
    pub remote: Option<RemoteRecord<'a>>,
}

/// A remote CA's names for a certificate.
#[derive(Clone, Copy, Debug)]
pub struct RemoteRecord<'a> {
    pub name: &'a str,
    pub certificate_id: &'a str,
    pub request_id: Uuid,
    pub issuing_ca: &'a str,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct CertificateRow {
    pub id: Uuid,
    pub request_id: Uuid,
    pub serial_hex: String,
    pub issuer: String,
    #[serde(skip)]
    pub pem: String,
    #[serde(skip)]
    pub chain_pem: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    #[serde(serialize_with = "crate::requests::serialize_hex")]
    pub sha256: Vec<u8>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revocation_reason: Option<String>,
    /// The remote CA's resource name of the certificate. It and the other remote names
    /// stay out of JSON, which clients read too, because they name the cloud project.
    #[serde(skip)]
    pub ca_certificate_name: Option<String>,
    #[serde(skip)]
    pub ca_certificate_id: Option<String>,
    #[serde(skip)]
    pub ca_request_id: Option<Uuid>,
    #[serde(skip)]
    pub issuing_ca: Option<String>,
    /// When the CA confirmed the revocation.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ca_revoked_at: Option<OffsetDateTime>,
}

/// Records a certificate. A request has at most one: a second insert fails.
#[tracing::instrument(name = "db.insert_certificate", skip_all, fields(request.id = %certificate.request_id))]
pub async fn insert(conn: &mut PgConnection, certificate: &NewCertificate<'_>) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    sqlx::query!(
        r#"INSERT INTO certificates
               (id, request_id, serial_hex, issuer, pem, chain_pem, not_before, not_after, sha256, spki_sha256,
                ca_certificate_name, ca_certificate_id, ca_request_id, issuing_ca)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"#,
        id,
        certificate.request_id,
        certificate.serial_hex,
        certificate.issuer,
        certificate.pem,
        certificate.chain_pem,
        certificate.not_before,
        certificate.not_after,
        certificate.sha256,
        certificate.spki_sha256,
        certificate.remote.map(|remote| remote.name),
        certificate.remote.map(|remote| remote.certificate_id),
        certificate.remote.map(|remote| remote.request_id),
        certificate.remote.map(|remote| remote.issuing_ca),
    )
    .execute(conn)
    .await?;
    Ok(id)
}

/// Marks the certificate of a request as revoked; returns false when it already was.
#[tracing::instrument(name = "db.revoke_certificate", skip(conn))]
pub async fn revoke(conn: &mut PgConnection, request_id: Uuid, reason: &str) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query!(
        "UPDATE certificates SET revoked_at = now(), revocation_reason = $2 WHERE request_id = $1 AND revoked_at IS NULL",
        request_id,
        reason,
    )
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Finds the certificate of a request.
#[tracing::instrument(name = "db.certificate_for_request", skip(conn))]
pub async fn for_request(conn: &mut PgConnection, request_id: Uuid) -> Result<Option<CertificateRow>, sqlx::Error> {
    sqlx::query_as!(
        CertificateRow,
        r#"SELECT id, request_id, serial_hex, issuer, pem, chain_pem, not_before, not_after, sha256,
                  revoked_at, revocation_reason, ca_certificate_name, ca_certificate_id, ca_request_id, issuing_ca, ca_revoked_at
           FROM certificates WHERE request_id = $1"#,
        request_id
    )
    .fetch_optional(conn)
    .await
}

/// Records that the CA confirmed the revocation of a request's certificate.
#[tracing::instrument(name = "db.confirm_revocation", skip(conn))]
pub async fn confirm_revocation(conn: &mut PgConnection, request_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE certificates SET ca_revoked_at = now() WHERE request_id = $1 AND ca_revoked_at IS NULL",
        request_id
    )
    .execute(conn)
    .await?;
    Ok(())
}
