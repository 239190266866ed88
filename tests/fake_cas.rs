//! Tests that drive the fake CAS with Google's Rust SDK for CAS
//! (`google-cloud-security-privateca-v1`): the SDK's requests reach the fake, its JSON
//! responses parse into the SDK's types, and each fault surfaces as the SDK error that
//! ozo-signer has to handle.
//!
//! Every client connects to the fake on 127.0.0.1 with anonymous credentials.

use std::path::Path;
use std::time::Duration;

use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::options::RequestOptionsBuilder;
use google_cloud_security_privateca_v1::client::CertificateAuthorityService;
use google_cloud_security_privateca_v1::model::public_key::KeyFormat;
use google_cloud_security_privateca_v1::model::{Certificate, RevocationReason};
use ozo_system_tests::fake_cas::{CreateOutcome, FakeCas, Fault};
use ozo_system_tests::{make_csr, openssl, PRODUCTION_SUBJECT};
use tempfile::TempDir;

const POOL: &str = "projects/ozo-test/locations/europe-west4/caPools/ozo-clients";
const ONE_DAY: i64 = 24 * 60 * 60;
/// PEM armour around bytes that are not DER.
const NOT_A_CSR: &str = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";

/// Builds an SDK client whose endpoint is the fake and whose credentials are anonymous,
/// so that no request leaves the machine and no credentials are looked up.
async fn sdk_client(fake: &FakeCas) -> CertificateAuthorityService {
    CertificateAuthorityService::builder()
        .with_endpoint(fake.endpoint())
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .build()
        .await
        .expect("the SDK client builds")
}

/// A key and CSR made by OpenSSL in a directory of their own.
struct Csr {
    dir: TempDir,
    pem: String,
}

impl Csr {
    fn new() -> Csr {
        let dir = tempfile::tempdir().unwrap();
        let (_, csr_path) = make_csr(dir.path(), "client", PRODUCTION_SUBJECT);
        let pem = std::fs::read_to_string(csr_path).unwrap();
        Csr { dir, pem }
    }

    /// Returns the CSR's public key as OpenSSL prints it in PEM.
    fn public_key(&self) -> String {
        let output = openssl(self.dir.path(), &["req", "-in", "client.csr", "-pubkey", "-noout"]);
        String::from_utf8(output.stdout).unwrap()
    }
}

/// Returns the public key of a PEM certificate as OpenSSL prints it in PEM.
fn certificate_public_key(dir: &Path, certificate_pem: &str) -> String {
    std::fs::write(dir.join("leaf.pem"), certificate_pem).unwrap();
    let output = openssl(dir, &["x509", "-in", "leaf.pem", "-pubkey", "-noout"]);
    String::from_utf8(output.stdout).unwrap()
}

/// Checks the certificate chain with `openssl verify`, which panics when it fails.
fn verify_with_openssl(dir: &Path, root_pem: &str, certificate_pem: &str) {
    std::fs::write(dir.join("root.pem"), root_pem).unwrap();
    std::fs::write(dir.join("leaf.pem"), certificate_pem).unwrap();
    openssl(dir, &["verify", "-CAfile", "root.pem", "leaf.pem"]);
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Builds a CreateCertificate call for `csr` with a lifetime of one day.
fn create(
    client: &CertificateAuthorityService,
    certificate_id: &str,
    request_id: &str,
    csr: &Csr,
) -> google_cloud_security_privateca_v1::builder::certificate_authority_service::CreateCertificate {
    client
        .create_certificate()
        .set_parent(POOL)
        .set_certificate_id(certificate_id)
        .set_request_id(request_id)
        .set_certificate(
            Certificate::new().set_pem_csr(csr.pem.clone()).set_lifetime(google_cloud_wkt::Duration::clamp(ONE_DAY, 0)),
        )
}

#[tokio::test(flavor = "multi_thread")]
async fn create_returns_verifiable_certificate() {
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;
    let csr = Csr::new();
    let request_id = new_request_id();

    let certificate = create(&client, "ozo-1", &request_id, &csr).send().await.expect("create succeeds");

    // The SDK keeps JSON fields it does not know in `_unknown_fields`, which its Debug
    // output shows at any depth, so a misspelled field of the fake shows up here.
    assert!(!format!("{certificate:?}").contains("_unknown_fields"), "{certificate:#?}");
    let root_pem = fake.root_pem(POOL);
    assert_eq!(certificate.name, format!("{POOL}/certificates/ozo-1"));
    assert_eq!(certificate.pem_certificate_chain, vec![root_pem.clone()]);
    assert_eq!(certificate.issuer_certificate_authority, format!("{POOL}/certificateAuthorities/fake-ca"));
    assert_eq!(certificate.lifetime.as_ref().map(|lifetime| lifetime.seconds()), Some(ONE_DAY));
    assert!(certificate.create_time.is_some(), "createTime is missing");
    verify_with_openssl(csr.dir.path(), &root_pem, &certificate.pem_certificate);
    assert_eq!(certificate_public_key(csr.dir.path(), &certificate.pem_certificate), csr.public_key());

    let stored = fake.certificates(POOL);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].certificate_id, "ozo-1");
    assert_eq!(stored[0].request_id, request_id);
    assert_eq!(stored[0].pem, certificate.pem_certificate);

    let description = certificate.certificate_description.expect("certificateDescription is present");
    let subject_description = description.subject_description.expect("subjectDescription is present");
    let subject = subject_description.subject.expect("subject is present");
    assert_eq!(subject.common_name, "zorgverband.nl");
    assert_eq!(subject.organization, "OZOverbindzorg");
    assert_eq!(subject_description.hex_serial_number, stored[0].serial_hex);
    assert_eq!(subject_description.lifetime.map(|lifetime| lifetime.seconds()), Some(ONE_DAY));
    let not_before = subject_description.not_before_time.expect("notBeforeTime is present");
    let not_after = subject_description.not_after_time.expect("notAfterTime is present");
    assert_eq!(not_after.seconds() - not_before.seconds(), ONE_DAY);

    let x509 = description.x509_description.expect("x509Description is present");
    let key_usage = x509.key_usage.expect("keyUsage is present");
    assert!(key_usage.base_key_usage.expect("baseKeyUsage is present").digital_signature);
    assert!(key_usage.extended_key_usage.expect("extendedKeyUsage is present").client_auth);
    assert_eq!(x509.ca_options.expect("caOptions is present").is_ca, Some(false));

    let public_key = description.public_key.expect("publicKey is present");
    assert_eq!(public_key.format, KeyFormat::Pem);
    assert_eq!(String::from_utf8(public_key.key.to_vec()).unwrap(), csr.public_key());
    let fingerprint = description.cert_fingerprint.expect("certFingerprint is present");
    assert_eq!(fingerprint.sha256_hash.len(), 64);
    assert!(!description.subject_key_id.expect("subjectKeyId is present").key_id.is_empty());
    assert!(!description.authority_key_id.expect("authorityKeyId is present").key_id.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_sends_ids_as_query_parameters() {
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;
    let csr = Csr::new();
    let request_id = new_request_id();

    create(&client, "ozo-1", &request_id, &csr).send().await.expect("create succeeds");

    let calls = fake.create_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.pool, POOL);
    assert_eq!(call.query_value("certificateId"), Some("ozo-1"));
    assert_eq!(call.query_value("requestId"), Some(request_id.as_str()));
    assert_eq!(call.query_value("validateOnly"), Some("false"));
    assert_eq!(call.query_value("issuingCertificateAuthorityId"), Some(""));
    assert_eq!(call.query_value("$alt"), Some("json;enum-encoding=int"));
    assert_eq!(call.body["pemCsr"], csr.pem.as_str());
    assert_eq!(call.body["lifetime"], "86400s");
    assert_eq!(call.fault, None);
    assert_eq!(call.outcome, CreateOutcome::Issued { certificate_id: "ozo-1".to_owned() });
}

#[tokio::test(flavor = "multi_thread")]
async fn issuing_ca_id_names_issuer() {
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;
    let csr = Csr::new();

    let certificate = create(&client, "ozo-1", &new_request_id(), &csr)
        .set_issuing_certificate_authority_id("ozo-ca-2")
        .send()
        .await
        .expect("create succeeds");

    assert_eq!(certificate.issuer_certificate_authority, format!("{POOL}/certificateAuthorities/ozo-ca-2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn same_request_id_returns_same_certificate() {
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;
    let csr = Csr::new();
    let request_id = new_request_id();

    let first = create(&client, "ozo-1", &request_id, &csr).send().await.expect("first create succeeds");
    let second = create(&client, "ozo-1", &request_id, &csr).send().await.expect("second create succeeds");

    assert_eq!(second.pem_certificate, first.pem_certificate);
    assert_eq!(second.name, first.name);
    assert_eq!(fake.certificates(POOL).len(), 1);
    let outcomes: Vec<CreateOutcome> = fake.create_calls().into_iter().map(|call| call.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            CreateOutcome::Issued { certificate_id: "ozo-1".to_owned() },
            CreateOutcome::Replayed { certificate_id: "ozo-1".to_owned() },
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn taken_certificate_id_is_already_exists() {
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;
    let csr = Csr::new();

    create(&client, "ozo-1", &new_request_id(), &csr).send().await.expect("first create succeeds");
    let error = create(&client, "ozo-1", &new_request_id(), &csr).send().await.expect_err("second create fails");

    let status = error.status().expect("the error carries a status");
    assert_eq!(status.code, Code::AlreadyExists);
    assert_eq!(status.message, format!("Resource '{POOL}/certificates/ozo-1' already exists"));
    assert_eq!(error.http_status_code(), Some(409));
    assert_eq!(fake.certificates(POOL).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_certificate_id_gets_generated_id() {
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;
    let csr = Csr::new();

    let certificate = create(&client, "", &new_request_id(), &csr).send().await.expect("create succeeds");

    let stored = fake.certificates(POOL);
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].certificate_id.is_empty());
    assert_eq!(certificate.name, format!("{POOL}/certificates/{}", stored[0].certificate_id));
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_query_parameters_are_rejected() {
    let nil_uuid = uuid::Uuid::nil().to_string();
    let valid_uuid = new_request_id();
    // Certificate ID, request ID, issuing CA ID, and the parameter the message names.
    let cases = [
        ("ozo 1", valid_uuid.as_str(), "", "certificateId"),
        ("ozo-1", "not-a-uuid", "", "requestId"),
        ("ozo-1", nil_uuid.as_str(), "", "requestId"),
        ("ozo-1", valid_uuid.as_str(), "ozo ca", "issuingCertificateAuthorityId"),
    ];
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;
    let csr = Csr::new();
    fake.push_fault(Fault::Unavailable);

    for (certificate_id, request_id, issuing_ca_id, parameter) in cases {
        let error = create(&client, certificate_id, request_id, &csr)
            .set_issuing_certificate_authority_id(issuing_ca_id)
            .send()
            .await
            .expect_err("create fails");

        let status = error.status().unwrap_or_else(|| panic!("{parameter}: the error carries no status: {error}"));
        assert_eq!(status.code, Code::InvalidArgument, "{parameter}");
        assert!(status.message.starts_with(parameter), "{parameter}: {}", status.message);
    }
    assert!(fake.certificates(POOL).is_empty());
    let calls = fake.create_calls();
    assert!(calls.iter().all(|call| call.fault.is_none()), "a rejected query consumed the fault");
}

#[tokio::test(flavor = "multi_thread")]
async fn unparsable_csr_is_invalid_argument() {
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;

    let error = client
        .create_certificate()
        .set_parent(POOL)
        .set_certificate_id("ozo-1")
        .set_request_id(new_request_id())
        .set_certificate(Certificate::new().set_pem_csr(NOT_A_CSR))
        .send()
        .await
        .expect_err("create fails");

    let status = error.status().expect("the error carries a status");
    assert_eq!(status.code, Code::InvalidArgument);
    assert_eq!(status.message, "pemCsr is not a valid PKCS#10 CSR");
    assert_eq!(error.http_status_code(), Some(400));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_lifetime_defaults_to_30_days() {
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;
    let csr = Csr::new();

    let certificate = client
        .create_certificate()
        .set_parent(POOL)
        .set_certificate_id("ozo-1")
        .set_request_id(new_request_id())
        .set_certificate(Certificate::new().set_pem_csr(csr.pem.clone()))
        .send()
        .await
        .expect("create succeeds");

    let subject_description = certificate.certificate_description.unwrap().subject_description.unwrap();
    let not_before = subject_description.not_before_time.unwrap().seconds();
    let not_after = subject_description.not_after_time.unwrap().seconds();
    assert_eq!(not_after - not_before, 30 * ONE_DAY);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_certificate_by_name() {
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;
    let csr = Csr::new();
    let created = create(&client, "ozo-1", &new_request_id(), &csr).send().await.expect("create succeeds");

    let fetched = client.get_certificate().set_name(&created.name).send().await.expect("get succeeds");
    assert_eq!(fetched.pem_certificate, created.pem_certificate);
    assert_eq!(fetched.pem_certificate_chain, created.pem_certificate_chain);

    let error = client
        .get_certificate()
        .set_name(format!("{POOL}/certificates/unknown"))
        .send()
        .await
        .expect_err("get of an unknown certificate fails");
    assert_eq!(error.status().map(|status| status.code), Some(Code::NotFound));
    assert_eq!(error.http_status_code(), Some(404));
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_records_reason_once() {
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;
    let csr = Csr::new();
    let created = create(&client, "ozo-1", &new_request_id(), &csr).send().await.expect("create succeeds");
    let revoke_request_id = new_request_id();

    let revoked = client
        .revoke_certificate()
        .set_name(&created.name)
        .set_reason(RevocationReason::KeyCompromise)
        .set_request_id(&revoke_request_id)
        .send()
        .await
        .expect("revoke succeeds");
    assert!(!format!("{revoked:?}").contains("_unknown_fields"), "{revoked:#?}");
    assert!(revoked.update_time.is_some(), "updateTime is missing");
    let details = revoked.revocation_details.expect("revocationDetails is present");
    assert_eq!(details.revocation_state, RevocationReason::KeyCompromise);
    assert!(details.revocation_time.is_some(), "revocationTime is missing");

    let stored = fake.certificates(POOL);
    let revocation = stored[0].revocation.as_ref().expect("the fake recorded the revocation");
    assert_eq!(revocation.reason, 1);
    assert_eq!(revocation.request_id, revoke_request_id);

    let repeated = client
        .revoke_certificate()
        .set_name(&created.name)
        .set_reason(RevocationReason::KeyCompromise)
        .set_request_id(&revoke_request_id)
        .send()
        .await
        .expect("a repeat with the same request ID succeeds");
    assert_eq!(repeated.revocation_details.unwrap().revocation_time, details.revocation_time);

    let error = client
        .revoke_certificate()
        .set_name(&created.name)
        .set_reason(RevocationReason::Superseded)
        .set_request_id(new_request_id())
        .send()
        .await
        .expect_err("a second revocation fails");
    let status = error.status().expect("the error carries a status");
    assert_eq!(status.code, Code::FailedPrecondition);
    assert_eq!(status.message, format!("Certificate '{}' is already revoked", created.name));

    let fetched = client.get_certificate().set_name(&created.name).send().await.expect("get succeeds");
    let state = fetched.revocation_details.map(|details| details.revocation_state);
    assert_eq!(state, Some(RevocationReason::KeyCompromise));
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_unknown_certificate_is_not_found() {
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;

    let error = client
        .revoke_certificate()
        .set_name(format!("{POOL}/certificates/unknown"))
        .set_reason(RevocationReason::KeyCompromise)
        .set_request_id(new_request_id())
        .send()
        .await
        .expect_err("revoke fails");

    assert_eq!(error.status().map(|status| status.code), Some(Code::NotFound));
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_only_stores_nothing() {
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;
    let csr = Csr::new();
    fake.push_fault(Fault::Unavailable);

    let validated = create(&client, "ozo-1", &new_request_id(), &csr)
        .set_validate_only(true)
        .send()
        .await
        .expect("validateOnly succeeds and leaves the fault queued");

    assert!(!format!("{validated:?}").contains("_unknown_fields"), "{validated:#?}");
    assert!(validated.pem_certificate.is_empty(), "validateOnly returned a PEM certificate");
    assert!(validated.pem_certificate_chain.is_empty(), "validateOnly returned a chain");
    let subject = validated.certificate_description.and_then(|d| d.subject_description).and_then(|d| d.subject);
    assert_eq!(subject.map(|subject| subject.common_name), Some("zorgverband.nl".to_owned()));
    assert!(fake.certificates(POOL).is_empty());
    let calls = fake.create_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].outcome, CreateOutcome::Validated);
    assert_eq!(calls[0].fault, None);

    let error = create(&client, "ozo-1", &new_request_id(), &csr).send().await.expect_err("the queued fault applies");
    assert_eq!(error.status().map(|status| status.code), Some(Code::Unavailable));

    // A request ID that issued a certificate does not make validateOnly return it.
    let request_id = new_request_id();
    create(&client, "ozo-1", &request_id, &csr).send().await.expect("create succeeds");
    let validated = create(&client, "ozo-1", &request_id, &csr)
        .set_validate_only(true)
        .send()
        .await
        .expect("validateOnly succeeds");
    assert!(validated.pem_certificate.is_empty(), "validateOnly returned the earlier certificate");
    assert_eq!(fake.certificates(POOL).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn rejecting_faults_map_to_status_codes() {
    let cases = [
        (Fault::Unavailable, Code::Unavailable, 503, "The service is currently unavailable."),
        (Fault::ResourceExhausted, Code::ResourceExhausted, 429, "Quota exceeded for certificate issuance requests."),
        (Fault::InvalidArgument("the CSR is too old".to_owned()), Code::InvalidArgument, 400, "the CSR is too old"),
        (
            Fault::PermissionDenied("caller may not issue".to_owned()),
            Code::PermissionDenied,
            403,
            "caller may not issue",
        ),
    ];
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;
    let csr = Csr::new();

    for (index, (fault, code, http_status, message)) in cases.into_iter().enumerate() {
        fake.push_fault(fault.clone());
        let error = create(&client, "ozo-1", &new_request_id(), &csr).send().await.expect_err("create fails");

        let status = error.status().unwrap_or_else(|| panic!("{fault:?}: the error carries no status: {error}"));
        assert_eq!(status.code, code, "{fault:?}");
        assert_eq!(status.message, message, "{fault:?}");
        assert_eq!(error.http_status_code(), Some(http_status), "{fault:?}");
        // The SDK does not retry a POST, which is not idempotent, even on UNAVAILABLE.
        let calls = fake.create_calls();
        assert_eq!(calls.len(), index + 1, "{fault:?}: the SDK retried");
        assert_eq!(calls[index].fault.as_ref(), Some(&fault));
    }
    assert!(fake.certificates(POOL).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_always_until_cleared() {
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;
    let csr = Csr::new();
    fake.fail_always(Some(Fault::Unavailable));

    for _ in 0..2 {
        let error = create(&client, "ozo-1", &new_request_id(), &csr).send().await.expect_err("create fails");
        assert_eq!(error.status().map(|status| status.code), Some(Code::Unavailable));
    }
    fake.clear_faults();
    create(&client, "ozo-1", &new_request_id(), &csr).send().await.expect("create succeeds after clear_faults");

    assert_eq!(fake.create_calls().len(), 3);
    assert_eq!(fake.certificates(POOL).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn hang_times_out_after_issuing() {
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;
    let csr = Csr::new();
    let request_id = new_request_id();
    fake.push_fault(Fault::Hang(Duration::from_secs(30)));

    let error = create(&client, "ozo-1", &request_id, &csr)
        .with_attempt_timeout(Duration::from_millis(500))
        .send()
        .await
        .expect_err("create times out");

    assert!(error.is_timeout(), "expected a timeout, got {error:?}");
    assert!(error.status().is_none());
    assert_eq!(fake.create_calls().len(), 1, "the SDK retried");
    let stored = fake.certificates(POOL);
    assert_eq!(stored.len(), 1, "the hanging call issued the certificate");

    let retried = create(&client, "ozo-1", &request_id, &csr).send().await.expect("the retry succeeds");
    assert_eq!(retried.pem_certificate, stored[0].pem);
    assert_eq!(fake.certificates(POOL).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_after_issue_is_io_error() {
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;
    let csr = Csr::new();
    let request_id = new_request_id();
    fake.push_fault(Fault::DropAfterIssue);

    let error = create(&client, "ozo-1", &request_id, &csr).send().await.expect_err("create fails");

    assert!(error.status().is_none(), "expected no status, got {error:?}");
    assert_eq!(error.http_status_code(), None);
    assert!(!error.is_timeout());
    assert!(error.is_io(), "expected an I/O error, got {error:?}");
    assert!(!error.is_connect(), "the request reached the fake, so this is no connect error");
    assert_eq!(fake.create_calls().len(), 1, "the SDK retried");
    let stored = fake.certificates(POOL);
    assert_eq!(stored.len(), 1, "the certificate was issued before the connection dropped");

    let retried = create(&client, "ozo-1", &request_id, &csr).send().await.expect("the retry succeeds");
    assert_eq!(retried.pem_certificate, stored[0].pem);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_key_certifies_other_key() {
    let fake = FakeCas::start();
    let client = sdk_client(&fake).await;
    let csr = Csr::new();
    fake.push_fault(Fault::WrongKey);

    let certificate = create(&client, "ozo-1", &new_request_id(), &csr).send().await.expect("create succeeds");

    verify_with_openssl(csr.dir.path(), &fake.root_pem(POOL), &certificate.pem_certificate);
    assert_ne!(certificate_public_key(csr.dir.path(), &certificate.pem_certificate), csr.public_key());
    assert_eq!(fake.certificates(POOL).len(), 1);
}

#[test]
fn fake_serves_without_caller_runtime() {
    let fake = FakeCas::start();
    let root_pem = fake.root_pem(POOL);
    let body = serde_json::json!({ "pemCsr": Csr::new().pem }).to_string();
    let url = format!("{}/v1/{POOL}/certificates?certificateId=ozo-1&requestId=&validateOnly=false", fake.endpoint());

    let response =
        ozo_system_tests::curl(&["-X", "POST", "-H", "Content-Type: application/json", "--data", &body, &url]);

    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json()["pemCertificateChain"][0], root_pem.as_str());
}
