use std::num::NonZeroU32;
use std::time::Duration;

use ozo_ca::{CasClients, CasCredentials, CasSettings, GoogleCas, LocalCa, Signer};

fn settings(pool: &str, endpoint: &str, root_pem: &str) -> CasSettings {
    CasSettings {
        project: "ozo-test".to_owned(),
        location: "europe-west4".to_owned(),
        ca_pool: pool.to_owned(),
        issuing_ca: None,
        certificate_template: None,
        root_pem: root_pem.to_owned(),
        credentials: CasCredentials::Anonymous,
        // Nothing listens here, and building a client sends nothing.
        endpoint: Some(endpoint.to_owned()),
        requests_per_second: NonZeroU32::new(5).unwrap(),
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn pools_share_one_client_per_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let root = LocalCa::open_or_create(&dir.path().join("root"), "test root", "OZOverbindzorg").unwrap();
    let root_pem = root.ca_certificate_pem();
    let mut clients = CasClients::default();

    let staging = GoogleCas::connect(settings("staging", "http://127.0.0.1:9", root_pem), &mut clients).await.unwrap();
    let production =
        GoogleCas::connect(settings("production", "http://127.0.0.1:9", root_pem), &mut clients).await.unwrap();
    assert_eq!(clients.len(), 1, "two pools behind one endpoint share a client");
    assert_eq!(staging.describe(), "Google CAS pool projects/ozo-test/locations/europe-west4/caPools/staging");
    assert_eq!(production.ca_certificate_pem(), root_pem);

    GoogleCas::connect(settings("other", "http://127.0.0.1:10", root_pem), &mut clients).await.unwrap();
    assert_eq!(clients.len(), 2, "another endpoint gets its own client");
}

#[tokio::test]
async fn connect_rejects_invalid_pinned_root() {
    let mut clients = CasClients::default();
    let error = GoogleCas::connect(settings("staging", "http://127.0.0.1:9", "not a certificate"), &mut clients)
        .await
        .err()
        .expect("a root that is not PEM is rejected");
    assert!(error.to_string().contains("pinned root certificate"), "{error}");
    assert!(clients.is_empty());
}
