//! The auditors' benchmark: loads a fresh database with a million certificates and five
//! million chained events, then measures, in one run, a filtered page of the auditor API,
//! a full export against PostgreSQL's own COPY of the same rows, and `audit verify`.
//!
//! `cargo build --release --workspace && target/release/audit-bench [CERTIFICATES] [EVENTS]`
//! with `DATABASE_URL` naming a server on 127.0.0.1 where it may create a database.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sqlx::{Connection, PgConnection};

const ORGANISATIONS: u64 = 5_000;
const KINDS: [&str; 6] = [
    "request.received",
    "request.approval_recorded",
    "request.approved",
    "certificate.issued",
    "account.signed_in",
    "certificate.revoked",
];
const PAGE_REQUESTS: usize = 500;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let certificates: u64 = args.next().map(|a| a.parse().expect("CERTIFICATES is a number")).unwrap_or(1_000_000);
    let events: u64 = args.next().map(|a| a.parse().expect("EVENTS is a number")).unwrap_or(5_000_000);
    let admin_url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("ozo_bench_{}", std::process::id());
    let mut url = url::Url::parse(&admin_url).expect("DATABASE_URL is a URL");
    url.set_path(&name);
    let url = url.to_string();
    let binary = std::env::current_exe().unwrap().parent().unwrap().join("ozo-signer");

    let mut admin = PgConnection::connect(&admin_url).await.expect("the server accepts connections");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    println!("database {name}: {certificates} certificates, {events} events");

    let migrated = Command::new(&binary).arg("migrate").env("DATABASE_URL", &url).output().unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));

    let mut conn = PgConnection::connect(&url).await.unwrap();
    let started = Instant::now();
    load_certificates(&mut conn, certificates).await;
    println!("loaded certificates in {:.1} s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    load_events(&mut conn, events, certificates).await;
    println!("loaded events in {:.1} s", started.elapsed().as_secs_f64());
    sqlx::query("VACUUM ANALYZE").execute(&mut conn).await.unwrap();

    // The service, with an auditor's token.
    let added = run(&binary, &url, &["user", "add", "bench", "--role", "auditor"], "a long enough password\n");
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let token =
        String::from_utf8(run(&binary, &url, &["token", "create", "bench"], "").stdout).unwrap().trim().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(&binary)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client: Client<_, http_body_util::Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    wait_until_up(&client, &base).await;

    // A filtered page of the auditor API: requests of one organisation, then events of
    // one kind by one actor.
    for (label, path) in [
        (
            "requests of an organisation",
            "/api/v1/audit/requests?environment=production&organisation=Organisation%20{k}",
        ),
        ("events of a kind by an actor", "/api/v1/events?kind=certificate.issued&actor=account%3Aop{a}"),
    ] {
        let mut times = Vec::with_capacity(PAGE_REQUESTS);
        for index in 0..PAGE_REQUESTS as u64 {
            // Odd organisation numbers are the ones with production requests, so every
            // page of them is full.
            let organisation = (index * 14 + 1) % ORGANISATIONS;
            let target = path.replace("{k}", &organisation.to_string()).replace("{a}", &(index % 20).to_string());
            let started = Instant::now();
            let (status, bytes) = get(&client, &base, &target, &token).await;
            times.push(started.elapsed());
            assert_eq!(status, 200, "{target}: {}", String::from_utf8_lossy(&bytes));
            if let Some(records) = serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["records"].as_array() {
                assert_eq!(records.len(), 100, "{target} gives a full page");
            }
        }
        times.sort();
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        println!(
            "page of {label}: p50 {:.2} ms, p99 {:.2} ms over {PAGE_REQUESTS} requests",
            at(0.50).as_secs_f64() * 1000.0,
            at(0.99).as_secs_f64() * 1000.0
        );
    }

    // A full export against COPY of the same rows.
    let started = Instant::now();
    let (status, bytes) = get(&client, &base, "/api/v1/audit/requests/export?format=csv", &token).await;
    let export_time = started.elapsed();
    assert_eq!(status, 200);
    let exported_rows = bytes.iter().filter(|&&b| b == b'\n').count() as f64 - 1.0;
    let started = Instant::now();
    let copy_rows = copy_out(
        &mut conn,
        "COPY (SELECT r.id, r.environment, r.organisation, r.status, r.status_reason, r.created_at,
                      encode(r.spki_sha256, 'hex'), c.serial_hex, c.not_after, c.revoked_at, c.revocation_reason
               FROM requests r LEFT JOIN certificates c ON c.request_id = r.id
               ORDER BY r.created_at DESC, r.id DESC) TO STDOUT WITH (FORMAT csv)",
    )
    .await;
    let copy_time = started.elapsed();
    let export_rate = exported_rows / export_time.as_secs_f64();
    let copy_rate = copy_rows as f64 / copy_time.as_secs_f64();
    println!(
        "export of {exported_rows} requests: {export_rate:.0} rows/s; COPY: {copy_rate:.0} rows/s; ratio {:.2}",
        export_rate / copy_rate
    );

    let started = Instant::now();
    let verified = run(&binary, &url, &["audit", "verify"], "");
    let verify_time = started.elapsed();
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    println!(
        "audit verify of {events} events: {:.1} s, {:.0} events/s",
        verify_time.as_secs_f64(),
        events as f64 / verify_time.as_secs_f64()
    );

    let _ = server.kill();
    let _ = server.wait();
    drop(conn);
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&mut admin).await.unwrap();
}

fn run(binary: &std::path::Path, url: &str, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(binary)
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

async fn get(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, http_body_util::Empty<bytes::Bytes>>,
    base: &str,
    path: &str,
    token: &str,
) -> (u16, bytes::Bytes) {
    let request = hyper::Request::get(format!("{base}{path}"))
        .header("Authorization", format!("Bearer {token}"))
        .body(http_body_util::Empty::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    (status, response.into_body().collect().await.unwrap().to_bytes())
}

async fn wait_until_up(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, http_body_util::Empty<bytes::Bytes>>,
    base: &str,
) {
    for _ in 0..100 {
        let request = hyper::Request::get(format!("{base}/healthz")).body(http_body_util::Empty::new()).unwrap();
        if client.request(request).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the service did not start");
}

/// Requests, each issued with a certificate, spread over both environments, 5,000
/// organisations and one second apart.
async fn load_certificates(conn: &mut PgConnection, count: u64) {
    sqlx::query(
        "INSERT INTO requests (id, environment, organisation, contact, status, csr_der, spki_sha256, created_at, updated_at)
         SELECT lpad(to_hex(i), 32, '0')::uuid,
                CASE WHEN i % 2 = 0 THEN 'staging' ELSE 'production' END,
                'Organisation ' || (i % $2), 'it@example.nl', 'issued', '\\x30'::bytea,
                sha256(int8send(i)), timestamptz '2026-01-01' + i * interval '1 second', now()
         FROM generate_series(1, $1) AS i",
    )
    .bind(count as i64)
    .bind(ORGANISATIONS as i64)
    .execute(&mut *conn)
    .await
    .unwrap();
    // The service records each organisation as it writes a request; this bulk load does it once.
    sqlx::query("INSERT INTO organisations (name) SELECT DISTINCT organisation FROM requests ON CONFLICT DO NOTHING")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO certificates (id, request_id, serial_hex, issuer, pem, chain_pem, not_before, not_after, sha256, spki_sha256)
         SELECT ('c' || lpad(to_hex(i), 31, '0'))::uuid, lpad(to_hex(i), 32, '0')::uuid, to_hex(i * 7919 + 1), 'CN=bench',
                'pem', 'chain', timestamptz '2026-01-01', timestamptz '2027-01-01',
                sha256(int8send(-i)), sha256(int8send(i))
         FROM generate_series(1, $1) AS i",
    )
    .bind(count as i64)
    .execute(&mut *conn)
    .await
    .unwrap();
}

/// Events chained as the service chains them, computed here and copied in with the
/// triggers off.
async fn load_events(conn: &mut PgConnection, count: u64, requests: u64) {
    sqlx::query("ALTER TABLE events DISABLE TRIGGER USER").execute(&mut *conn).await.unwrap();
    let base_micros: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z
    let mut copy = conn
        .copy_in_raw("COPY events (at, actor, request_id, kind, detail, seq, prev_hash, hash) FROM STDIN")
        .await
        .unwrap();
    let mut previous: Option<[u8; 32]> = None;
    let mut chunk = String::with_capacity(8 << 20);
    for seq in 1..=count as i64 {
        let micros = base_micros + seq * 1_000;
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1_000).unwrap();
        let actor = format!("account:op{}", seq % 20);
        let request_id = uuid::Uuid::from_u128((seq as u64 % requests + 1) as u128).to_string();
        let kind = KINDS[seq as usize % KINDS.len()];
        let detail = format!("{{\"n\": {seq}}}");
        let hash = ozo_domain::audit::ChainEvent {
            seq,
            id: seq,
            at_unix_micros: micros,
            actor: &actor,
            request_id: Some(&request_id),
            kind,
            detail: &detail,
            prev_hash: None,
            hash: &[],
        }
        .expected_hash(previous.as_ref().map(|hash| hash.as_slice()));
        let prev = previous.map(|hash| format!("\\\\x{}", hex::encode(hash))).unwrap_or_else(|| "\\N".to_owned());
        let at_text = at.format(&time::format_description::well_known::Rfc3339).unwrap();
        chunk.push_str(&format!(
            "{at_text}\t{actor}\t{request_id}\t{kind}\t{detail}\t{seq}\t{prev}\t\\\\x{}\n",
            hex::encode(hash)
        ));
        previous = Some(hash);
        if chunk.len() > (8 << 20) - 4096 {
            copy.send(chunk.as_bytes()).await.unwrap();
            chunk.clear();
        }
    }
    copy.send(chunk.as_bytes()).await.unwrap();
    copy.finish().await.unwrap();
    sqlx::query("ALTER TABLE events ENABLE TRIGGER USER").execute(&mut *conn).await.unwrap();
}

/// Runs a COPY … TO STDOUT and counts its rows.
async fn copy_out(conn: &mut PgConnection, statement: &str) -> u64 {
    let mut stream = conn.copy_out_raw(statement).await.unwrap();
    let mut rows = 0u64;
    while let Some(chunk) = stream.next().await {
        rows += chunk.unwrap().iter().filter(|&&b| b == b'\n').count() as u64;
    }
    rows
}
