//! Running the service: the schema check at start, the probes, the metrics, the JSON
//! log lines, HTTPS in the binary, `config check` and the shutdown on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ozo_system_tests::*;

/// Starts `serve` on `database_url` and returns its exit status and log when it stops
/// by itself within 30 seconds.
fn serve_until_exit(database_url: &str) -> (std::process::ExitStatus, String) {
    serve_on_until_exit(database_url, "127.0.0.1:0")
}

/// Like [`serve_until_exit`], listening on `listen`. The process runs in a directory of
/// its own, where it makes its local CAs.
fn serve_on_until_exit(database_url: &str, listen: &str) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary())
        .args(["serve", "--listen", listen])
        .current_dir(dir.path())
        .env("DATABASE_URL", database_url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut log = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
            return (status, log);
        }
        assert!(Instant::now() < deadline, "serve kept running on a database it should refuse");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_an_older_or_newer_schema() {
    let db = TestDb::create_empty().await;

    let (status, log) = serve_until_exit(&db.url);
    assert!(!status.success());
    assert!(log.contains("has no ozo-signer schema yet"), "{log}");
    assert!(log.contains("Run `ozo-signer migrate`"), "{log}");

    let migrated = Command::new(binary()).arg("migrate").env("DATABASE_URL", &db.url).output().unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let printed = String::from_utf8_lossy(&migrated.stdout);
    assert!(printed.contains("the database schema is current"), "{printed}");

    // A migration of a newer release: serve and migrate both reject it and name it.
    let pool = db.pool().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (29991231000000, 'from a newer release', true, '\\x00', 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (status, log) = serve_until_exit(&db.url);
    assert!(!status.success());
    assert!(log.contains("newer than this binary: migrations 29991231000000 are unknown to it"), "{log}");
    let migrate = Command::new(binary()).arg("migrate").env("DATABASE_URL", &db.url).output().unwrap();
    assert!(!migrate.status.success());
    assert!(String::from_utf8_lossy(&migrate.stderr).contains("newer than this binary"));

    // An older schema: the last migration is missing.
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 29991231000000").execute(&pool).await.unwrap();
    let last: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
    let row: (String, Vec<u8>) =
        sqlx::query_as("SELECT description, checksum FROM _sqlx_migrations WHERE version = $1")
            .bind(last)
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1").bind(last).execute(&pool).await.unwrap();
    let (status, log) = serve_until_exit(&db.url);
    assert!(!status.success());
    assert!(log.contains(&format!("is older than this binary's; migrations {last} are pending")), "{log}");

    // With the row back the server starts, and /readyz turns to 503 when the schema
    // falls behind while it runs.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES ($1, $2, true, $3, 1)",
    )
    .bind(last)
    .bind(&row.0)
    .bind(&row.1)
    .execute(&pool)
    .await
    .unwrap();
    let server = TestServer::start(&db.url);

    // A second server on the same address stops with the reason.
    let taken = server.base_url.trim_start_matches("http://").to_owned();
    let (status, log) = serve_on_until_exit(&db.url, &taken);
    assert!(!status.success());
    assert!(log.contains(&format!("failed to listen on {taken}")), "{log}");

    let ready = curl(&[&server.url("/readyz")]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["ready"], true);
    assert_eq!(ready.json()["database"], "ok");
    assert!(ready.json()["environments"]["staging"].as_str().unwrap().contains("local"), "{}", ready.body);
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1").bind(last).execute(&pool).await.unwrap();
    let behind = curl(&[&server.url("/readyz")]);
    assert_eq!(behind.status, 503, "{}", behind.body);
    assert_eq!(behind.json()["ready"], false);
    assert!(behind.json()["schema"].as_str().unwrap().contains("pending"), "{}", behind.body);
    assert_eq!(curl(&[&server.url("/healthz")]).status, 200, "the process is still alive");

    drop(server);
    pool.close().await;
    db.drop_database().await;
}

/// Finds the value of the sample `name{labels}` in Prometheus text, or `None`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_json_logs_describe_the_work() {
    let db = TestDb::create().await;
    // Staging certificates live 10 days here, so each one counts as expiring soon.
    let config = r#"
log_format = "json"

[environments.staging]
common_name = "connect.zorgverband.nl"
organization = "OZOverbindzorg"
certificate_lifetime_days = 10
[environments.staging.ca]
backend = "local"

[environments.production]
common_name = "zorgverband.nl"
organization = "OZOverbindzorg"
[environments.production.ca]
backend = "local"
"#;
    let server = TestServer::start_with_config(&db.url, Some(config));
    let operator = server.operator_token("olle", "operator");
    let work = tempfile::tempdir().unwrap();
    let upload = |environment: &str, subject: &str, name: &str| {
        let code = server.invitation(&server.inviter(), "Zorg Noord", &[environment]);
        let (_, csr) = make_csr(work.path(), name, subject);
        let headers = work.path().join(format!("{name}.headers")).display().to_string();
        curl(&[
            "-D",
            &headers,
            "-X",
            "POST",
            "--data-binary",
            &format!("@{}", csr.display()),
            &server.url(&format!("/api/v1/requests?environment={environment}&invitation={code}")),
        ])
    };

    let rejected = upload("staging", PRODUCTION_SUBJECT, "wrong");
    assert_eq!(rejected.status, 422);
    let issued = upload("staging", STAGING_SUBJECT, "staging");
    assert_eq!(issued.status, 201, "{}", issued.body);
    let staging_id = issued.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(server.approve(&[&operator], &staging_id).json()["status"], "issued");
    let pending = upload("production", PRODUCTION_SUBJECT, "production");
    assert_eq!(pending.status, 201);

    let metrics = curl(&[&server.url("/metrics")]);
    assert_eq!(metrics.status, 200);
    let text = &metrics.body;
    let value = |series: &str| sample(text, series).unwrap_or_else(|| panic!("{series} is missing:\n{text}"));
    assert_eq!(value(r#"ozo_http_requests_total{method="POST",route="/api/v1/requests",status="201"}"#), 2.0);
    assert_eq!(value(r#"ozo_http_requests_total{method="POST",route="/api/v1/requests",status="422"}"#), 1.0);
    assert_eq!(value(r#"ozo_csr_rejections_total{environment="staging",reason="wrong-environment"}"#), 1.0);
    assert_eq!(value(r#"ozo_requests_pending{environment="production"}"#), 1.0);
    assert_eq!(value(r#"ozo_requests_pending{environment="staging"}"#), 0.0);
    assert_eq!(value(r#"ozo_certificates_expiring_30d{environment="staging"}"#), 1.0);
    assert_eq!(value(r#"ozo_certificates_expiring_30d{environment="production"}"#), 0.0);
    assert_eq!(value(r#"ozo_signing_attempts_total{action="issue",outcome="done"}"#), 1.0);
    assert_eq!(value(&format!(r#"ozo_build_info{{version="{}"}}"#, env!("CARGO_PKG_VERSION"))), 1.0);
    assert!(text.contains("# HELP ozo_csr_rejections_total"), "{text}");
    assert!(
        value(r#"ozo_http_request_duration_seconds_count{method="POST",route="/api/v1/requests"}"#) >= 3.0,
        "{text}"
    );
    let pool = db.pool().await;
    // The background step may chain a queued event between the scrape and this count, so
    // the chain and the queue are compared together.
    let recorded: i64 = sqlx::query_scalar("SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM event_queue)")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(value("ozo_audit_chain_length") + value("ozo_audit_events_queued"), recorded as f64);
    // A path with an id is counted under its route, not under the id.
    assert!(!text.contains(&staging_id), "a request id is in the metrics");

    // Every log line is one JSON object; each request ends with one line that carries
    // the id the response sent back, and so do the lines logged on its way.
    let headers = std::fs::read_to_string(work.path().join("staging.headers")).unwrap();
    let header_id = headers
        .lines()
        .find_map(|line| line.strip_prefix("x-request-id: "))
        .map(|id| id.trim().to_owned())
        .unwrap_or_else(|| panic!("no x-request-id in {headers}"));
    let lines: Vec<serde_json::Value> = server
        .log_lines()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let of_upload: Vec<&serde_json::Value> = lines.iter().filter(|line| line["http.request_id"] == header_id).collect();
    let finished: Vec<_> = of_upload.iter().filter(|line| line["message"] == "request finished").collect();
    assert_eq!(finished.len(), 1, "{of_upload:#?}");
    assert_eq!(finished[0]["http.status"], 201);
    assert_eq!(finished[0]["http.method"], "POST");
    assert_eq!(finished[0]["environment"], "staging");
    let accepted =
        of_upload.iter().find(|line| line["message"] == "accepted a CSR upload").expect("the upload's own line");
    assert_eq!(accepted["request.id"], staging_id);
    assert_eq!(accepted["level"], "INFO");
    let approval = lines
        .iter()
        .find(|line| {
            line["message"] == "request finished" && line["http.path"].as_str().unwrap_or("").ends_with("/approve")
        })
        .expect("the approval's line");
    assert_eq!(approval["account.name"], "olle");
    assert_eq!(approval["request.id"], staging_id);
    let log = server.log_lines().join("\n");
    assert!(!log.contains("BEGIN CERTIFICATE REQUEST"), "a CSR is in the log");
    assert!(!log.contains(&operator), "a token is in the log");

    drop(server);
    pool.close().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn https_a_separate_metrics_listener_and_config_check() {
    let db = TestDb::create().await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let generated = openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            "server-key.pem",
            "-out",
            "server.pem",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
    );
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    let metrics_port = free_port();
    let config = format!(
        r#"
metrics_listen = "127.0.0.1:{metrics_port}"
client_read_timeout_seconds = 2
[tls]
certificate_chain = "{dir}/server.pem"
private_key = "{dir}/server-key.pem"

[environments.staging]
common_name = "connect.zorgverband.nl"
organization = "OZOverbindzorg"
[environments.staging.ca]
backend = "local"
"#,
        dir = dir.display()
    );

    // config check reads the TLS files and prints what it found, without a database.
    std::fs::write(dir.join("config.toml"), &config).unwrap();
    let checked =
        Command::new(binary()).args(["--config", "config.toml", "config", "check"]).current_dir(dir).output().unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    let printed = String::from_utf8_lossy(&checked.stdout);
    assert!(printed.contains("environment staging: CN=connect.zorgverband.nl, O=OZOverbindzorg"), "{printed}");
    assert!(printed.contains("the configuration is valid"), "{printed}");
    std::fs::write(dir.join("not-a-key.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        .unwrap();
    std::fs::write(dir.join("broken.toml"), config.replace("server-key.pem", "not-a-key.pem")).unwrap();
    let broken =
        Command::new(binary()).args(["--config", "broken.toml", "config", "check"]).current_dir(dir).output().unwrap();
    assert_eq!(broken.status.code(), Some(1));
    let error = String::from_utf8_lossy(&broken.stderr);
    assert!(error.contains("not-a-key.pem"), "{error}");
    assert!(error.contains("PEM private key"), "{error}");

    // The service serves HTTPS with that certificate, and /metrics only on its own port.
    let server = TestServer::start_with_config(&db.url, Some(&config));
    assert!(server.base_url.starts_with("http://"), "{}", server.base_url);
    let https = server.base_url.replace("http://", "https://");
    let cacert = dir.join("server.pem").display().to_string();
    let health = curl(&["--cacert", &cacert, &format!("{https}/healthz")]);
    assert_eq!(health.status, 200, "{}", health.body);
    let ready = curl(&["--cacert", &cacert, &format!("{https}/readyz")]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    let not_here = curl(&["--cacert", &cacert, &format!("{https}/metrics")]);
    assert_eq!(not_here.status, 404);
    let metrics = curl(&[&format!("http://127.0.0.1:{metrics_port}/metrics")]);
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("ozo_http_requests_total"), "{}", metrics.body);
    let plain = Command::new("curl")
        .args(["-sS", "--max-time", "10", &format!("{}/healthz", server.base_url)])
        .output()
        .unwrap();
    assert!(!plain.status.success(), "plain HTTP must not be served on the TLS port");

    // TLS offers HTTP/1.1 only, even to a client that asks for HTTP/2 first.
    let version = Command::new("curl")
        .args(["-sS", "--http2", "--cacert", &cacert, "-o", "/dev/null", "-w", "%{http_version}"])
        .arg(format!("{https}/healthz"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout), "1.1", "{}", String::from_utf8_lossy(&version.stderr));

    // A connection that never starts its TLS handshake is closed after the client read
    // timeout of 2 s.
    let waited = silent_connection_lifetime(server.base_url.trim_start_matches("http://"));
    assert!(waited >= Duration::from_millis(1900), "closed after {waited:?}, before the timeout");
    assert!(waited < Duration::from_secs(6), "the silent TLS connection was closed after {waited:?}");

    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_works_as_the_restricted_service_role() {
    let db = TestDb::create().await;
    let role = format!("ozo_service_{}", uuid::Uuid::new_v4().simple());
    let pool = db.pool().await;
    // The grants of deploy/database-roles.md.
    for statement in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}"),
        format!("REVOKE UPDATE, DELETE, TRUNCATE ON events FROM {role}"),
        format!("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON _sqlx_migrations FROM {role}"),
    ] {
        sqlx::query(&statement).execute(&pool).await.unwrap();
    }
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&role).unwrap();

    let server = TestServer::start(url.as_str());
    let operator = server.operator_token("olle", "operator");
    let work = tempfile::tempdir().unwrap();
    let code = server.invitation(&server.inviter(), "Zorg West", &["staging"]);
    let (_, csr) = make_csr(work.path(), "client", STAGING_SUBJECT);
    let uploaded = curl(&[
        "-X",
        "POST",
        "--data-binary",
        &format!("@{}", csr.display()),
        &server.url(&format!("/api/v1/requests?environment=staging&invitation={code}")),
    ]);
    assert_eq!(uploaded.status, 201, "{}", uploaded.body);
    let id = uploaded.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(server.approve(&[&operator], &id).json()["status"], "issued");
    assert_eq!(curl(&[&server.url("/readyz")]).status, 200);

    // The role can append events but not change them, even with the triggers gone.
    let service = sqlx::PgPool::connect(url.as_str()).await.unwrap();
    let changed = sqlx::query("UPDATE events SET kind = 'changed'").execute(&service).await.unwrap_err();
    assert!(changed.to_string().contains("permission denied"), "{changed}");
    let deleted = sqlx::query("DELETE FROM events").execute(&service).await.unwrap_err();
    assert!(deleted.to_string().contains("permission denied"), "{deleted}");
    let unmigrated = sqlx::query("DELETE FROM _sqlx_migrations").execute(&service).await.unwrap_err();
    assert!(unmigrated.to_string().contains("permission denied"), "{unmigrated}");
    service.close().await;

    drop(server);
    pool.close().await;
    db.drop_database().await;
    let admin = sqlx::PgPool::connect(&std::env::var("DATABASE_URL").unwrap_or_default()).await;
    if let Ok(admin) = admin {
        sqlx::query(&format!("DROP ROLE IF EXISTS {role}")).execute(&admin).await.unwrap();
        admin.close().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_requests_in_flight_finish() {
    use ozo_system_tests::cas::{upload, Cas};
    use ozo_system_tests::fake_cas::Fault;

    let db = TestDb::create().await;
    let cas = Cas::start(10, "anonymous");
    let mut server = cas.server(&db);
    let token = server.operator_token("olle", "operator");
    let work = tempfile::tempdir().unwrap();
    let id = upload(&server, work.path(), "client");

    // CAS takes two seconds for this certificate; SIGTERM arrives while it works.
    cas.fake.push_fault(Fault::Hang(Duration::from_secs(2)));
    let url = server.url(&format!("/api/v1/requests/{id}/approve"));
    let auth = format!("Authorization: Bearer {token}");
    let in_flight = std::thread::spawn(move || curl(&["-X", "POST", "-H", &auth, &url]));
    std::thread::sleep(Duration::from_millis(500));
    let stopping = Instant::now();
    let status = server.terminate(Duration::from_secs(30));

    let approved = in_flight.join().unwrap();
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.json()["status"], "issued");
    assert!(status.success(), "{status:?}");
    assert!(stopping.elapsed() >= Duration::from_secs(1), "the process waited for the request");
    assert_eq!(cas.staging_certificates().len(), 1);

    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_start_at_zero() {
    use ozo_domain::FindingCode;

    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);

    let metrics = curl(&[&server.url("/metrics")]);
    assert_eq!(metrics.status, 200);
    let text = &metrics.body;
    let value = |series: &str| sample(text, series).unwrap_or_else(|| panic!("{series} is missing:\n{text}"));

    // The built-in configuration has the environments staging and production.
    for environment in ["staging", "production"] {
        for code in FindingCode::ALL {
            let series = format!(r#"ozo_csr_rejections_total{{environment="{environment}",reason="{code}"}}"#);
            assert_eq!(value(&series), 0.0, "{series}");
        }
    }
    assert_eq!(value(r#"ozo_csr_rejections_total{environment="unknown",reason="too-large"}"#), 0.0);
    let rejection_series = text.lines().filter(|line| line.starts_with("ozo_csr_rejections_total{")).count();
    assert_eq!(rejection_series, 2 * FindingCode::ALL.len() + 1, "{text}");

    for action in ["issue", "revoke"] {
        for outcome in ["done", "retry", "failed", "gone"] {
            let series = format!(r#"ozo_signing_attempts_total{{action="{action}",outcome="{outcome}"}}"#);
            assert_eq!(value(&series), 0.0, "{series}");
        }
    }
    for scope in ["upload-address", "upload-invitation", "status-address"] {
        assert_eq!(value(&format!(r#"ozo_rate_limited_total{{scope="{scope}"}}"#)), 0.0, "{scope}");
    }
    assert_eq!(value("ozo_metrics_gauge_errors_total"), 0.0);

    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_uploads_count_as_rejections() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    let work = tempfile::tempdir().unwrap();
    // Larger than the 64 KiB that any route reads.
    let big = work.path().join("big.csr");
    std::fs::write(&big, "A".repeat(100 * 1024)).unwrap();
    let big_file = format!("@{}", big.display());

    // A raw upload names its environment in the query.
    let raw = curl(&["-X", "POST", "--data-binary", &big_file, &server.url("/api/v1/requests?environment=staging")]);
    assert_eq!(raw.status, 413, "{}", raw.body);
    // A JSON upload names it in the body, which is not read.
    let json = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &big_file,
        &server.url("/api/v1/requests"),
    ]);
    assert_eq!(json.status, 413, "{}", json.body);
    // An environment that is not configured must not become a label.
    let unconfigured =
        curl(&["-X", "POST", "--data-binary", &big_file, &server.url("/api/v1/requests?environment=no-such-env")]);
    assert_eq!(unconfigured.status, 413, "{}", unconfigured.body);
    // The upload page's form sends the environment before the file.
    let page = curl(&[
        "-F",
        "invitation=ABCD-EFGH",
        "-F",
        "environment=production",
        "-F",
        &format!("csr_file={big_file}"),
        &server.url("/upload"),
    ]);
    assert_eq!(page.status, 413, "{}", page.body);

    let metrics = curl(&[&server.url("/metrics")]);
    let text = &metrics.body;
    let value = |series: &str| sample(text, series).unwrap_or_else(|| panic!("{series} is missing:\n{text}"));
    assert_eq!(value(r#"ozo_csr_rejections_total{environment="staging",reason="too-large"}"#), 1.0);
    assert_eq!(value(r#"ozo_csr_rejections_total{environment="production",reason="too-large"}"#), 1.0);
    assert_eq!(value(r#"ozo_csr_rejections_total{environment="unknown",reason="too-large"}"#), 2.0);
    assert!(!text.contains("no-such-env"), "a requested environment name is a label:\n{text}");

    drop(server);
    db.drop_database().await;
}

/// Reads from `stream` until the server closes the connection, and returns what it sent
/// and when it closed. Panics if the connection is still open after 10 seconds.
fn read_until_closed(stream: &mut std::net::TcpStream) -> (String, Instant) {
    use std::io::Read;

    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut received = Vec::new();
    match stream.read_to_end(&mut received) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(error) => panic!("the connection was still open after 10 s ({error}); received: {}", String::from_utf8_lossy(&received)),
    }
    (String::from_utf8_lossy(&received).into_owned(), Instant::now())
}

/// Connects to `address`, sends nothing, and returns how long the server kept the
/// connection open. Panics if the server sent anything.
fn silent_connection_lifetime(address: &str) -> Duration {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let started = Instant::now();
    let (received, closed) = read_until_closed(&mut stream);
    assert_eq!(received, "", "the server sent something to a client that sent nothing");
    closed - started
}

/// A client that sends nothing, or sends its headers or its body more slowly than
/// `client_read_timeout_seconds` allows, does not keep its connection, and neither does
/// one that speaks HTTP/2.
#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_time_out() {
    use std::io::Write;
    use std::net::TcpStream;

    let db = TestDb::create().await;
    let config = r#"
client_read_timeout_seconds = 1

[environments.staging]
common_name = "connect.zorgverband.nl"
organization = "OZOverbindzorg"
allow_uploads_without_invitation = true
[environments.staging.ca]
backend = "local"
"#;
    let server = TestServer::start_with_config(&db.url, Some(config));
    let address = server.base_url.trim_start_matches("http://").to_owned();

    // A connection that sends nothing is closed once the timeout has passed.
    let waited = silent_connection_lifetime(&address);
    assert!(waited >= Duration::from_millis(900), "closed after {waited:?}, before the timeout");
    assert!(waited < Duration::from_secs(5), "the silent connection was closed after {waited:?}");

    // Headers that stop halfway: the connection is closed once the timeout has passed.
    let mut stream = TcpStream::connect(&address).unwrap();
    let started = Instant::now();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
    let (received, closed) = read_until_closed(&mut stream);
    let waited = closed - started;
    assert!(waited >= Duration::from_millis(900), "closed after {waited:?}, before the timeout; received: {received}");
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}; received: {received}");
    assert!(!received.contains("200 OK"), "the incomplete request was answered: {received}");

    // A connection kept open after a complete request is closed once the timeout has
    // passed without a new request.
    let mut stream = TcpStream::connect(&address).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let started = Instant::now();
    let (received, closed) = read_until_closed(&mut stream);
    let waited = closed - started;
    assert!(received.starts_with("HTTP/1.1 200 OK"), "{received}");
    assert!(waited < Duration::from_secs(5), "the idle connection was closed after {waited:?}");

    // An upload whose body stops after 10 of its 500 bytes gets 408, in the language the
    // client asked for.
    for (language, expected) in [("en", "was not complete 1 s after its headers"), ("nl", "was 1 s na de headers nog niet compleet")] {
        let mut stream = TcpStream::connect(&address).unwrap();
        let request = format!(
            "POST /api/v1/requests?environment=staging&organisation=Zorg%20Noord&contact=it%40noord.example HTTP/1.1\r\n\
             Host: 127.0.0.1\r\nAccept-Language: {language}\r\nContent-Type: application/pkcs10\r\nContent-Length: 500\r\n\r\n\
             -----BEGIN"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let started = Instant::now();
        let (received, closed) = read_until_closed(&mut stream);
        let waited = closed - started;
        assert!(received.starts_with("HTTP/1.1 408 Request Timeout"), "{language}: {received}");
        assert!(received.contains(expected), "{language}: {received}");
        assert!(received.to_ascii_lowercase().contains("connection: close"), "{language}: {received}");
        assert!(waited >= Duration::from_millis(900), "{language}: answered after {waited:?}, before the timeout");
    }

    // A body that keeps coming a few bytes at a time still has to be complete within the
    // timeout, counted from the end of the headers. This holds for the sign-in form too.
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .write_all(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut answered = false;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(200));
        if stream.write_all(b"name=").is_err() {
            answered = true;
            break;
        }
    }
    let (received, _) = read_until_closed(&mut stream);
    let waited = started.elapsed();
    assert!(received.starts_with("HTTP/1.1 408 Request Timeout"), "received after {waited:?}: {received}");
    assert!(answered || waited < Duration::from_secs(5), "the trickling body was read for {waited:?}");

    // HTTP/2 is not spoken, because hyper has no header or idle timeouts for it.
    let h2 = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}"])
        .arg(server.url("/healthz"))
        .output()
        .unwrap();
    let outcome = String::from_utf8_lossy(&h2.stdout);
    assert!(!outcome.starts_with("2 "), "HTTP/2 was served: {outcome}");

    // The silent connection and the HTTP/2 one were counted; closures for slow headers
    // are not.
    let metrics = curl(&[&server.url("/metrics")]).body;
    let closed = |reason: &str| sample(&metrics, &format!("ozo_connections_closed_total{{reason=\"{reason}\"}}"));
    assert_eq!(closed("no-first-byte"), Some(1.0), "{metrics}");
    assert_eq!(closed("http2"), Some(1.0), "{metrics}");

    // Nothing of the timed-out upload was recorded.
    let pool = db.pool().await;
    let requests: i64 = sqlx::query_scalar("SELECT count(*) FROM requests").fetch_one(&pool).await.unwrap();
    assert_eq!(requests, 0);

    drop(server);
    pool.close().await;
    db.drop_database().await;
}

/// Waits until the server has logged a line for which `found` holds, and returns every
/// line up to it as JSON.
fn log_until(server: &TestServer, found: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for line in server.log_lines() {
            let value: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            let done = found(&value);
            lines.push(value);
            if done {
                return lines;
            }
        }
        assert!(Instant::now() < deadline, "the expected line was not logged; log so far:\n{lines:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_are_not_logged_at_info() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    let probes = ["/healthz", "/readyz", "/metrics"];
    for _ in 0..3 {
        for path in probes {
            assert_eq!(curl(&[&server.url(path)]).status, 200, "{path}");
        }
    }
    let work = tempfile::tempdir().unwrap();
    let (_, csr) = make_csr(work.path(), "client", STAGING_SUBJECT);
    let upload = curl(&[
        "-X",
        "POST",
        "--data-binary",
        &format!("@{}", csr.display()),
        &server.url("/api/v1/requests?environment=staging"),
    ]);
    assert_eq!(upload.status, 403, "an upload without an invitation: {}", upload.body);

    let finished =
        |line: &serde_json::Value, path: &str| line["message"] == "request finished" && line["http.path"] == path;
    let lines = log_until(&server, |line| finished(line, "/api/v1/requests"));
    for path in probes {
        let logged: Vec<_> = lines.iter().filter(|line| finished(line, path)).collect();
        assert!(logged.is_empty(), "{path} was logged: {logged:#?}");
    }
    let uploaded = lines.iter().find(|line| finished(line, "/api/v1/requests")).unwrap();
    assert_eq!(uploaded["level"], "INFO");
    assert_eq!(uploaded["http.status"], 403);

    // A failing probe is still logged: /readyz returns 503 once the schema falls behind.
    let pool = db.pool().await;
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(curl(&[&server.url("/readyz")]).status, 503);
    let lines = log_until(&server, |line| finished(line, "/readyz"));
    let not_ready = lines.last().unwrap();
    assert_eq!(not_ready["http.status"], 503);
    assert_eq!(not_ready["level"], "INFO");

    drop(server);
    pool.close().await;
    db.drop_database().await;
}

#[test]
fn config_check_names_misplaced_top_level_key() {
    let dir = tempfile::tempdir().unwrap();
    let environment = r#"
[environments.staging]
common_name = "connect.zorgverband.nl"
organization = "OZOverbindzorg"
[environments.staging.ca]
backend = "local"
"#;
    let under_tls = format!(
        "[tls]\ncertificate_chain = \"server.pem\"\nprivate_key = \"server-key.pem\"\nlog_format = \"json\"\n{environment}"
    );
    let under_environment =
        environment.replace("[environments.staging]\n", "[environments.staging]\nlog_format = \"json\"\n");
    let cases = [("tls", under_tls.as_str()), ("environments.staging", under_environment.as_str())];
    for (section, config) in cases {
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let checked = Command::new(binary())
            .args(["config", "check", "--config", "config.toml"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let error = String::from_utf8_lossy(&checked.stderr);
        assert_eq!(checked.status.code(), Some(2), "{section}: {error}");
        assert!(error.contains(&format!("{section}.log_format: ")), "{section}: {error}");
        assert!(
            error.contains("the key log_format is a top-level key; move it above the first [section]"),
            "{section}: {error}"
        );
        assert!(error.contains(&format!("here [{section}]")), "{section}: {error}");
        assert!(!error.contains("unknown field"), "{section}: {error}");
    }

    // The same key above the first section is valid.
    let valid = format!("log_format = \"json\"\n{environment}");
    std::fs::write(dir.path().join("config.toml"), valid).unwrap();
    let checked = Command::new(binary())
        .args(["config", "check", "--config", "config.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
}
