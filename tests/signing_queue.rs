//! The CA side of a request, black box. The worker signs an approval whose process
//! stopped before signing. A request whose signing failed is signed after an operator
//! retries it. Certificates are revoked through the API and the CLI.

use std::time::{Duration, Instant};

use ozo_system_tests::*;
use sha2::Digest;

async fn status_of(server: &TestServer, id: &str) -> serde_json::Value {
    curl(&[&server.url(&format!("/api/v1/requests/{id}"))]).json()
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_signs_orphaned_approval() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    server.operator_token("wim", "operator");
    let code = server.invitation(&server.inviter(), "Verpleeghuis Oost", &["staging"]);
    let work = tempfile::tempdir().unwrap();
    let (_, csr) = make_csr(work.path(), "client", STAGING_SUBJECT);

    let upload = curl(&[
        "-X",
        "POST",
        "--data-binary",
        &format!("@{}", csr.display()),
        &server.url(&format!("/api/v1/requests?environment=staging&invitation={code}")),
    ]);
    let id = upload.json()["id"].as_str().unwrap().to_owned();

    // What an approval commits when its process stops before signing: the approval with
    // its digest, the new state and the job, and nothing else.
    let pool = db.pool().await;
    let digest = approval_digest(&std::fs::read(&csr).unwrap(), 0, "local CA in data/ca/staging");
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO approvals (request_id, account_id, digest)
         SELECT $1::uuid, id, $2 FROM accounts WHERE name = 'wim'",
    )
    .bind(&id)
    .bind(digest.as_slice())
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("UPDATE requests SET status = 'approved' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO signing_jobs (request_id) VALUES ($1::uuid)").bind(&id).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = status_of(&server, &id).await;
    while status["status"] != "issued" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = status_of(&server, &id).await;
    }
    assert_eq!(status["status"], "issued", "{status}");

    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM signing_jobs").fetch_one(&pool).await.unwrap();
    assert_eq!(jobs, 0, "the finished job is gone");
    let certificates: i64 = sqlx::query_scalar("SELECT count(*) FROM certificates").fetch_one(&pool).await.unwrap();
    assert_eq!(certificates, 1);
    let issued_by: String = sqlx::query_scalar("SELECT actor FROM events WHERE kind = 'certificate.issued'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(issued_by, "signer");
    pool.close().await;

    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_csr_is_refused() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    let first = server.operator_token("xander", "operator");
    let second = server.operator_token("yvonne", "operator");
    let code = server.invitation(&server.inviter(), "Kliniek West", &["production", "staging"]);
    let work = tempfile::tempdir().unwrap();
    let pool = db.pool().await;

    // A CSR whose stored signature was changed cannot be approved at all.
    let (_, csr) = make_csr(work.path(), "broken", STAGING_SUBJECT);
    let upload_url =
        |environment: &str| server.url(&format!("/api/v1/requests?environment={environment}&invitation={code}"));
    let upload = curl(&["-X", "POST", "--data-binary", &format!("@{}", csr.display()), &upload_url("staging")]);
    let broken_id = upload.json()["id"].as_str().unwrap().to_owned();
    sqlx::query("UPDATE requests SET csr_der = set_byte(csr_der, length(csr_der) - 1, get_byte(csr_der, length(csr_der) - 1) # 1) WHERE id = $1::uuid")
        .bind(&broken_id)
        .execute(&pool)
        .await
        .unwrap();
    let refused = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("Authorization: Bearer {first}"),
        &server.url(&format!("/api/v1/requests/{broken_id}/approve")),
    ]);
    assert_eq!(refused.status, 409, "{}", refused.body);
    let detail = refused.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("the stored CSR no longer passes validation: signature"), "{detail}");

    // After the first of two production approvals, someone with database access swaps in
    // another valid CSR with its key. The second approval covers the new CSR, the first
    // the old one, so the signing step refuses.
    let (_, csr) = make_csr(work.path(), "client", PRODUCTION_SUBJECT);
    let upload = curl(&["-X", "POST", "--data-binary", &format!("@{}", csr.display()), &upload_url("production")]);
    let id = upload.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(server.approve(&[&first], &id).json()["status"], "pending");

    let (swap_key, _) = make_csr(work.path(), "swap", PRODUCTION_SUBJECT);
    openssl(
        work.path(),
        &[
            "req",
            "-new",
            "-key",
            swap_key.to_str().unwrap(),
            "-subj",
            PRODUCTION_SUBJECT,
            "-outform",
            "DER",
            "-out",
            "swap.der",
        ],
    );
    openssl(
        work.path(),
        &["pkey", "-in", swap_key.to_str().unwrap(), "-pubout", "-outform", "DER", "-out", "swap-spki.der"],
    );
    let swapped_csr = std::fs::read(work.path().join("swap.der")).unwrap();
    let swapped_spki = sha2::Sha256::digest(std::fs::read(work.path().join("swap-spki.der")).unwrap()).to_vec();
    sqlx::query("UPDATE requests SET csr_der = $2, spki_sha256 = $3 WHERE id = $1::uuid")
        .bind(&id)
        .bind(&swapped_csr)
        .bind(&swapped_spki)
        .execute(&pool)
        .await
        .unwrap();

    let request = server.approve(&[&second], &id).json();
    assert_eq!(request["status"], "failed", "{request}");
    let reason = request["status_reason"].as_str().unwrap();
    assert!(reason.starts_with("the approval by xander covers other values than the request has now"), "{reason}");
    let certificates: i64 = sqlx::query_scalar("SELECT count(*) FROM certificates").fetch_one(&pool).await.unwrap();
    assert_eq!(certificates, 0, "nothing was signed");

    // A retry fails again: the approvals no longer agree on what was approved.
    let auth = format!("Authorization: Bearer {first}");
    let again = curl(&["-X", "POST", "-H", &auth, &server.url(&format!("/api/v1/requests/{id}/retry"))]);
    assert_eq!(again.json()["status"], "failed", "{}", again.body);

    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM events WHERE request_id = $1::uuid ORDER BY id")
        .bind(&id)
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        kinds,
        [
            "request.received",
            "request.approval_recorded",
            "request.approval_recorded",
            "request.approved",
            "signing.failed",
            "signing.retried",
            "signing.failed",
        ]
    );
    pool.close().await;

    drop(server);
    db.drop_database().await;
}

/// Computes the digest the service records for an approval of `csr` with the built-in lifetime.
fn approval_digest(csr: &[u8], environment: usize, ca: &str) -> [u8; 32] {
    let environments = ozo_domain::Environment::builtin();
    let ozo_domain::Verdict::Accepted(verified) = ozo_domain::validate(csr, &environments[environment], &environments)
    else {
        panic!("the CSR passes validation");
    };
    ozo_domain::ApprovalSubject {
        csr: &verified,
        environment: environments[environment].name.as_str(),
        ca,
        lifetime_seconds: 365 * 86400,
        policy_version: ozo_domain::POLICY_VERSION,
    }
    .digest()
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_by_api_and_cli() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    let token = server.operator_token("yara", "operator");
    let second = server.operator_token("zeno", "operator");
    let code = server.invitation(&server.inviter(), "Thuiszorg Noord", &["staging", "production"]);
    let work = tempfile::tempdir().unwrap();
    let auth = format!("Authorization: Bearer {token}");

    let mut ids = Vec::new();
    for (environment, subject) in [("production", PRODUCTION_SUBJECT), ("staging", STAGING_SUBJECT)] {
        let (_, csr) = make_csr(work.path(), environment, subject);
        let upload = curl(&[
            "-X",
            "POST",
            "--data-binary",
            &format!("@{}", csr.display()),
            &server.url(&format!("/api/v1/requests?environment={environment}&invitation={code}")),
        ]);
        let id = upload.json()["id"].as_str().unwrap().to_owned();
        let approvers: &[&str] = if environment == "production" { &[&token, &second] } else { &[&token] };
        assert_eq!(server.approve(approvers, &id).json()["status"], "issued");
        ids.push((id, upload.json()["status_page_url"].as_str().unwrap().to_owned()));
    }
    let (production_id, production_status_page) = &ids[0];

    let revoke = |id: &str, reason: &str| {
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
    let unknown = revoke(production_id, "certificateHold");
    assert_eq!(unknown.status, 400);
    assert!(unknown.json()["detail"].as_str().unwrap().contains("keyCompromise"), "{}", unknown.body);

    let revoked = revoke(production_id, "keyCompromise");
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(revoked.json()["status"], "revoked");
    assert_eq!(revoked.json()["certificate"]["revocation_reason"], "keyCompromise");
    let serial = revoked.json()["certificate"]["serial_hex"].as_str().unwrap().to_owned();

    // The local CA keeps its own record of the revocation.
    let record = std::fs::read_to_string(server.dir.path().join("data/ca/production/revocations.tsv")).unwrap();
    assert!(record.starts_with(&format!("{serial}\tkeyCompromise\t")), "{record}");

    let again = revoke(production_id, "superseded");
    assert_eq!(again.status, 409);
    assert_eq!(again.json()["current_status"], "revoked");

    let status_page = curl(&[&server.url(production_status_page)]);
    assert!(status_page.body.contains("Stop using this certificate"), "{}", status_page.body);

    // The command line revokes on behalf of a named operator.
    let (staging_id, _) = &ids[1];
    let cli = server.command(&["revoke", staging_id, "--reason", "superseded", "--operator", "yara"], "");
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let pool = db.pool().await;
    let (actor, detail): (String, serde_json::Value) =
        sqlx::query_as("SELECT actor, detail FROM events WHERE kind = 'certificate.revoked' AND request_id = $1::uuid")
            .bind(staging_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(actor, "account:yara");
    assert_eq!(detail["reason"], "superseded");
    assert_eq!(detail["reason_code"], 4);
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert!(stdout.contains("the running service now asks the CA"), "{stdout}");

    // The command only records the decision; the service's worker calls the CA.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut confirmed: Option<time::OffsetDateTime> = None;
    while confirmed.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        confirmed = sqlx::query_scalar("SELECT ca_revoked_at FROM certificates WHERE request_id = $1::uuid")
            .bind(staging_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    }
    assert!(confirmed.is_some(), "the worker did not confirm the revocation at the CA");
    let staging_serial: String = sqlx::query_scalar("SELECT serial_hex FROM certificates WHERE request_id = $1::uuid")
        .bind(staging_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let record = std::fs::read_to_string(server.dir.path().join("data/ca/staging/revocations.tsv")).unwrap();
    assert!(record.starts_with(&format!("{staging_serial}\tsuperseded\t")), "{record}");
    pool.close().await;

    let unknown_operator =
        server.command(&["revoke", staging_id, "--reason", "superseded", "--operator", "nobody"], "");
    assert!(!unknown_operator.status.success());
    assert!(String::from_utf8_lossy(&unknown_operator.stderr).contains("no account named \"nobody\""));

    drop(server);
    db.drop_database().await;
}
