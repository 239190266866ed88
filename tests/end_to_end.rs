//! The whole job, black box: OpenSSL makes the key and CSR, curl uploads it, an operator
//! approves it through the API, the certificate verifies against its environment's CA
//! and works in a real mutual-TLS handshake, and only there.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use ozo_system_tests::*;

struct TlsServer {
    child: Child,
    port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `openssl s_server` on 127.0.0.1, requiring a client certificate that chains
/// to `client_ca`.
fn start_tls_server(dir: &Path, client_ca: &Path) -> TlsServer {
    let port = free_port();
    let mut child = Command::new("openssl")
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-cert", "server-cert.pem", "-key", "server-key.pem"])
        .arg("-CAfile")
        .arg(client_ca)
        .args(["-Verify", "1", "-verify_return_error", "-www"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("ACCEPT") => break,
            Some(Ok(_)) => continue,
            _ => panic!("openssl s_server did not start"),
        }
    }
    // Keep draining its output so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    TlsServer { child, port }
}

/// Connects with curl and a client certificate; returns whether the request succeeded.
fn mtls_request(dir: &Path, server: &TlsServer, cert: &str, key: &str) -> bool {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", "server-cert.pem", "--cert", cert, "--key", key])
        .arg(format!("https://127.0.0.1:{}/", server.port))
        .current_dir(dir)
        .output()
        .unwrap();
    output.status.success() && String::from_utf8_lossy(&output.stdout).contains("s_server")
}

#[tokio::test(flavor = "multi_thread")]
async fn issuance_works_in_mtls_only_for_its_environment() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    let token = server.operator_token("alice", "operator");
    let second = server.operator_token("bram", "operator");
    let code = server.invitation(&server.inviter(), "Zorginstelling De Linde", &["staging", "production"]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    for (environment, subject) in [("staging", STAGING_SUBJECT), ("production", PRODUCTION_SUBJECT)] {
        let (_key, csr) = make_csr(dir, &format!("{environment}-client"), subject);

        let upload = curl(&[
            "-X", "POST", "--data-binary", &format!("@{}", csr.display()),
            &server.url(&format!("/api/v1/requests?environment={environment}&invitation={code}")),
        ]);
        assert_eq!(upload.status, 201, "{environment} upload: {}", upload.body);
        let request = upload.json();
        assert_eq!(request["status"], "pending");
        assert_eq!(request["environment"], environment);
        assert_eq!(request["organisation"], "Zorginstelling De Linde");
        assert_eq!(request["unverified"], false);
        assert!(request["status_page_url"].as_str().unwrap().starts_with("/status/"));
        let id = request["id"].as_str().unwrap().to_owned();

        let early = curl(&[&server.url(&format!("/api/v1/requests/{id}/certificate"))]);
        assert_eq!(early.status, 409, "certificate before approval: {}", early.body);

        // Staging needs one operator's approval, production two different operators'.
        let first = server.approve(&[&token], &id);
        let approved = if environment == "production" {
            assert_eq!(first.json()["status"], "pending", "{}", first.body);
            assert_eq!(first.json()["approvals"], 1);
            assert_eq!(first.json()["approvals_required"], 2);
            let again = curl(&["-X", "POST", "-H", &format!("Authorization: Bearer {token}"), &server.url(&format!("/api/v1/requests/{id}/approve"))]);
            assert_eq!(again.status, 403, "one operator cannot approve twice: {}", again.body);
            server.approve(&[&second], &id)
        } else {
            first
        };
        assert_eq!(approved.json()["status"], "issued", "{}", approved.body);

        let status = curl(&[&server.url(&format!("/api/v1/requests/{id}"))]);
        assert_eq!(status.json()["status"], "issued");

        let certificate = curl(&[
            "-o", &dir.join(format!("{environment}-client-cert.pem")).display().to_string(),
            &server.url(&format!("/api/v1/requests/{id}/certificate")),
        ]);
        assert_eq!(certificate.status, 200);
        let ca = curl(&[
            "-o", &dir.join(format!("{environment}-ca.pem")).display().to_string(),
            &server.url(&format!("/api/v1/environments/{environment}/ca.pem")),
        ]);
        assert_eq!(ca.status, 200);

        let verified = openssl(dir, &["verify", "-CAfile", &format!("{environment}-ca.pem"), &format!("{environment}-client-cert.pem")]);
        assert!(String::from_utf8_lossy(&verified.stdout).contains(": OK"));

        // The subject is the CSR's, CN first, and the certificate is for client authentication.
        let text = openssl(dir, &["x509", "-in", &format!("{environment}-client-cert.pem"), "-noout", "-subject", "-ext", "extendedKeyUsage,basicConstraints,keyUsage"]);
        let text = String::from_utf8_lossy(&text.stdout);
        let expected_subject = subject.trim_start_matches('/').replace('/', ", ").replace('=', " = ");
        assert!(text.contains(&format!("subject={expected_subject}")), "{text}");
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        assert!(text.contains("CA:FALSE"), "{text}");
        assert!(text.contains("Digital Signature"), "{text}");
    }

    // The other environment's CA does not verify a certificate.
    let cross = Command::new("openssl")
        .args(["verify", "-CAfile", "production-ca.pem", "staging-client-cert.pem"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!cross.status.success(), "a staging certificate verified against the production CA");

    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "server-key.pem", "-out", "server-cert.pem", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
    );

    let staging_server = start_tls_server(dir, &dir.join("staging-ca.pem"));
    assert!(mtls_request(dir, &staging_server, "staging-client-cert.pem", "staging-client-key.pem"), "staging certificate rejected by the staging server");
    assert!(!mtls_request(dir, &staging_server, "production-client-cert.pem", "production-client-key.pem"), "production certificate accepted by the staging server");
    let without = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", "server-cert.pem"])
        .arg(format!("https://127.0.0.1:{}/", staging_server.port))
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!without.status.success(), "the staging server accepted a client without a certificate");

    let production_server = start_tls_server(dir, &dir.join("production-ca.pem"));
    assert!(mtls_request(dir, &production_server, "production-client-cert.pem", "production-client-key.pem"), "production certificate rejected by the production server");
    assert!(!mtls_request(dir, &production_server, "staging-client-cert.pem", "staging-client-key.pem"), "staging certificate accepted by the production server");

    // Every transition left an event.
    let pool = db.pool().await;
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM events ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(
        kinds,
        [
            "invitation.created",
            "request.received", "request.approval_recorded", "request.approved", "certificate.issued",
            "request.received", "request.approval_recorded", "request.approval_recorded", "request.approved", "certificate.issued",
        ]
    );
    let certificates: i64 = sqlx::query_scalar("SELECT count(*) FROM certificates").fetch_one(&pool).await.unwrap();
    assert_eq!(certificates, 2);
    pool.close().await;

    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn private_key_upload_leaves_no_trace() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    server.operator_token("olga", "operator");
    let code = server.invitation(&server.inviter(), "Lekkage BV", &["staging"]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    let (key, csr) = make_csr(dir, "leaky", STAGING_SUBJECT);
    let mut upload = std::fs::read(&csr).unwrap();
    upload.extend(std::fs::read(&key).unwrap());
    std::fs::write(dir.join("upload.txt"), &upload).unwrap();

    let response = curl(&[
        "-X", "POST", "--data-binary", &format!("@{}", dir.join("upload.txt").display()),
        &server.url(&format!("/api/v1/requests?environment=staging&invitation={code}")),
    ]);
    assert_eq!(response.status, 422, "{}", response.body);
    let problem = response.json();
    assert_eq!(problem["reason"], "private-key");
    assert!(problem["findings"][0]["message"].as_str().unwrap().contains("compromised"), "{}", response.body);

    // The rejection is recorded, without the CSR and without the key.
    let pool = db.pool().await;
    let (status, has_der): (String, bool) =
        sqlx::query_as("SELECT status, csr_der IS NOT NULL FROM requests WHERE id = $1::uuid")
            .bind(problem["request_id"].as_str().unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "rejected");
    assert!(!has_der);
    pool.close().await;

    // No piece of the key is anywhere in the database: not a line of its PEM, not its
    // private scalar in hex (as pg_dump writes bytea).
    let dump = Command::new("pg_dump").args(["--data-only", "--no-owner", "--dbname", &db.url]).output().unwrap();
    assert!(dump.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&dump.stderr));
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("Lekkage BV"), "the dump holds the rejected request");
    let key_pem = std::fs::read_to_string(&key).unwrap();
    for line in key_pem.lines().filter(|line| !line.starts_with("-----")) {
        assert!(!dump.contains(line), "a line of the private key is in the database");
    }
    let key_text = openssl(dir, &["ec", "-in", "leaky-key.pem", "-noout", "-text"]);
    let key_text = String::from_utf8_lossy(&key_text.stdout);
    let scalar: String = key_text
        .split("priv:")
        .nth(1)
        .and_then(|rest| rest.split("pub:").next())
        .unwrap()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    let scalar = scalar.trim_start_matches("00");
    assert!(scalar.len() >= 60, "private scalar {scalar}");
    assert!(!dump.contains(scalar), "the private scalar is in the database");

    // The key counts as compromised: its CSR alone gets no certificate either.
    let alone = curl(&[
        "-X", "POST", "--data-binary", &format!("@{}", csr.display()),
        &server.url(&format!("/api/v1/requests?environment=staging&invitation={code}")),
    ]);
    assert_eq!(alone.status, 422, "{}", alone.body);
    assert_eq!(alone.json()["reason"], "private-key");
    assert!(alone.json()["findings"][0]["message"].as_str().unwrap().contains("uploaded earlier"), "{}", alone.body);

    // Nor in the service's log.
    let log = server.log_lines().join("\n");
    for line in key_pem.lines().filter(|line| !line.starts_with("-----")) {
        assert!(!log.contains(line), "a line of the private key is in the log");
    }

    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_reuse_and_concurrent_approvals() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    let token = server.operator_token("bob", "operator");
    let code = server.invitation(&server.inviter(), "Huisartsen Noord", &["staging", "production"]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    let (key, csr) = make_csr(dir, "client", STAGING_SUBJECT);
    let upload_url = server.url(&format!("/api/v1/requests?environment=staging&invitation={code}"));
    let first = curl(&["-X", "POST", "--data-binary", &format!("@{}", csr.display()), &upload_url]);
    assert_eq!(first.status, 201, "{}", first.body);
    let id = first.json()["id"].as_str().unwrap().to_owned();

    // The same key again, even for the other environment, is key reuse.
    openssl(dir, &["req", "-new", "-key", key.to_str().unwrap(), "-out", "again.csr", "-subj", PRODUCTION_SUBJECT]);
    let again = curl(&[
        "-X", "POST", "--data-binary", &format!("@{}", dir.join("again.csr").display()),
        &server.url(&format!("/api/v1/requests?environment=production&invitation={code}")),
    ]);
    assert_eq!(again.status, 422, "{}", again.body);
    assert_eq!(again.json()["reason"], "key-reuse");

    // Two approvals at once: one issues, the other gets a conflict with the current status.
    let approve_url = server.url(&format!("/api/v1/requests/{id}/approve"));
    let auth = format!("Authorization: Bearer {token}");
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| curl(&["-X", "POST", "-H", &auth, &approve_url]));
        let b = scope.spawn(|| curl(&["-X", "POST", "-H", &auth, &approve_url]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "a: {} b: {}", a.body, b.body);
    let conflict = if a.status == 409 { a.json() } else { b.json() };
    assert!(["approved", "issued"].contains(&conflict["current_status"].as_str().unwrap()), "{conflict}");

    let pool = db.pool().await;
    let certificates: i64 = sqlx::query_scalar("SELECT count(*) FROM certificates").fetch_one(&pool).await.unwrap();
    assert_eq!(certificates, 1);
    pool.close().await;

    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn denial_and_api_authorization() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    let operator = server.operator_token("carol", "operator");
    let auditor = server.operator_token("dave", "auditor");
    let code = server.invitation(&server.inviter(), "Thuiszorg West", &["staging", "production"]);
    let work = tempfile::tempdir().unwrap();
    let (_key, csr) = make_csr(work.path(), "client", PRODUCTION_SUBJECT);

    let upload = curl(&[
        "-X", "POST", "-H", "Content-Type: application/json",
        "--data-binary", &serde_json::json!({
            "environment": "production",
            "invitation": code,
            "csr": std::fs::read_to_string(&csr).unwrap(),
        }).to_string(),
        &server.url("/api/v1/requests"),
    ]);
    assert_eq!(upload.status, 201, "{}", upload.body);
    let id = upload.json()["id"].as_str().unwrap().to_owned();

    let anonymous = curl(&[&server.url("/api/v1/requests?status=pending")]);
    assert_eq!(anonymous.status, 401);
    let forged = curl(&["-H", "Authorization: Bearer ozo_forged", &server.url("/api/v1/requests?status=pending")]);
    assert_eq!(forged.status, 401);
    let by_auditor = curl(&["-X", "POST", "-H", &format!("Authorization: Bearer {auditor}"), &server.url(&format!("/api/v1/requests/{id}/approve"))]);
    assert_eq!(by_auditor.status, 403, "{}", by_auditor.body);
    let by_inviter = curl(&["-X", "POST", "-H", &format!("Authorization: Bearer {}", server.inviter()), &server.url(&format!("/api/v1/requests/{id}/approve"))]);
    assert_eq!(by_inviter.status, 403, "{}", by_inviter.body);
    assert!(by_inviter.json()["detail"].as_str().unwrap().starts_with("You created the invitation"), "{}", by_inviter.body);

    let pending = curl(&["-H", &format!("Authorization: Bearer {operator}"), &server.url("/api/v1/requests?status=pending")]);
    assert_eq!(pending.status, 200);
    let listed: Vec<String> = pending.json()["requests"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(listed, [id.clone()]);

    let no_reason = curl(&[
        "-X", "POST", "-H", &format!("Authorization: Bearer {operator}"), "-H", "Content-Type: application/json",
        "--data", r#"{"reason": "  "}"#, &server.url(&format!("/api/v1/requests/{id}/deny")),
    ]);
    assert_eq!(no_reason.status, 400, "{}", no_reason.body);

    let denied = curl(&[
        "-X", "POST", "-H", &format!("Authorization: Bearer {operator}"), "-H", "Content-Type: application/json",
        "--data", r#"{"reason": "Organisation unknown to OZO; contact your account manager."}"#,
        &server.url(&format!("/api/v1/requests/{id}/deny")),
    ]);
    assert_eq!(denied.status, 200, "{}", denied.body);
    assert_eq!(denied.json()["status"], "denied");
    assert_eq!(denied.json()["status_reason"], "Organisation unknown to OZO; contact your account manager.");

    let late = curl(&["-X", "POST", "-H", &format!("Authorization: Bearer {operator}"), &server.url(&format!("/api/v1/requests/{id}/approve"))]);
    assert_eq!(late.status, 409, "{}", late.body);
    assert_eq!(late.json()["current_status"], "denied");

    // A rejected upload gets its findings in Dutch when the client prefers Dutch.
    let rejected = curl(&[
        "-X", "POST", "-H", "Accept-Language: nl-NL", "--data-binary",
        &format!("@{}", csr.display()),
        &server.url(&format!("/api/v1/requests?environment=staging&invitation={code}")),
    ]);
    assert_eq!(rejected.status, 422);
    let problem = rejected.json();
    let codes: Vec<&str> = problem["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["wrong-environment"]);
    assert!(problem["findings"][0]["message"].as_str().unwrap().starts_with("Deze CSR is voor production"), "{problem}");

    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_mistakes_get_clear_errors() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    server.operator_token("fred", "operator");
    let code = server.invitation(&server.inviter(), "Typo BV", &["staging", "production"]);
    let work = tempfile::tempdir().unwrap();
    let (_key, csr) = make_csr(work.path(), "client", STAGING_SUBJECT);
    let pem = std::fs::read_to_string(&csr).unwrap();

    // JSON sent without a Content-Type, with a misspelled field.
    let body = serde_json::json!({ "environment": "staging", "invitaton": code, "csr": pem }).to_string();
    let typo = curl(&["-X", "POST", "--data", &body, &server.url("/api/v1/requests")]);
    assert_eq!(typo.status, 400, "{}", typo.body);
    assert!(typo.json()["detail"].as_str().unwrap().contains("unknown field `invitaton`"), "{}", typo.body);

    let no_environment = curl(&["-X", "POST", "--data-binary", &format!("@{}", csr.display()), &server.url(&format!("/api/v1/requests?invitation={code}"))]);
    assert_eq!(no_environment.status, 400);
    assert!(no_environment.json()["detail"].as_str().unwrap().starts_with("The field environment is missing; expected one of: production, staging"), "{}", no_environment.body);

    // curl -d removes the line breaks of the PEM file.
    let flattened = curl(&["-X", "POST", "-d", &format!("@{}", csr.display()), &server.url(&format!("/api/v1/requests?environment=staging&invitation={code}"))]);
    assert_eq!(flattened.status, 422, "{}", flattened.body);
    assert!(flattened.json()["findings"][0]["message"].as_str().unwrap().contains("--data-binary"), "{}", flattened.body);

    let no_invitation = curl(&[
        "-X", "POST", "-H", "Accept-Language: nl", "--data-binary", &format!("@{}", csr.display()),
        &server.url("/api/v1/requests?environment=staging&organisation=A&contact=b"),
    ]);
    assert_eq!(no_invitation.status, 403);
    let problem = no_invitation.json();
    assert_eq!(problem["title"], "Niet toegestaan");
    assert!(problem["detail"].as_str().unwrap().contains("heeft een uitnodigingscode nodig"), "{problem}");

    let bad_id = curl(&[&server.url("/api/v1/requests/not-a-uuid")]);
    assert_eq!(bad_id.status, 404);
    assert!(bad_id.json()["detail"].as_str().unwrap().contains("is not a valid id"), "{}", bad_id.body);

    let unknown_path = curl(&[&server.url("/api/v2/requests")]);
    assert_eq!(unknown_path.status, 404);
    assert!(unknown_path.json()["detail"].as_str().unwrap().contains("/api/v1"), "{}", unknown_path.body);

    let big = work.path().join("big.csr");
    std::fs::write(&big, "A".repeat(100_000)).unwrap();
    let too_large = curl(&["-X", "POST", "--data-binary", &format!("@{}", big.display()), &server.url(&format!("/api/v1/requests?environment=staging&invitation={code}"))]);
    assert_eq!(too_large.status, 413);
    assert_eq!(too_large.json()["findings"][0]["code"], "too-large");
    assert!(too_large.json()["findings"][0]["message"].as_str().unwrap().contains("400 bytes"), "{}", too_large.body);

    // A rejected request will never get a certificate, and the 409 detail states that.
    let rejected = curl(&["-X", "POST", "--data-binary", &format!("@{}", csr.display()), &server.url(&format!("/api/v1/requests?environment=production&invitation={code}"))]);
    let id = rejected.json()["request_id"].as_str().unwrap().to_owned();
    let download = curl(&[&server.url(&format!("/api/v1/requests/{id}/certificate"))]);
    assert_eq!(download.status, 409);
    assert!(download.json()["detail"].as_str().unwrap().contains("will not be issued"), "{}", download.body);

    drop(server);
    db.drop_database().await;
}
