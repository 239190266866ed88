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
