//! The tamper evidence of the event log, black box: the service writes events through
//! its normal work, then someone with superuser access to the database changes, deletes
//! and reorders single events with the triggers disabled, and `ozo-signer audit verify`
//! names the first broken event each time.

use ozo_system_tests::*;

/// Runs `ozo-signer audit verify` and returns whether it passed and what it printed.
fn verify(server: &TestServer) -> (bool, String) {
    let output = server.command(&["audit", "verify"], "");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_names_each_tampered_event() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    let token = server.operator_token("vera", "operator");
    let code = server.invitation(&server.inviter(), "Ketenzorg Midden", &["staging"]);
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
    assert_eq!(server.approve(&[&token], &id).json()["status"], "issued");

    let pool = db.pool().await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 5, "invitation, upload, approval, approved, issued");
    let (intact, text) = verify(&server);
    assert!(intact, "{text}");
    assert!(text.contains("the event chain is intact: 5 events checked, head hash "), "{text}");

    // The service's own statements cannot change or remove events.
    let update = sqlx::query("UPDATE events SET kind = 'x' WHERE seq = 1").execute(&pool).await.unwrap_err();
    assert!(update.to_string().contains("events are append-only: UPDATE is not allowed"), "{update}");
    let delete = sqlx::query("DELETE FROM events WHERE seq = 5").execute(&pool).await.unwrap_err();
    assert!(delete.to_string().contains("events are append-only: DELETE is not allowed"), "{delete}");
    let truncate = sqlx::query("TRUNCATE events").execute(&pool).await.unwrap_err();
    assert!(truncate.to_string().contains("append-only"), "{truncate}");

    // A superuser can switch the triggers off, as an attacker with database access would.
    sqlx::query("ALTER TABLE events DISABLE TRIGGER USER").execute(&pool).await.unwrap();
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM events ORDER BY seq").fetch_all(&pool).await.unwrap();

    // A changed event.
    let original: String =
        sqlx::query_scalar("SELECT detail::text FROM events WHERE seq = 3").fetch_one(&pool).await.unwrap();
    sqlx::query("UPDATE events SET detail = '{\"approvals\": 2}' WHERE seq = 3").execute(&pool).await.unwrap();
    let (intact, text) = verify(&server);
    assert!(!intact, "{text}");
    assert!(text.contains(&format!("event {} (place 3) does not match its hash", ids[2])), "{text}");
    sqlx::query("UPDATE events SET detail = $1::jsonb WHERE seq = 3").bind(&original).execute(&pool).await.unwrap();
    assert!(verify(&server).0, "restoring the content restores the chain");

    // A deleted event.
    sqlx::query("CREATE TABLE removed AS SELECT * FROM events WHERE seq = 4").execute(&pool).await.unwrap();
    sqlx::query("DELETE FROM events WHERE seq = 4").execute(&pool).await.unwrap();
    let (intact, text) = verify(&server);
    assert!(!intact, "{text}");
    assert!(
        text.contains(&format!("event {} is at place 5 of the chain, where place 4 was expected", ids[4])),
        "{text}"
    );
    sqlx::query("INSERT INTO events OVERRIDING SYSTEM VALUE SELECT * FROM removed").execute(&pool).await.unwrap();
    assert!(verify(&server).0, "putting the event back restores the chain");

    // Two events swapped.
    for statement in [
        "UPDATE events SET seq = -2 WHERE seq = 2",
        "UPDATE events SET seq = 2 WHERE seq = 3",
        "UPDATE events SET seq = 3 WHERE seq = -2",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let (intact, text) = verify(&server);
    assert!(!intact, "{text}");
    assert!(text.contains(&format!("event {} (place 2) does not link to the event before it", ids[2])), "{text}");
    assert!(text.contains("after 1 intact events"), "{text}");

    sqlx::query("ALTER TABLE events ENABLE TRIGGER USER").execute(&pool).await.unwrap();
    pool.close().await;
    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn export_matches_the_api_and_pages_verify() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    let operator = server.operator_token("olle", "operator");
    let auditor = server.operator_token("astrid", "auditor");
    let work = tempfile::tempdir().unwrap();
    for index in 0..3 {
        let code = server.invitation(&server.inviter(), &format!("Zorg {index}"), &["staging"]);
        let (_, csr) = make_csr(work.path(), &format!("client-{index}"), STAGING_SUBJECT);
        let upload = curl(&[
            "-X",
            "POST",
            "--data-binary",
            &format!("@{}", csr.display()),
            &server.url(&format!("/api/v1/requests?environment=staging&invitation={code}")),
        ]);
        let id = upload.json()["id"].as_str().unwrap().to_owned();
        server.approve(&[&operator], &id);
    }
    let auth = format!("Authorization: Bearer {auditor}");

    let searched = curl(&["-H", &auth, &server.url("/api/v1/events?kind=certificate.issued")]);
    assert_eq!(searched.status, 200, "{}", searched.body);
    let events = searched.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 3);
    assert!(events.windows(2).all(|pair| pair[0]["seq"].as_i64() > pair[1]["seq"].as_i64()), "newest first");

    // The JSON Lines export of the same filter contains exactly the API's rows.
    let exported = curl(&["-H", &auth, &server.url("/api/v1/events/export?kind=certificate.issued&format=jsonl")]);
    assert_eq!(exported.status, 200);
    let lines: Vec<serde_json::Value> = exported.body.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines, events);
    let csv = curl(&["-H", &auth, &server.url("/api/v1/events/export?kind=certificate.issued&format=csv")]);
    let rows: Vec<&str> = csv.body.lines().collect();
    assert_eq!(rows[0], "seq,at,actor,request_id,kind,detail,hash");
    assert_eq!(rows.len(), 4);
    assert!(rows[1].starts_with(&format!("{},", events[0]["seq"])), "{}", rows[1]);

    // Requests and certificates, by organisation, serial and key fingerprint.
    let by_organisation = curl(&["-H", &auth, &server.url("/api/v1/audit/requests?organisation=zorg%201")]);
    assert_eq!(by_organisation.status, 200, "{}", by_organisation.body);
    let records = by_organisation.json()["records"].as_array().unwrap().clone();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["organisation"], "Zorg 1");
    assert_eq!(records[0]["status"], "issued");
    let serial = records[0]["serial_hex"].as_str().unwrap().to_owned();
    let spki = records[0]["spki_sha256"].as_str().unwrap().to_owned();
    for filter in [format!("serial={}", serial.to_uppercase()), format!("serial=00{serial}"), format!("spki={spki}")] {
        let found = curl(&["-H", &auth, &server.url(&format!("/api/v1/audit/requests?{filter}"))]).json();
        assert_eq!(found["records"].as_array().unwrap(), &records, "{filter}");
    }
    let all = curl(&["-H", &auth, &server.url("/api/v1/audit/requests?environment=staging")]).json();
    let all = all["records"].as_array().unwrap().clone();
    assert_eq!(all.len(), 3);
    let exported = curl(&["-H", &auth, &server.url("/api/v1/audit/requests/export?environment=staging&format=jsonl")]);
    let lines: Vec<serde_json::Value> = exported.body.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines, all, "the export holds exactly the API's records");
    let bad = curl(&["-H", &auth, &server.url("/api/v1/audit/requests?spki=xyz")]);
    assert_eq!(bad.status, 400);
    assert!(bad.json()["detail"].as_str().unwrap().contains("expected 64 hex digits"));

    // Only auditors read the log.
    let as_operator = curl(&["-H", &format!("Authorization: Bearer {operator}"), &server.url("/api/v1/events")]);
    assert_eq!(as_operator.status, 403);
    let bad_format = curl(&["-H", &auth, &server.url("/api/v1/events/export?format=xml")]);
    assert_eq!(bad_format.status, 400);
    assert!(bad_format.json()["detail"].as_str().unwrap().contains("expected csv or jsonl"));

    // The auditor's page checks the chain.
    let added = server.command(&["user", "add", "astrid-pages", "--role", "auditor"], "a long enough password\n");
    assert!(added.status.success());
    let jar = work.path().join("cookies.txt").display().to_string();
    let login = curl(&[
        "-c",
        &jar,
        "--data-urlencode",
        "name=astrid-pages",
        "--data-urlencode",
        "password=a long enough password",
        &server.url("/login"),
    ]);
    assert_eq!(login.status, 303);
    let page = curl(&["-b", &jar, &server.url("/audit?verify=1")]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("The event chain is intact; events checked"), "{}", page.body);

    drop(server);
    db.drop_database().await;
}
