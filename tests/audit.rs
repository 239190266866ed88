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

/// Adds an auditor account, signs it in to the pages and returns the cookie jar's path.
fn sign_in_auditor(server: &TestServer, dir: &std::path::Path) -> String {
    let added = server.command(&["user", "add", "astrid-pages", "--role", "auditor"], "a long enough password\n");
    assert!(added.status.success());
    let jar = dir.join("cookies.txt").display().to_string();
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
    jar
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
    let jar = sign_in_auditor(&server, work.path());
    let page = curl(&["-b", &jar, &server.url("/audit?verify=1")]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("The event chain is intact; events checked"), "{}", page.body);

    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_request_has_its_whole_history_on_one_page() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    let operator = server.operator_token("olle", "operator");
    let auditor = server.operator_token("astrid", "auditor");
    let operator_auth = format!("Authorization: Bearer {operator}");
    let auth = format!("Authorization: Bearer {auditor}");
    let work = tempfile::tempdir().unwrap();
    let upload = |name: &str, subject: &str, code: &str| {
        let (_, csr) = make_csr(work.path(), name, subject);
        curl(&[
            "-X",
            "POST",
            "--data-binary",
            &format!("@{}", csr.display()),
            &server.url(&format!("/api/v1/requests?environment=staging&invitation={code}")),
        ])
    };
    let post = |path: String, body: serde_json::Value| {
        let body = body.to_string();
        curl(&[
            "-X",
            "POST",
            "-H",
            &operator_auth,
            "-H",
            "Content-Type: application/json",
            "--data",
            &body,
            &server.url(&path),
        ])
    };
    let history = |id: &str| {
        let response = curl(&["-H", &auth, &server.url(&format!("/api/v1/audit/requests/{id}"))]);
        assert_eq!(response.status, 200, "{}", response.body);
        response.json()
    };
    let kinds = |history: &serde_json::Value| -> Vec<String> {
        history["events"].as_array().unwrap().iter().map(|event| event["kind"].as_str().unwrap().to_owned()).collect()
    };

    // A rejected CSR, then an issued and revoked certificate, on one invitation.
    let code = server.invitation(&server.inviter(), "Zorggroep De Linde", &["staging"]);
    let rejected = upload("wrong-subject", PRODUCTION_SUBJECT, &code);
    assert_eq!(rejected.status, 422, "{}", rejected.body);
    let rejected_id = rejected.json()["request_id"].as_str().unwrap().to_owned();
    // A rejected upload records its organisation too.
    let names = curl(&["-H", &auth, &server.url("/api/v1/audit/organisations?contains=linde")]).json();
    assert_eq!(names["organisations"], serde_json::json!(["Zorggroep De Linde"]));
    let issued = upload("client", STAGING_SUBJECT, &code);
    assert_eq!(issued.status, 201, "{}", issued.body);
    let issued_id = issued.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(server.approve(&[&operator], &issued_id).json()["status"], "issued");
    let revoked =
        post(format!("/api/v1/requests/{issued_id}/revoke"), serde_json::json!({ "reason": "keyCompromise" }));
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    // A denied request of another organisation.
    let other_code = server.invitation(&server.inviter(), "Thuiszorg Oost", &["staging"]);
    let denied = upload("other", STAGING_SUBJECT, &other_code);
    let denied_id = denied.json()["id"].as_str().unwrap().to_owned();
    let reason = "Thuiszorg Oost has no contract with OZO.";
    assert_eq!(post(format!("/api/v1/requests/{denied_id}/deny"), serde_json::json!({ "reason": reason })).status, 200);

    // The issued and revoked certificate: who asked, who approved what, the certificate,
    // and every event in chain order with the same hash as in the event log.
    let record = history(&issued_id);
    assert_eq!(record["request"]["organisation"], "Zorggroep De Linde");
    assert_eq!(record["request"]["status"], "revoked");
    let approvals = record["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0]["account"], "olle");
    assert_eq!(approvals[0]["digest"].as_str().unwrap().len(), 64);
    let serial = record["certificate"]["serial_hex"].as_str().unwrap().to_owned();
    assert_eq!(record["certificate"]["revocation_reason"], "keyCompromise");
    assert_eq!(
        kinds(&record),
        [
            "request.received",
            "request.approval_recorded",
            "request.approved",
            "certificate.issued",
            "certificate.revoked",
            "certificate.revocation_confirmed",
        ],
    );
    let seqs: Vec<i64> =
        record["events"].as_array().unwrap().iter().map(|event| event["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "chain order: {seqs:?}");
    let logged = curl(&["-H", &auth, &server.url(&format!("/api/v1/events?request={issued_id}"))]).json();
    let mut logged = logged["events"].as_array().unwrap().clone();
    logged.reverse();
    assert_eq!(record["events"].as_array().unwrap(), &logged);

    // The rejected and the denied request keep their findings and reason.
    let record = history(&rejected_id);
    assert_eq!(record["request"]["status"], "rejected");
    assert_eq!(record["findings"][0]["code"], "wrong-environment", "{record}");
    assert_eq!(record["events"][0]["detail"]["findings"], serde_json::json!(["wrong-environment"]));
    assert!(record["certificate"].is_null());
    assert_eq!(kinds(&record), ["request.rejected"]);
    let record = history(&denied_id);
    assert_eq!(record["request"]["status_reason"], reason);
    assert_eq!(kinds(&record), ["request.received", "request.denied"]);
    assert_eq!(record["events"][1]["detail"]["reason"], reason, "{record}");

    // The organisation filter takes a whole name; the names are listed for it.
    let names = curl(&["-H", &auth, &server.url("/api/v1/audit/organisations?contains=ZORG")]).json();
    assert_eq!(names["organisations"], serde_json::json!(["Thuiszorg Oost", "Zorggroep De Linde"]));
    let whole = curl(&["-H", &auth, &server.url("/api/v1/audit/requests?organisation=zorggroep%20de%20linde")]).json();
    assert_eq!(whole["records"].as_array().unwrap().len(), 2, "{whole}");
    let part = curl(&["-H", &auth, &server.url("/api/v1/audit/requests?organisation=linde")]).json();
    assert_eq!(part["records"].as_array().unwrap().len(), 0, "{part}");

    // Only auditors read it.
    let as_operator = curl(&["-H", &operator_auth, &server.url(&format!("/api/v1/audit/requests/{issued_id}"))]);
    assert_eq!(as_operator.status, 403);
    let unknown = curl(&["-H", &auth, &server.url(&format!("/api/v1/audit/requests/{}", uuid::Uuid::new_v4()))]);
    assert_eq!(unknown.status, 404);

    // The page, reached by the certificate's serial.
    let jar = sign_in_auditor(&server, work.path());
    let by_serial = curl(&["-b", &jar, "-L", &server.url(&format!("/audit/certificates/{}", serial.to_uppercase()))]);
    assert_eq!(by_serial.status, 200, "{}", by_serial.body);
    assert!(by_serial.body.contains(&format!("<code>{serial}</code>")), "{}", by_serial.body);
    for event in &logged {
        assert!(by_serial.body.contains(event["hash"].as_str().unwrap()), "the page shows each event's hash");
    }
    assert!(by_serial.body.contains("keyCompromise"));
    let missing = curl(&["-b", &jar, &server.url("/audit/certificates/abcdef")]);
    assert_eq!(missing.status, 404);
    let search = curl(&["-b", &jar, &server.url("/audit/requests")]);
    assert!(search.body.contains(r#"<option value="Zorggroep De Linde">"#), "{}", search.body);
    assert!(search.body.contains(&format!(r#"href="/audit/requests/{issued_id}""#)));

    drop(server);
    db.drop_database().await;
}

/// Uploads queue their event and a background step chains it; every other action, and
/// every reader of the log, chains what is queued first. Uploads and approvals running
/// side by side must still give one intact chain in which each request's upload comes
/// before its approval, and an auditor must see an upload's event at once.
#[tokio::test(flavor = "multi_thread")]
async fn queued_events_join_the_chain_in_order() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    let operator = server.operator_token("olle", "operator");
    let auditor = server.operator_token("astrid", "auditor");
    let auth = format!("Authorization: Bearer {auditor}");
    let work = tempfile::tempdir().unwrap();
    let codes: Vec<String> =
        (0..12).map(|n| server.invitation(&server.inviter(), &format!("Zorg {n}"), &["staging"])).collect();
    let csrs: Vec<_> = (0..12).map(|n| make_csr(work.path(), &format!("client-{n}"), STAGING_SUBJECT).1).collect();

    // An auditor reads an upload's event right after the upload returns.
    let base = server.url("");
    let upload = |n: usize| {
        let uploaded = curl(&[
            "-X",
            "POST",
            "--data-binary",
            &format!("@{}", csrs[n].display()),
            &format!("{base}/api/v1/requests?environment=staging&invitation={}", codes[n]),
        ]);
        assert_eq!(uploaded.status, 201, "{}", uploaded.body);
        uploaded.json()["id"].as_str().unwrap().to_owned()
    };
    let approve = |id: &str| {
        let url = format!("{base}/api/v1/requests/{id}/approve");
        let approved = curl(&["-X", "POST", "-H", &format!("Authorization: Bearer {operator}"), &url]);
        assert_eq!(approved.json()["status"], "issued", "{}", approved.body);
    };
    let first = upload(0);
    let history = curl(&["-H", &auth, &server.url(&format!("/api/v1/audit/requests/{first}"))]).json();
    assert_eq!(history["events"][0]["kind"], "request.received", "{history}");

    // Four threads upload; two of them approve each request right away.
    let ids: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|thread| {
                let (upload, approve) = (&upload, &approve);
                scope.spawn(move || {
                    let mut ids = Vec::new();
                    for n in (1..12).filter(|n| n % 4 == thread) {
                        let id = upload(n);
                        if thread % 2 == 0 {
                            approve(&id);
                        }
                        ids.push(id);
                    }
                    ids
                })
            })
            .collect();
        workers.into_iter().flat_map(|worker| worker.join().unwrap()).collect()
    });
    assert_eq!(ids.len(), 11);

    // Without any reader, the background step empties the queue.
    let pool = db.pool().await;
    let mut queued: i64 = -1;
    for _ in 0..50 {
        queued = sqlx::query_scalar("SELECT count(*) FROM event_queue").fetch_one(&pool).await.unwrap();
        if queued == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(queued, 0, "events still queued after 5 s");

    let received: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE kind = 'request.received'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(received, 12);
    let out_of_order: Vec<String> = sqlx::query_scalar(
        "SELECT approval.request_id::text FROM events approval
         JOIN events received ON received.request_id = approval.request_id AND received.kind = 'request.received'
         WHERE approval.kind = 'request.approval_recorded' AND approval.seq < received.seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(out_of_order, Vec::<String>::new());
    let approvals: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE kind = 'request.approval_recorded'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(approvals, 5, "threads 0 and 2 approve requests 2, 4, 6, 8 and 10");

    let (intact, text) = verify(&server);
    assert!(intact, "{text}");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.unwrap();
    assert!(text.contains(&format!("the event chain is intact: {events} events checked")), "{text}");

    drop(server);
    db.drop_database().await;
}

/// Checks each insert into the chain: an event with a wrong hash, a gap before it or a
/// link to an event other than the head is rejected, and a correct continuation is not.
#[tokio::test(flavor = "multi_thread")]
async fn inserted_events_must_continue_the_chain() {
    let db = TestDb::create().await;
    let pool = db.pool().await;
    for kind in ["test.first", "test.second"] {
        sqlx::query("SELECT append_event('tester', NULL, $1, '{}')").bind(kind).execute(&pool).await.unwrap();
    }
    sqlx::query("INSERT INTO event_queue (actor, kind, detail) VALUES ('tester', 'test.third', '{\"n\": 3}')")
        .execute(&pool)
        .await
        .unwrap();
    let moved: i64 = sqlx::query_scalar("SELECT chain_queued_events()").fetch_one(&pool).await.unwrap();
    assert_eq!(moved, 1);

    // Inserts one event at `place`, linked to the event at `link`, with the SQL expression
    // `hash` as its hash.
    let insert = |place: i64, link: i64, hash: &'static str| {
        let pool = pool.clone();
        async move {
            let statement = format!(
                "INSERT INTO events (at, actor, kind, detail, seq, prev_hash, hash)
                 SELECT t, 'tester', 'test.inserted', '{{}}', $1, e.hash, {hash}
                 FROM events e, (SELECT date_trunc('second', now()) AS t) AS clock WHERE e.seq = $2"
            );
            sqlx::query(&statement).bind(place).bind(link).execute(&pool).await
        }
    };
    let correct_hash = "event_hash(e.hash, $1, t, 'tester', NULL, 'test.inserted', '{}')";

    let rejected = [
        ("a wrong hash", insert(4, 3, "sha256('not the event')").await),
        ("a gap", insert(5, 3, correct_hash).await),
        ("a link to an older event", insert(4, 2, correct_hash).await),
    ];
    for (case, result) in rejected {
        let error = result.expect_err(case);
        assert!(error.to_string().contains("the event at place"), "{case}: {error}");
        assert!(error.to_string().contains("does not continue the event chain"), "{case}: {error}");
    }
    let accepted = insert(4, 3, correct_hash).await.unwrap();
    assert_eq!(accepted.rows_affected(), 1);

    let chain: Vec<(i64, String, bool, bool)> = sqlx::query_as(
        "SELECT seq, kind, hash = event_hash(prev_hash, seq, at, actor, request_id, kind, detail),
                prev_hash IS NOT DISTINCT FROM lag(hash) OVER (ORDER BY seq)
         FROM events ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected = [(1, "test.first"), (2, "test.second"), (3, "test.third"), (4, "test.inserted")];
    assert_eq!(chain.len(), expected.len(), "{chain:?}");
    for ((seq, kind, hashed, linked), (expected_seq, expected_kind)) in chain.iter().zip(expected) {
        assert_eq!((*seq, kind.as_str(), *hashed, *linked), (expected_seq, expected_kind, true, true), "{chain:?}");
    }
    pool.close().await;
    db.drop_database().await;
}
