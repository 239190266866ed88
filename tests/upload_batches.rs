//! Uploads written in batches: the batch statement gives each upload the outcome it would
//! get on its own, and concurrent uploads through the service each get their own response.

use ozo_store::requests::{self, NewRequest, Recorded};
use ozo_system_tests::*;
use sha2::{Digest, Sha256};
use uuid::Uuid;

fn key(name: &str) -> Vec<u8> {
    Sha256::digest(name.as_bytes()).to_vec()
}

fn pending<'a>(id: Uuid, organisation: &'a str, spki: &'a [u8], token: &'a [u8], invitation: Option<Uuid>) -> NewRequest<'a> {
    NewRequest {
        id,
        environment: "staging",
        organisation,
        contact: "it@example.nl",
        status: ozo_domain::RequestStatus::Pending,
        csr_der: Some(b"not parsed by the store".as_slice()),
        spki_sha256: Some(spki),
        findings: &[],
        invitation_id: invitation,
        unverified: invitation.is_none(),
        status_token_sha256: Some(token),
    }
}

async fn add_invitation(pool: &sqlx::PgPool, environments: &[&str], used: &[&str]) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO invitations (id, code_sha256, organisation, contact, environments, used_environments, created_by, expires_at)
         VALUES ($1, $2, 'Wijkzorg Oost', 'it@wijkzorg.example', $3, $4, 'cli', now() + interval '1 day')",
    )
    .bind(id)
    .bind(key(&id.to_string()))
    .bind(environments)
    .bind(used)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// Stores a pending request, a rejected one whose private key was sent, an open
/// invitation for both environments and one already used for staging. Returns the two
/// keys, then the two invitations.
async fn store_earlier_uploads(pool: &sqlx::PgPool) -> (Vec<u8>, Vec<u8>, Uuid, Uuid) {
    let (reused, exposed) = (key("reused"), key("exposed"));
    sqlx::query(
        "INSERT INTO requests (id, environment, organisation, contact, status, csr_der, spki_sha256, findings, unverified)
         VALUES ($1, 'staging', 'Eerder', 'it@example.nl', 'pending', '\\x30', $2, '[]', true),
                ($3, 'staging', 'Eerder', 'it@example.nl', 'rejected', NULL, $4,
                 '[{\"code\": \"private-key\", \"severity\": \"error\", \"en\": \"\", \"nl\": \"\"}]', true)",
    )
    .bind(Uuid::new_v4())
    .bind(&reused)
    .bind(Uuid::new_v4())
    .bind(&exposed)
    .execute(pool)
    .await
    .unwrap();
    let open = add_invitation(pool, &["staging", "production"], &[]).await;
    let used = add_invitation(pool, &["staging"], &["staging"]).await;

    (reused, exposed, open, used)
}

/// Makes ids, keys and status tokens for six new uploads.
fn new_uploads() -> (Vec<Uuid>, Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let ids = (0..6).map(|_| Uuid::new_v4()).collect();
    let keys = (0..6).map(|n| key(&format!("new {n}"))).collect();
    let tokens = (0..6).map(|n| key(&format!("token {n}"))).collect();
    (ids, keys, tokens)
}

/// Builds six uploads on the earlier ones: a new key, the exposed key, the reused key,
/// the open invitation, the used invitation, and a new organisation.
fn six_uploads<'a>(
    ids: &[Uuid],
    keys: &'a [Vec<u8>],
    tokens: &'a [Vec<u8>],
    (exposed, reused): (&'a [u8], &'a [u8]),
    (open, used): (Uuid, Uuid),
) -> Vec<NewRequest<'a>> {
    vec![
        pending(ids[0], "Huisarts West", &keys[0], &tokens[0], None),
        pending(ids[1], "Huisarts West", exposed, &tokens[1], None),
        pending(ids[2], "Huisarts West", reused, &tokens[2], None),
        pending(ids[3], "Wijkzorg Oost", &keys[3], &tokens[3], Some(open)),
        pending(ids[4], "Wijkzorg Oost", &keys[4], &tokens[4], Some(used)),
        pending(ids[5], "Nieuwe Zorg", &keys[5], &tokens[5], None),
    ]
}

/// Checks what the accepted ones of [`six_uploads`] wrote: the open invitation is used for
/// staging only, the events of `accepted` are queued in that order and nothing else is,
/// and the new organisation is listed.
async fn check_accepted_writes(pool: &sqlx::PgPool, open: Uuid, accepted: &[Uuid]) {
    let open_used: Vec<String> =
        sqlx::query_scalar("SELECT used_environments FROM invitations WHERE id = $1").bind(open).fetch_one(pool).await.unwrap();
    assert_eq!(open_used, ["staging"]);

    let queued: Vec<Uuid> =
        sqlx::query_scalar("SELECT request_id FROM event_queue ORDER BY id").fetch_all(pool).await.unwrap();
    assert_eq!(queued, accepted);

    let organisations: Vec<String> =
        sqlx::query_scalar("SELECT name FROM organisations ORDER BY name").fetch_all(pool).await.unwrap();
    assert!(organisations.contains(&"Nieuwe Zorg".to_owned()), "{organisations:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_statement_gives_each_upload_its_outcome() {
    let db = TestDb::create().await;
    let pool = db.pool().await;
    let mut conn = pool.acquire().await.unwrap();

    let (reused, exposed, open, used) = store_earlier_uploads(&pool).await;

    let (ids, keys, tokens) = new_uploads();
    let batch = six_uploads(&ids, &keys, &tokens, (&exposed, &reused), (open, used));
    let batch: Vec<_> = batch.into_iter().map(|request| (serde_json::json!({ "n": request.id }), request)).map(|(detail, request)| (request, detail)).collect();

    let outcomes = requests::record_uploads(&mut conn, &batch).await.unwrap();

    let names: Vec<String> = outcomes
        .iter()
        .map(|outcome| match outcome {
            Recorded::Pending(row) => format!("pending {}", row.organisation),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        ["pending Huisarts West", "KeyExposed", "KeyReuse", "pending Wijkzorg Oost", "InvitationUnavailable", "pending Nieuwe Zorg"]
    );
    let Recorded::Pending(row) = &outcomes[3] else { unreachable!() };
    assert_eq!((row.id, row.invitation_id, row.unverified), (ids[3], Some(open), false));

    check_accepted_writes(&pool, open, &[ids[0], ids[3], ids[5]]).await;

    // Two uploads of one key in one batch fail it as a whole, and nothing is written.
    let twice = key("twice");
    let again = vec![
        (pending(Uuid::new_v4(), "Huisarts West", &twice, &tokens[1], None), serde_json::json!({})),
        (pending(Uuid::new_v4(), "Huisarts West", &twice, &tokens[2], None), serde_json::json!({})),
    ];
    assert!(requests::record_uploads(&mut conn, &again).await.is_err());
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM requests").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 5);

    drop(conn);
    pool.close().await;
    db.drop_database().await;
}

/// Records the uploads of the batch test one at a time, as the service records a lone
/// upload with a statement of its own, and expects the same outcomes and writes.
#[tokio::test(flavor = "multi_thread")]
async fn lone_statement_gives_the_same_outcomes() {
    let db = TestDb::create().await;
    let pool = db.pool().await;
    let mut conn = pool.acquire().await.unwrap();
    let (reused, exposed, open, used) = store_earlier_uploads(&pool).await;

    let (ids, keys, tokens) = new_uploads();
    let uploads = six_uploads(&ids, &keys, &tokens, (&exposed, &reused), (open, used));
    let mut names = Vec::new();
    for upload in uploads {
        let detail = serde_json::json!({ "n": upload.id });
        let mut outcomes = requests::record_uploads(&mut conn, &[(upload, detail)]).await.unwrap();
        assert_eq!(outcomes.len(), 1);
        names.push(match outcomes.remove(0) {
            Recorded::Pending(row) => format!("pending {} {:?} {}", row.organisation, row.invitation_id, row.unverified),
            other => format!("{other:?}"),
        });
    }

    assert_eq!(
        names,
        [
            "pending Huisarts West None true".to_owned(),
            "KeyExposed".to_owned(),
            "KeyReuse".to_owned(),
            format!("pending Wijkzorg Oost Some({open}) false"),
            "InvitationUnavailable".to_owned(),
            "pending Nieuwe Zorg None true".to_owned(),
        ]
    );
    check_accepted_writes(&pool, open, &[ids[0], ids[3], ids[5]]).await;

    // The same key once more is key reuse, and nothing more is written.
    let token = key("token again");
    let again = pending(Uuid::new_v4(), "Huisarts West", &keys[0], &token, None);
    let outcomes = requests::record_uploads(&mut conn, &[(again, serde_json::json!({}))]).await.unwrap();
    assert!(matches!(outcomes[..], [Recorded::KeyReuse]), "{outcomes:?}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM requests").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 5);

    drop(conn);
    pool.close().await;
    db.drop_database().await;
}

/// Staging takes uploads without an invitation, with limits that this test stays under.
const CONFIG: &str = r#"
[rate_limits]
uploads_per_address_per_10_minutes = 1000
uploads_per_invitation_per_10_minutes = 100

[environments.staging]
common_name = "connect.zorgverband.nl"
organization = "OZOverbindzorg"
allow_uploads_without_invitation = true
[environments.staging.ca]
backend = "local"

[environments.production]
common_name = "zorgverband.nl"
organization = "OZOverbindzorg"
[environments.production.ca]
backend = "local"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_uploads_get_their_own_responses() {
    let db = TestDb::create().await;
    let server = TestServer::start_with_config(&db.url, Some(CONFIG));
    let code = server.invitation(&server.inviter(), "Zorggroep Noord", &["staging", "production"]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    // 16 distinct keys, one key sent 4 times, and one invitation used for both
    // environments at once.
    let mut uploads: Vec<(std::path::PathBuf, String)> = Vec::new();
    let unverified = "environment=staging&organisation=Zorg%20Zuid&contact=it%40zuid.example".to_owned();
    for n in 0..16 {
        uploads.push((make_csr(dir, &format!("distinct-{n}"), STAGING_SUBJECT).1, unverified.clone()));
    }
    let (_, shared) = make_csr(dir, "shared", STAGING_SUBJECT);
    for _ in 0..4 {
        uploads.push((shared.clone(), unverified.clone()));
    }
    let (_, staging) = make_csr(dir, "invited-staging", STAGING_SUBJECT);
    let (_, production) = make_csr(dir, "invited-production", PRODUCTION_SUBJECT);
    uploads.push((staging, format!("environment=staging&invitation={code}")));
    uploads.push((production, format!("environment=production&invitation={code}")));

    let base = server.url("");
    let barrier = std::sync::Barrier::new(uploads.len());
    let responses: Vec<CurlResponse> = std::thread::scope(|scope| {
        let threads: Vec<_> = uploads
            .iter()
            .map(|(csr, query)| {
                let (barrier, base) = (&barrier, &base);
                scope.spawn(move || {
                    barrier.wait();
                    curl(&["-X", "POST", "--data-binary", &format!("@{}", csr.display()), &format!("{base}/api/v1/requests?{query}")])
                })
            })
            .collect();
        threads.into_iter().map(|thread| thread.join().unwrap()).collect()
    });

    for response in responses[..16].iter().chain(&responses[20..]) {
        assert_eq!(response.status, 201, "{}", response.body);
    }
    let shared_statuses: Vec<_> = responses[16..20].iter().map(|response| response.status).collect();
    assert_eq!(shared_statuses.iter().filter(|&&status| status == 201).count(), 1, "{shared_statuses:?}");
    for response in responses[16..20].iter().filter(|response| response.status != 201) {
        assert_eq!(response.status, 422, "{}", response.body);
        assert_eq!(response.json()["reason"], "key-reuse", "{}", response.body);
    }

    // Each response's request is stored, and every upload that passed validation went
    // through the writers.
    let pool = db.pool().await;
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM requests WHERE status = 'pending'").fetch_one(&pool).await.unwrap();
    assert_eq!(pending, 19);
    let metrics = curl(&[&server.url("/metrics")]).body;
    let written = metrics
        .lines()
        .find_map(|line| line.strip_prefix("ozo_upload_batch_size_sum ")?.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no ozo_upload_batch_size_sum in:\n{metrics}"));
    assert_eq!(written, 22.0);

    // The audit log contains each upload's event once, and its chain is intact.
    let verified = server.command(&["audit", "verify"], "");
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));
    let kinds: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, count(*) FROM events WHERE actor = 'client' GROUP BY kind ORDER BY kind")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(kinds, [("request.received".to_owned(), 19), ("request.rejected".to_owned(), 3)]);

    pool.close().await;
    drop(server);
    db.drop_database().await;
}
