//! A fake CAS with a config whose environments both sign there, and the steps of a
//! request that the CAS tests share.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::fake_cas::{FakeCas, FakeCertificate};
use crate::{curl, make_csr, TestDb, TestServer, STAGING_SUBJECT};

pub const STAGING_POOL: &str = "projects/ozo-test/locations/europe-west4/caPools/ozo-clients-staging";
pub const PRODUCTION_POOL: &str = "projects/ozo-test/locations/europe-west4/caPools/ozo-clients-production";

/// The fake CAS and a config whose environments both sign there.
pub struct Cas {
    pub fake: FakeCas,
    /// The directory of the pinned root files.
    _roots: TempDir,
    pub config: String,
}

impl Cas {
    /// `staging_credentials` is the TOML value of the staging pool's `credentials` key.
    pub fn start(timeout_seconds: u64, staging_credentials: &str) -> Cas {
        Cas::start_with_rate(timeout_seconds, staging_credentials, 50)
    }

    pub fn start_with_rate(timeout_seconds: u64, staging_credentials: &str, requests_per_second: u32) -> Cas {
        let fake = FakeCas::start();
        let dir = tempfile::tempdir().unwrap();
        let staging_root = dir.path().join("staging-root.pem");
        let production_root = dir.path().join("production-root.pem");
        std::fs::write(&staging_root, fake.root_pem(STAGING_POOL)).unwrap();
        std::fs::write(&production_root, fake.root_pem(PRODUCTION_POOL)).unwrap();
        let endpoint = fake.endpoint();

        let pool = |name: &str, root: &Path, credentials: &str| {
            format!(
                r#"backend = "google-cas"
project = "ozo-test"
location = "europe-west4"
ca_pool = "ozo-clients-{name}"
root_certificate = "{root}"
credentials = "{credentials}"
endpoint = "{endpoint}"
timeout_seconds = {timeout_seconds}
requests_per_second = {requests_per_second}
"#,
                root = root.display()
            )
        };
        let config = format!(
            r#"
[rate_limits]
uploads_per_address_per_10_minutes = 1000
uploads_per_invitation_per_10_minutes = 1000
status_pages_per_address_per_minute = 10000

[environments.staging]
common_name = "connect.zorgverband.nl"
organization = "OZOverbindzorg"
certificate_lifetime_days = 30
allow_uploads_without_invitation = true

[environments.staging.ca]
{staging}
[environments.production]
common_name = "zorgverband.nl"
organization = "OZOverbindzorg"
certificate_lifetime_days = 30

[environments.production.ca]
{production}"#,
            staging = pool("staging", &staging_root, staging_credentials),
            production = pool("production", &production_root, "anonymous"),
        );
        Cas { fake, _roots: dir, config }
    }

    pub fn server(&self, db: &TestDb) -> TestServer {
        TestServer::start_with_config(&db.url, Some(&self.config))
    }

    /// Returns the fake's certificates of the staging pool, by certificate id.
    pub fn staging_certificates(&self) -> HashMap<String, FakeCertificate> {
        self.fake.certificates(STAGING_POOL).into_iter().map(|c| (c.certificate_id.clone(), c)).collect()
    }
}

/// Derives the CAS certificate id that ozo-signer uses for a request's signing round.
pub fn certificate_id(request_id: &str, round: u32) -> String {
    format!("ozo-{}-{round}", request_id.replace('-', ""))
}

/// Uploads a new staging CSR without an invitation and returns the request id.
pub fn upload(server: &TestServer, work: &Path, name: &str) -> String {
    let (_, csr) = make_csr(work, name, STAGING_SUBJECT);
    let url =
        server.url("/api/v1/requests?environment=staging&organisation=Zorggroep%20Test&contact=it%40zorggroep.example");
    let uploaded = curl(&["-X", "POST", "--data-binary", &format!("@{}", csr.display()), &url]);
    assert_eq!(uploaded.status, 201, "{}", uploaded.body);
    uploaded.json()["id"].as_str().unwrap().to_owned()
}

pub fn approve(server: &TestServer, token: &str, id: &str) -> serde_json::Value {
    let auth = format!("Authorization: Bearer {token}");
    let approved = curl(&["-X", "POST", "-H", &auth, &server.url(&format!("/api/v1/requests/{id}/approve"))]);
    assert_eq!(approved.status, 200, "{}", approved.body);
    approved.json()
}

/// Polls the request until its status is one of `expected_statuses`.
pub async fn wait_for(server: &TestServer, id: &str, expected_statuses: &[&str], limit: Duration) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let request = curl(&[&server.url(&format!("/api/v1/requests/{id}"))]).json();
        if expected_statuses.iter().any(|status| request["status"] == *status) {
            return request;
        }
        assert!(Instant::now() < deadline, "request {id} did not become {expected_statuses:?} in {limit:?}: {request}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
