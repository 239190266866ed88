//! A CA backend that has a Google Cloud Certificate Authority Service (CAS) pool sign,
//! through Google's official client over HTTP and JSON.
//!
//! Every call carries ids derived from our request, so a call repeated after a crash, a
//! timeout or a lost response finds the certificate of the first call instead of making a
//! second one: CAS deduplicates a repeated `requestId`, and a repeated `certificateId`
//! fails with `ALREADY_EXISTS`, which is resolved by reading that certificate.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use der::{DecodePem, Encode};
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::options::RequestOptionsBuilder;
use google_cloud_gax::retry_policy::NeverRetry;
use google_cloud_security_privateca_v1::client::CertificateAuthorityService;
use google_cloud_security_privateca_v1::model;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;
use x509_cert::Certificate;

use crate::{
    CaRecord, CertificatePreview, IssuedCertificate, RevocationReason, RevocationRequest, SignError, Signer,
    SigningRequest,
};

/// The namespace of the UUIDv5 `requestId`s this backend derives. Changing it would let a
/// retry of an earlier call issue a second certificate.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f7a_6f2d_7369_676e_6572_2d63_6173_0001);

/// The credentials the client presents to CAS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CasCredentials {
    /// Application default credentials: workload identity, the metadata server, or the
    /// file in `GOOGLE_APPLICATION_CREDENTIALS`.
    ApplicationDefault,
    /// A service-account key file; the client signs its own tokens with the key.
    ServiceAccountKey(PathBuf),
    /// No credentials, for tests against a local fake.
    Anonymous,
}

/// The settings of one environment's CAS pool.
#[derive(Clone, Debug)]
pub struct CasSettings {
    pub project: String,
    pub location: String,
    pub ca_pool: String,
    /// The id of one CA in the pool that must sign; any enabled CA of the pool when unset.
    pub issuing_ca: Option<String>,
    /// The full resource name of a certificate template.
    pub certificate_template: Option<String>,
    /// The pool's root certificate in PEM. Every certificate must chain to it.
    pub root_pem: String,
    pub credentials: CasCredentials,
    /// The service address; Google's when unset.
    pub endpoint: Option<String>,
    /// CreateCertificate calls per second this process makes at most.
    pub requests_per_second: NonZeroU32,
    /// How long one call may take before it counts as failed and is retried.
    pub timeout: Duration,
}

impl CasSettings {
    /// Returns the resource name of the pool, `projects/p/locations/l/caPools/pool`.
    pub fn pool_name(&self) -> String {
        format!("projects/{}/locations/{}/caPools/{}", self.project, self.location, self.ca_pool)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CasError {
    #[error("service_account_key {path} is not a usable service-account key file: {detail}")]
    ServiceAccountKey { path: PathBuf, detail: String },
    #[error("failed to set up the CAS credentials: {0}")]
    Credentials(String),
    #[error("failed to build the CAS client: {0}")]
    Client(String),
    #[error("the pinned root certificate is not a PEM X.509 certificate: {0}")]
    Root(String),
}

/// The CAS clients of a process: one per endpoint and credentials, shared by every pool
/// that uses them, because each client keeps its own connections and tokens.
#[derive(Default)]
pub struct CasClients {
    clients: Vec<(Option<String>, CasCredentials, CertificateAuthorityService)>,
}

impl CasClients {
    async fn get(&mut self, settings: &CasSettings) -> Result<CertificateAuthorityService, CasError> {
        let existing = self
            .clients
            .iter()
            .find(|(endpoint, credentials, _)| *endpoint == settings.endpoint && *credentials == settings.credentials);
        if let Some((_, _, client)) = existing {
            return Ok(client.clone());
        }

        let mut builder = CertificateAuthorityService::builder()
            .with_credentials(credentials(&settings.credentials)?)
            .with_retry_policy(NeverRetry);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let client = builder.build().await.map_err(|e| CasError::Client(e.to_string()))?;
        self.clients.push((settings.endpoint.clone(), settings.credentials.clone(), client.clone()));
        Ok(client)
    }

    /// Returns the number of clients built so far.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

/// A signer backed by one CAS pool.
pub struct GoogleCas {
    client: CertificateAuthorityService,
    settings: CasSettings,
    pool: String,
    limiter: DefaultDirectRateLimiter,
}

impl GoogleCas {
    /// Sets up the signer of one pool, with a client from `clients`. Nothing is sent until
    /// the first call.
    pub async fn connect(settings: CasSettings, clients: &mut CasClients) -> Result<GoogleCas, CasError> {
        Certificate::from_pem(&settings.root_pem).map_err(|e| CasError::Root(e.to_string()))?;
        let client = clients.get(&settings).await?;
        let limiter = RateLimiter::direct(Quota::per_second(settings.requests_per_second));
        Ok(GoogleCas { client, pool: settings.pool_name(), settings, limiter })
    }

    /// Derives the CAS certificate id of a request's issuance round: valid for CAS
    /// (`[a-zA-Z0-9_-]{1,63}`), and the same on every retry of the round.
    pub fn certificate_id(request_id: Uuid, round: i32) -> String {
        format!("ozo-{}-{round}", request_id.simple())
    }

    /// Derives the CAS `requestId` of a call from what the call does.
    pub fn call_id(action: &str, target: &str) -> Uuid {
        Uuid::new_v5(&ID_NAMESPACE, format!("{action}:{target}").as_bytes())
    }

    fn certificate_body(&self, request: &SigningRequest<'_>) -> Result<model::Certificate, SignError> {
        let pem = der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::LF, request.csr.der())
            .map_err(|e| SignError::Rejected(format!("failed to encode the CSR as PEM: {e}")))?;
        let lifetime = google_cloud_wkt::Duration::clamp(request.lifetime.whole_seconds(), 0);
        let mut body = model::Certificate::new().set_pem_csr(pem).set_lifetime(lifetime);
        if let Some(template) = &self.settings.certificate_template {
            body = body.set_certificate_template(template);
        }
        Ok(body)
    }

    async fn create(&self, request: &SigningRequest<'_>) -> Result<model::Certificate, SignError> {
        let certificate_id = Self::certificate_id(request.request_id, request.round);
        let call_id = Self::call_id("create", &format!("{}/certificates/{certificate_id}", self.pool));
        let body = self.certificate_body(request)?;

        self.limiter.until_ready().await;
        let started = std::time::Instant::now();
        let created = self
            .client
            .create_certificate()
            .set_parent(&self.pool)
            .set_certificate_id(&certificate_id)
            .set_request_id(call_id.to_string())
            .set_issuing_certificate_authority_id(self.settings.issuing_ca.clone().unwrap_or_default())
            .set_certificate(body)
            .with_attempt_timeout(self.settings.timeout)
            .send()
            .await;
        self.observe("create", started, &created);

        match created {
            Ok(certificate) => Ok(certificate),
            Err(error) if status_code(&error) == Some(Code::AlreadyExists) => {
                let name = format!("{}/certificates/{certificate_id}", self.pool);
                tracing::info!(request.id = %request.request_id, cas.certificate = name, "CAS already has this certificate; reading it");
                let started = std::time::Instant::now();
                let existing =
                    self.client.get_certificate().set_name(name).with_attempt_timeout(self.settings.timeout).send().await;
                self.observe("get", started, &existing);
                existing.map_err(classify)
            }
            Err(error) => Err(classify(error)),
        }
    }

    /// Records a call's duration and its outcome: OK, the gRPC status code's name such as
    /// UNAVAILABLE, TIMEOUT, HTTP_<code> or CONNECTION.
    fn observe<T>(&self, operation: &'static str, started: std::time::Instant, result: &Result<T, google_cloud_gax::error::Error>) {
        let outcome = match result {
            Ok(_) => "OK".to_owned(),
            Err(error) => match (error.status(), error.http_status_code()) {
                (Some(status), _) => status.code.name().to_owned(),
                (None, _) if error.is_timeout() => "TIMEOUT".to_owned(),
                (None, Some(code)) => format!("HTTP_{code}"),
                (None, None) => "CONNECTION".to_owned(),
            },
        };
        let pool = self.settings.ca_pool.clone();
        metrics::histogram!("ozo_ca_call_duration_seconds", "ca_pool" => pool.clone(), "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("ozo_ca_calls_total", "ca_pool" => pool, "operation" => operation, "outcome" => outcome)
            .increment(1);
    }

    fn issued(&self, certificate: model::Certificate) -> Result<IssuedCertificate, SignError> {
        if certificate.pem_certificate.is_empty() {
            return Err(SignError::Rejected(format!("CAS returned {} without a PEM certificate", certificate.name)));
        }
        let parsed = Certificate::from_pem(&certificate.pem_certificate)
            .map_err(|e| SignError::Rejected(format!("CAS returned a certificate that is not valid PEM X.509: {e}")))?;
        let der = parsed.to_der().map_err(|e| SignError::Rejected(e.to_string()))?;
        let tbs = &parsed.tbs_certificate;
        let certificate_id = certificate.name.rsplit('/').next().unwrap_or_default().to_owned();

        let mut chain_pem = String::new();
        for pem in &certificate.pem_certificate_chain {
            chain_pem.push_str(pem.trim_end());
            chain_pem.push('\n');
        }

        Ok(IssuedCertificate {
            sha256_hex: hex::encode(Sha256::digest(&der)),
            serial_hex: crate::serial_hex(tbs.serial_number.as_bytes()),
            issuer: tbs.issuer.to_string(),
            not_before: OffsetDateTime::from(tbs.validity.not_before.to_system_time()),
            not_after: OffsetDateTime::from(tbs.validity.not_after.to_system_time()),
            pem: format!("{}\n", certificate.pem_certificate.trim_end()),
            chain_pem,
            der,
            ca_record: Some(CaRecord {
                request_id: Self::call_id("create", &format!("{}/certificates/{certificate_id}", self.pool)),
                certificate_id,
                name: certificate.name,
                issuing_ca: certificate.issuer_certificate_authority,
            }),
        })
    }
}

#[async_trait]
impl Signer for GoogleCas {
    async fn sign(&self, request: SigningRequest<'_>) -> Result<IssuedCertificate, SignError> {
        let certificate = self.create(&request).await?;
        self.issued(certificate)
    }

    fn supports_preview(&self) -> bool {
        true
    }

    async fn preview(&self, request: SigningRequest<'_>) -> Result<Option<CertificatePreview>, SignError> {
        let body = self.certificate_body(&request)?;
        // NOTE: nothing is stored when validateOnly is set, so a fresh id per preview is safe.
        let certificate_id = format!("ozo-preview-{}", Uuid::new_v4().simple());

        self.limiter.until_ready().await;
        let started = std::time::Instant::now();
        let preview = self
            .client
            .create_certificate()
            .set_parent(&self.pool)
            .set_certificate_id(certificate_id)
            .set_issuing_certificate_authority_id(self.settings.issuing_ca.clone().unwrap_or_default())
            .set_validate_only(true)
            .set_certificate(body)
            .with_attempt_timeout(self.settings.timeout)
            .send()
            .await;
        self.observe("preview", started, &preview);
        let preview = preview.map_err(classify)?;
        Ok(Some(describe_preview(&preview)))
    }

    async fn revoke(&self, request: RevocationRequest<'_>) -> Result<(), SignError> {
        let Some(name) = request.certificate_name else {
            return Err(SignError::Rejected(format!(
                "certificate {} has no CAS resource name, so CAS cannot revoke it",
                request.serial_hex
            )));
        };
        let call_id = Self::call_id("revoke", name);

        let started = std::time::Instant::now();
        let revoked = self
            .client
            .revoke_certificate()
            .set_name(name)
            .set_reason(cas_reason(request.reason))
            .set_request_id(call_id.to_string())
            .with_attempt_timeout(self.settings.timeout)
            .send()
            .await;
        self.observe("revoke", started, &revoked);

        match revoked {
            Ok(_) => Ok(()),
            // A certificate revoked by an earlier call whose response was lost.
            Err(error) if status_code(&error) == Some(Code::FailedPrecondition) => {
                let started = std::time::Instant::now();
                let current =
                    self.client.get_certificate().set_name(name).with_attempt_timeout(self.settings.timeout).send().await;
                self.observe("get", started, &current);
                let current = current.map_err(classify)?;
                if current.revocation_details.is_some() {
                    return Ok(());
                }
                Err(classify(error))
            }
            Err(error) => Err(classify(error)),
        }
    }

    fn ca_certificate_pem(&self) -> &str {
        &self.settings.root_pem
    }

    fn describe(&self) -> String {
        format!("Google CAS pool {}", self.pool)
    }
}

fn credentials(choice: &CasCredentials) -> Result<google_cloud_auth::credentials::Credentials, CasError> {
    use google_cloud_auth::credentials;

    match choice {
        CasCredentials::Anonymous => Ok(credentials::anonymous::Builder::new().build()),
        CasCredentials::ApplicationDefault => {
            credentials::Builder::default().build().map_err(|e| CasError::Credentials(e.to_string()))
        }
        CasCredentials::ServiceAccountKey(path) => {
            let key_error = |detail: String| CasError::ServiceAccountKey { path: path.clone(), detail };
            let text = std::fs::read_to_string(path).map_err(|e| key_error(e.to_string()))?;
            // The key is never logged: a parse error names the position, not the content.
            let key: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| key_error(format!("not JSON (line {}, column {})", e.line(), e.column())))?;
            credentials::service_account::Builder::new(key).build().map_err(|e| CasError::Credentials(e.to_string()))
        }
    }
}

fn status_code(error: &google_cloud_gax::error::Error) -> Option<Code> {
    error.status().map(|status| status.code)
}

/// Sorts a failed call: what may pass later is retried, what will fail again needs an
/// operator.
fn classify(error: google_cloud_gax::error::Error) -> SignError {
    if let Some(status) = error.status() {
        let message = format!("CAS responded {}: {}", status.code.name(), status.message);
        return match status.code {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Internal
            | Code::Aborted
            | Code::Unknown => SignError::Unavailable(message),
            _ => SignError::Rejected(message),
        };
    }
    if error.is_timeout() {
        return SignError::Unavailable(format!("CAS did not respond in time: {error}"));
    }
    if error.is_authentication() && !error.is_transient_and_before_rpc() {
        return SignError::Rejected(format!("the CAS credentials were rejected or could not be created: {error}"));
    }
    if error.is_binding() || error.is_serialization() || error.is_deserialization() {
        return SignError::Rejected(format!("the CAS call could not be made or its response read: {error}"));
    }
    match error.http_status_code() {
        Some(code) if code != 429 && code < 500 => SignError::Rejected(format!("CAS responded HTTP {code}: {error}")),
        // A lost connection, a reset or a 5xx without a status: the derived ids make a
        // repeated call safe.
        _ => SignError::Unavailable(format!("the connection to CAS failed: {error}")),
    }
}

fn cas_reason(reason: RevocationReason) -> model::RevocationReason {
    match reason {
        RevocationReason::Unspecified => model::RevocationReason::Unspecified,
        RevocationReason::KeyCompromise => model::RevocationReason::KeyCompromise,
        RevocationReason::CaCompromise => model::RevocationReason::CertificateAuthorityCompromise,
        RevocationReason::AffiliationChanged => model::RevocationReason::AffiliationChanged,
        RevocationReason::Superseded => model::RevocationReason::Superseded,
        RevocationReason::CessationOfOperation => model::RevocationReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn => model::RevocationReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => model::RevocationReason::AttributeAuthorityCompromise,
    }
}

fn describe_preview(certificate: &model::Certificate) -> CertificatePreview {
    let description = certificate.certificate_description.as_ref();
    let subject_description = description.and_then(|d| d.subject_description.as_ref());
    let subject = subject_description
        .and_then(|s| s.subject.as_ref())
        .map(|s| format!("CN={}, O={}", s.common_name, s.organization))
        .unwrap_or_default();
    let timestamp =
        |t: Option<&google_cloud_wkt::Timestamp>| t.and_then(|t| OffsetDateTime::from_unix_timestamp(t.seconds()).ok());
    let x509 = description.and_then(|d| d.x509_description.as_ref());
    let key_usage = x509.and_then(|x| x.key_usage.as_ref());

    let mut key_usages = Vec::new();
    if let Some(base) = key_usage.and_then(|k| k.base_key_usage.as_ref()) {
        for (set, name) in [
            (base.digital_signature, "digitalSignature"),
            (base.content_commitment, "contentCommitment"),
            (base.key_encipherment, "keyEncipherment"),
            (base.data_encipherment, "dataEncipherment"),
            (base.key_agreement, "keyAgreement"),
            (base.cert_sign, "keyCertSign"),
            (base.crl_sign, "cRLSign"),
        ] {
            if set {
                key_usages.push(name.to_owned());
            }
        }
    }
    let mut extended_key_usages = Vec::new();
    if let Some(extended) = key_usage.and_then(|k| k.extended_key_usage.as_ref()) {
        for (set, name) in [
            (extended.client_auth, "clientAuth"),
            (extended.server_auth, "serverAuth"),
            (extended.code_signing, "codeSigning"),
            (extended.email_protection, "emailProtection"),
            (extended.time_stamping, "timeStamping"),
            (extended.ocsp_signing, "OCSPSigning"),
        ] {
            if set {
                extended_key_usages.push(name.to_owned());
            }
        }
    }

    CertificatePreview {
        subject,
        not_before: timestamp(subject_description.and_then(|s| s.not_before_time.as_ref())),
        not_after: timestamp(subject_description.and_then(|s| s.not_after_time.as_ref())),
        key_usages,
        extended_key_usages,
        is_ca: x509.and_then(|x| x.ca_options.as_ref()).and_then(|c| c.is_ca),
        issuer: certificate.issuer_certificate_authority.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_ids_are_stable_and_valid_for_cas() {
        let request = Uuid::parse_str("0b6d2f39-5ae2-4c4e-9d0e-0f4a3e1b2c3d").unwrap();
        let id = GoogleCas::certificate_id(request, 1);
        assert_eq!(id, "ozo-0b6d2f395ae24c4e9d0e0f4a3e1b2c3d-1");
        assert!(id.len() <= 63);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(GoogleCas::certificate_id(request, 2), id);
    }

    #[test]
    fn call_ids_are_derived_not_random() {
        let first = GoogleCas::call_id("create", "projects/p/locations/l/caPools/c/certificates/x");
        let again = GoogleCas::call_id("create", "projects/p/locations/l/caPools/c/certificates/x");
        let revoke = GoogleCas::call_id("revoke", "projects/p/locations/l/caPools/c/certificates/x");
        assert_eq!(first, again);
        assert_ne!(first, revoke);
        assert_eq!(first.get_version_num(), 5);
    }
}
