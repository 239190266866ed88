//! Signing through Google CA Service, black box: the built ozo-signer talks through
//! Google's SDK to the fake CAS of `src/fake_cas.rs` on 127.0.0.1, with the endpoint and
//! anonymous credentials set in its config. Each fault ends with the request issued and
//! exactly one certificate at the CA, or failed with the CA's message.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ozo_system_tests::cas::*;
use ozo_system_tests::fake_cas::{CreateOutcome, Fault};
use ozo_system_tests::*;
use rand::Rng;


/// Uploads and approves `count` requests through `servers` in turn while CAS responds
/// 503, so that each ends approved with a signing job, and returns their ids.
fn approve_while_cas_is_down(
    cas: &Cas,
    servers: &[&TestServer],
    token: &str,
    work: &Path,
    count: usize,
) -> Vec<String> {
    cas.fake.fail_always(Some(Fault::Unavailable));
    let mut ids = Vec::new();
    for index in 0..count {
        let server = servers[index % servers.len()];
        let id = upload(server, work, &format!("client-{index}"));
        assert_eq!(approve(server, token, &id)["status"], "approved");
        ids.push(id);
    }
    ids
}

async fn stored_certificates(pool: &sqlx::PgPool) -> HashMap<String, (String, Option<String>)> {
    let rows: Vec<(uuid::Uuid, String, Option<String>)> =
        sqlx::query_as("SELECT request_id, serial_hex, ca_certificate_name FROM certificates")
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter().map(|(id, serial, name)| (id.to_string(), (serial, name))).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn cas_faults_issue_once_or_fail() {
    let db = TestDb::create().await;
    let cas = Cas::start(2, "anonymous");
    let server = cas.server(&db);
    let token = server.operator_token("ria", "operator");
    let work = tempfile::tempdir().unwrap();
    let pool = db.pool().await;

    let denied = "Permission 'privateca.certificates.create' denied on resource 'ozo-clients-staging'";
    let invalid = "Request violates the CA pool's issuance policy: subject.organization is not allowed";
    let cases: Vec<(&str, Vec<Fault>, Option<&str>)> = vec![
        ("no fault", vec![], None),
        ("503 twice", vec![Fault::Unavailable, Fault::Unavailable], None),
        ("429", vec![Fault::ResourceExhausted], None),
        ("hang past the timeout", vec![Fault::Hang(Duration::from_secs(5))], None),
        ("dropped after issuing", vec![Fault::DropAfterIssue], None),
        ("400", vec![Fault::InvalidArgument(invalid.to_owned())], Some(invalid)),
        ("403", vec![Fault::PermissionDenied(denied.to_owned())], Some(denied)),
    ];

    for (index, (case, faults, cas_message)) in cases.into_iter().enumerate() {
        for fault in faults {
            cas.fake.push_fault(fault);
        }
        let id = upload(&server, work.path(), &format!("client-{index}"));
        approve(&server, &token, &id);
        let request = wait_for(&server, &id, &["issued", "failed"], Duration::from_secs(60)).await;

        let expected_id = certificate_id(&id, 1);
        let at_cas = cas.staging_certificates();
        let stored = stored_certificates(&pool).await;
        match cas_message {
            None => {
                assert_eq!(request["status"], "issued", "{case}: {request}");
                let issued = at_cas.get(&expected_id).unwrap_or_else(|| panic!("{case}: CAS holds no {expected_id}"));
                let (serial, name) = &stored[&id];
                assert_eq!(serial, &issued.serial_hex, "{case}: the recorded certificate is the one CAS issued");
                assert_eq!(name.as_deref(), Some(issued.name.as_str()), "{case}");

                // Every call for this request carried the same derived requestId.
                let calls: Vec<_> = cas
                    .fake
                    .create_calls()
                    .into_iter()
                    .filter(|call| call.query_value("certificateId") == Some(expected_id.as_str()))
                    .collect();
                let request_ids: HashSet<_> =
                    calls.iter().map(|call| call.query_value("requestId").unwrap().to_owned()).collect();
                assert_eq!(request_ids.len(), 1, "{case}: {request_ids:?}");
                assert_eq!(request_ids.into_iter().next().unwrap(), issued.request_id, "{case}");
                let issuing_calls =
                    calls.iter().filter(|call| matches!(call.outcome, CreateOutcome::Issued { .. })).count();
                assert_eq!(issuing_calls, 1, "{case}: CAS issued once over {} calls", calls.len());
            }
            Some(message) => {
                assert_eq!(request["status"], "failed", "{case}: {request}");
                let reason = request["status_reason"].as_str().unwrap_or_default();
                assert!(reason.contains(message), "{case}: the operator sees the CAS message, got {reason:?}");
                assert!(!at_cas.contains_key(&expected_id), "{case}");
                assert!(!stored.contains_key(&id), "{case}");
            }
        }
    }

    // Seven requests, five issued, each exactly once.
    assert_eq!(cas.staging_certificates().len(), 5);
    assert_eq!(stored_certificates(&pool).await.len(), 5);

    pool.close().await;
    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_key_certificate_never_recorded() {
    let db = TestDb::create().await;
    let cas = Cas::start(5, "anonymous");
    let server = cas.server(&db);
    let token = server.operator_token("sem", "operator");
    let work = tempfile::tempdir().unwrap();
    let pool = db.pool().await;

    cas.fake.push_fault(Fault::WrongKey);
    let id = upload(&server, work.path(), "client");
    let request = approve(&server, &token, &id);

    assert_eq!(request["status"], "failed", "{request}");
    let reason = request["status_reason"].as_str().unwrap();
    assert!(reason.contains("another public key"), "{reason}");
    let wrong = &cas.staging_certificates()[&certificate_id(&id, 1)];
    let revocation = wrong.revocation.as_ref().expect("the rejected certificate is revoked at CAS");
    assert_eq!(revocation.reason, 4, "superseded is CAS reason 4");
    assert!(stored_certificates(&pool).await.is_empty(), "the wrong certificate is not recorded");
    let download = curl(&[&server.url(&format!("/api/v1/requests/{id}/certificate"))]);
    assert_ne!(download.status, 200, "{}", download.body);
    let rejected: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE kind = 'certificate.rejected'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rejected, 1);
    let log = server.log_lines().join("\n");
    assert!(log.contains("ERROR"), "{log}");
    assert!(log.contains("fails our checks"), "{log}");

    // The operator's retry requests a new certificate from CAS instead of the rejected one.
    let auth = format!("Authorization: Bearer {token}");
    let retried = curl(&["-X", "POST", "-H", &auth, &server.url(&format!("/api/v1/requests/{id}/retry"))]);
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(retried.json()["status"], "issued", "{}", retried.body);
    assert_eq!(retried.json()["status_reason"], serde_json::Value::Null, "the failure's reason is cleared");

    let second = &cas.staging_certificates()[&certificate_id(&id, 2)];
    assert_eq!(stored_certificates(&pool).await[&id].0, second.serial_hex);
    let certificate = work.path().join("client.pem");
    let download =
        curl(&["-o", certificate.to_str().unwrap(), &server.url(&format!("/api/v1/requests/{id}/certificate"))]);
    assert_eq!(download.status, 200);
    std::fs::write(work.path().join("root.pem"), cas.fake.root_pem(STAGING_POOL)).unwrap();
    openssl(work.path(), &["verify", "-CAfile", "root.pem", "client.pem"]);
    let certified = openssl(work.path(), &["x509", "-in", "client.pem", "-noout", "-pubkey"]).stdout;
    let requested = openssl(work.path(), &["pkey", "-in", "client-key.pem", "-pubout"]).stdout;
    assert_eq!(certified, requested, "the recorded certificate certifies the client's key");

    pool.close().await;
    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_while_signing_issues_once() {
    const REQUESTS: usize = 50;
    let db = TestDb::create().await;
    let cas = Cas::start(5, "anonymous");
    let mut server = cas.server(&db);
    let token = server.operator_token("tom", "operator");
    let work = tempfile::tempdir().unwrap();
    let pool = db.pool().await;

    // Approvals while CAS is down leave 50 approved requests with their signing jobs.
    let ids = approve_while_cas_is_down(&cas, &[&server], &token, work.path(), REQUESTS);

    // CAS comes back, slowly: each call issues, then takes 100 ms to respond, so a kill
    // often lands between CAS issuing and ozo-signer recording.
    cas.fake.fail_always(Some(Fault::Hang(Duration::from_millis(100))));
    let mut kills = Vec::new();
    for _ in 0..5 {
        let after = Duration::from_millis(rand::thread_rng().gen_range(200..1500));
        tokio::time::sleep(after).await;
        drop(server); // SIGKILL
        kills.push(after);
        server = cas.server(&db);
    }

    for id in &ids {
        wait_for(&server, id, &["issued"], Duration::from_secs(120)).await;
    }
    let at_cas = cas.staging_certificates();
    let stored = stored_certificates(&pool).await;
    assert_eq!(at_cas.len(), REQUESTS, "kills after {kills:?}");
    assert_eq!(stored.len(), REQUESTS, "kills after {kills:?}");
    for id in &ids {
        assert_eq!(stored[id].0, at_cas[&certificate_id(id, 1)].serial_hex, "request {id}");
    }
    let replayed =
        cas.fake.create_calls().iter().filter(|call| matches!(call.outcome, CreateOutcome::Replayed { .. })).count();
    eprintln!("kills after {kills:?}; CAS replayed {replayed} calls whose first response was lost");

    pool.close().await;
    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_issue_once() {
    const REQUESTS: usize = 20;
    let db = TestDb::create().await;
    let cas = Cas::start(5, "anonymous");
    let first = cas.server(&db);
    let second = cas.server(&db);
    let token = first.operator_token("uma", "operator");
    let work = tempfile::tempdir().unwrap();
    let pool = db.pool().await;

    let ids = approve_while_cas_is_down(&cas, &[&first, &second], &token, work.path(), REQUESTS);
    cas.fake.fail_always(Some(Fault::Hang(Duration::from_millis(50))));

    for id in &ids {
        wait_for(&first, id, &["issued"], Duration::from_secs(120)).await;
    }
    let at_cas = cas.staging_certificates();
    assert_eq!(at_cas.len(), REQUESTS);
    assert_eq!(stored_certificates(&pool).await.len(), REQUESTS);
    let issuing_calls =
        cas.fake.create_calls().iter().filter(|call| matches!(call.outcome, CreateOutcome::Issued { .. })).count();
    assert_eq!(issuing_calls, REQUESTS, "CAS issued each request once");
    let signers: Vec<String> = sqlx::query_scalar("SELECT actor FROM events WHERE kind = 'certificate.issued'")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(signers.len(), REQUESTS);

    pool.close().await;
    drop((first, second));
    db.drop_database().await;
}

/// Starts a stand-in metadata server on 127.0.0.1 that counts connections and closes each at once.
fn metadata_stand_in() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (address, connections)
}

#[tokio::test(flavor = "multi_thread")]
async fn test_config_skips_metadata_server() {
    // The SDK goes to GCE_METADATA_HOST when it looks for application default
    // credentials on what may be Google Cloud.
    let (metadata_host, connections) = metadata_stand_in();
    let home = tempfile::tempdir().unwrap();
    let env = [("GCE_METADATA_HOST", metadata_host.as_str()), ("HOME", home.path().to_str().unwrap())];

    let db = TestDb::create().await;
    let cas = Cas::start(5, "anonymous");
    let server = TestServer::start_with_env(&db.url, Some(&cas.config), &env);
    let token = server.operator_token("vera", "operator");
    let work = tempfile::tempdir().unwrap();
    let id = upload(&server, work.path(), "client");
    assert_eq!(approve(&server, &token, &id)["status"], "issued");
    let preview = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &server.url(&format!("/api/v1/requests/{id}/preview")),
    ]);
    assert_eq!(preview.status, 409, "an issued request has nothing to preview: {}", preview.body);
    drop(server);
    assert_eq!(connections.load(Ordering::SeqCst), 0, "the test configuration contacted the metadata server");

    // The control: with application default credentials the same binary does go to the
    // stand-in, so the count above would have seen it.
    let adc = Cas::start(5, "application-default");
    let config = work.path().join("adc.toml");
    std::fs::write(&config, &adc.config).unwrap();
    let mut child = std::process::Command::new(binary())
        .args(["--config", config.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
        .current_dir(work.path())
        .env("DATABASE_URL", &db.url)
        .envs(env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while connections.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(connections.load(Ordering::SeqCst) >= 1, "application default credentials should have asked the stand-in");
    assert!(adc.staging_certificates().is_empty());

    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_and_revocation_use_cas() {
    let db = TestDb::create().await;
    let cas = Cas::start(5, "anonymous");
    let server = cas.server(&db);
    let token = server.operator_token("wout", "operator");
    let auth = format!("Authorization: Bearer {token}");
    let work = tempfile::tempdir().unwrap();
    let id = upload(&server, work.path(), "client");

    let preview = curl(&["-H", &auth, &server.url(&format!("/api/v1/requests/{id}/preview"))]);
    assert_eq!(preview.status, 200, "{}", preview.body);
    let preview = preview.json();
    assert_eq!(preview["supported"], true, "{preview}");
    assert_eq!(preview["subject"], "CN=connect.zorgverband.nl, O=OZOverbindzorg");
    assert_eq!(preview["extended_key_usages"], serde_json::json!(["clientAuth"]));
    assert_eq!(preview["key_usages"], serde_json::json!(["digitalSignature"]));
    assert_eq!(preview["is_ca"], false);
    let calls = cas.fake.create_calls();
    assert_eq!(calls.len(), 1);
    assert!(matches!(calls[0].outcome, CreateOutcome::Validated), "{:?}", calls[0].outcome);
    assert_eq!(calls[0].query_value("validateOnly"), Some("true"));
    assert!(cas.staging_certificates().is_empty(), "a preview issues nothing");
    let anonymous = curl(&[&server.url(&format!("/api/v1/requests/{id}/preview"))]);
    assert_eq!(anonymous.status, 401);

    assert_eq!(approve(&server, &token, &id)["status"], "issued");
    let pool = db.pool().await;
    let revoke = |reason: &str| {
        curl(&[
            "-X",
            "POST",
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "--data",
            &serde_json::json!({ "reason": reason }).to_string(),
            &server.url(&format!("/api/v1/requests/{id}/revoke")),
        ])
    };
    // CAS is down: the revocation is recorded at once, and its job waits for CAS.
    cas.fake.revocations_unavailable(true);
    let revoked = revoke("keyCompromise");
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(revoked.json()["status"], "revoked");
    assert!(cas.staging_certificates()[&certificate_id(&id, 1)].revocation.is_none());
    let waiting: Option<String> = sqlx::query_scalar("SELECT action FROM signing_jobs WHERE request_id = $1::uuid")
        .bind(&id)
        .fetch_optional(&pool)
        .await
        .unwrap();
    assert_eq!(waiting.as_deref(), Some("revoke"));
    assert_eq!(revoke("keyCompromise").status, 409);

    // CAS is back: the worker revokes there and records the confirmation.
    cas.fake.revocations_unavailable(false);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut confirmed: Option<time::OffsetDateTime> = None;
    while confirmed.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        confirmed = sqlx::query_scalar("SELECT ca_revoked_at FROM certificates WHERE request_id = $1::uuid")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    }
    assert!(confirmed.is_some(), "the CA revocation was not confirmed");
    let at_cas = &cas.staging_certificates()[&certificate_id(&id, 1)];
    let revocation = at_cas.revocation.as_ref().expect("CAS revoked the certificate");
    assert_eq!(revocation.reason, 1, "keyCompromise is CAS reason 1");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM signing_jobs").fetch_one(&pool).await.unwrap();
    assert_eq!(jobs, 0);
    pool.close().await;

    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_queues_a_burst() {
    const REQUESTS: usize = 6;
    const PER_SECOND: u32 = 2;
    let db = TestDb::create().await;
    let cas = Cas::start_with_rate(5, "anonymous", PER_SECOND);
    let server = cas.server(&db);
    let token = server.operator_token("xena", "operator");
    let work = tempfile::tempdir().unwrap();

    // Requests approved while CAS is down, then released together: a burst.
    let ids = approve_while_cas_is_down(&cas, &[&server], &token, work.path(), REQUESTS);
    let failed_calls = cas.fake.create_calls().len();
    cas.fake.clear_faults();
    for id in &ids {
        wait_for(&server, id, &["issued"], Duration::from_secs(60)).await;
    }

    // Every request is issued, and the calls of the burst are spaced by the limit: the
    // limiter lets PER_SECOND calls through at once and one more every 1/PER_SECOND s.
    let burst: Vec<_> = cas.fake.create_calls().into_iter().skip(failed_calls).collect();
    assert_eq!(burst.len(), REQUESTS);
    let spread = burst.last().unwrap().received - burst.first().unwrap().received;
    let minimum = Duration::from_secs_f64((REQUESTS - PER_SECOND as usize) as f64 / f64::from(PER_SECOND));
    assert!(spread >= minimum.mul_f64(0.9), "{REQUESTS} calls within {spread:?}, less than {minimum:?}");
    assert_eq!(cas.staging_certificates().len(), REQUESTS);

    drop(server);
    db.drop_database().await;
}
