//! The append-only event log.

use serde_json::Value;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// The originator of an event.
#[derive(Clone, Debug)]
pub enum Actor {
    /// A person or automation signed in with an account.
    Account(String),
    /// A client uploading a CSR.
    Client,
    /// The signing step of the service itself.
    Signer,
    /// The command line, run by someone with access to the database.
    Cli,
}

impl Actor {
    pub fn as_text(&self) -> String {
        match self {
            Actor::Account(name) => format!("account:{name}"),
            Actor::Client => "client".to_owned(),
            Actor::Signer => "signer".to_owned(),
            Actor::Cli => "cli".to_owned(),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Event {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub kind: String,
    pub detail: Value,
}

/// Records an event and chains it at once, together with every event queued before it,
/// so that the log shows it as soon as the transaction commits. It takes the chain's
/// lock until the transaction ends, so appends and chaining passes take turns. Use it for
/// actions that are rare, and [`queue`] on the upload path.
#[tracing::instrument(name = "db.append_event", skip(conn, detail))]
pub async fn append(
    conn: &mut PgConnection,
    actor: &Actor,
    request_id: Option<Uuid>,
    kind: &str,
    detail: Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT append_event($1, $2, $3, $4)", actor.as_text(), request_id, kind, detail)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records an event in the queue, from which [`chain_queued`] moves it into the chain
/// once the transaction has committed. It holds the queue writers' lock in shared mode
/// until the transaction ends, so that a chaining pass can tell which ids are final.
#[tracing::instrument(name = "db.queue_event", skip(conn, detail))]
pub async fn queue(
    conn: &mut PgConnection,
    actor: &Actor,
    request_id: Option<Uuid>,
    kind: &str,
    detail: Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"WITH writer_lock AS (SELECT pg_advisory_xact_lock_shared(7078406372))
           INSERT INTO event_queue (actor, request_id, kind, detail)
           SELECT $1, $2, $3, $4 FROM writer_lock"#,
        actor.as_text(),
        request_id,
        kind,
        detail,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves every committed event of the queue into the chain, lowest id first, and returns
/// how many. Readers of the log call it first, so they see every event that committed
/// before they asked.
#[tracing::instrument(name = "db.chain_queued_events", skip(conn))]
pub async fn chain_queued(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    let moved = sqlx::query_scalar!(r#"SELECT chain_queued_events() AS "moved!""#).fetch_one(conn).await?;
    Ok(moved)
}

/// Lists the events of one request, oldest first, after chaining the queue.
#[tracing::instrument(name = "db.events_for_request", skip(conn))]
pub async fn for_request(conn: &mut PgConnection, request_id: Uuid) -> Result<Vec<Event>, sqlx::Error> {
    chain_queued(conn).await?;
    sqlx::query_as!(
        Event,
        "SELECT id, at, actor, kind, detail FROM events WHERE request_id = $1 ORDER BY id",
        request_id
    )
    .fetch_all(conn)
    .await
}

/// The result of walking the event chain.
#[derive(Clone, Debug)]
pub struct ChainReport {
    /// Events checked before the first break, or all of them.
    pub checked: u64,
    /// The hash of the last intact event.
    pub head: Option<[u8; 32]>,
    pub broken: Option<ozo_domain::audit::ChainBreak>,
}

/// Chains the queue, then walks the whole event chain in order and stops at the first
/// event that breaks it. Rows are streamed, so memory stays flat however long the log is.
#[tracing::instrument(name = "db.verify_event_chain", skip(conn))]
pub async fn verify_chain(conn: &mut PgConnection) -> Result<ChainReport, sqlx::Error> {
    use futures_util::TryStreamExt;
    use ozo_domain::audit::{ChainCheck, ChainEvent};

    chain_queued(conn).await?;
    let mut check = ChainCheck::new();
    let mut rows = sqlx::query!(
        r#"SELECT seq, id, (extract(epoch FROM at) * 1000000)::bigint AS "at_micros!", actor,
                  request_id::text AS request_id, kind, detail::text AS "detail!", prev_hash, hash
           FROM events ORDER BY seq"#
    )
    .fetch(conn);
    while let Some(row) = rows.try_next().await? {
        let event = ChainEvent {
            seq: row.seq,
            id: row.id,
            at_unix_micros: row.at_micros,
            actor: &row.actor,
            request_id: row.request_id.as_deref(),
            kind: &row.kind,
            detail: &row.detail,
            prev_hash: row.prev_hash.as_deref(),
            hash: &row.hash,
        };
        if let Err(broken) = check.check(&event) {
            return Ok(ChainReport { checked: check.checked(), head: check.head(), broken: Some(broken) });
        }
    }
    Ok(ChainReport { checked: check.checked(), head: check.head(), broken: None })
}

/// Chains the queue, then returns the head of the chain: the place and hash of the last
/// event.
#[tracing::instrument(name = "db.event_chain_head", skip(conn))]
pub async fn head(conn: &mut PgConnection) -> Result<Option<(i64, Vec<u8>)>, sqlx::Error> {
    chain_queued(conn).await?;
    let row = sqlx::query!("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetch_optional(conn).await?;
    Ok(row.map(|row| (row.seq, row.hash)))
}

/// The filters of an event search; an unset field matches every event.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub kind: Option<String>,
    pub actor: Option<String>,
    pub request_id: Option<Uuid>,
    pub from: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// An event as auditors read it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditEvent {
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub request_id: Option<Uuid>,
    pub kind: String,
    pub detail: Value,
    #[serde(serialize_with = "crate::requests::serialize_hex")]
    pub hash: Vec<u8>,
}

/// Builds the query of the auditors' event search, newest first, before place `before`
/// in the chain when given and with at most `limit` events when given. The page and the
/// export share it, so both apply the same filter.
fn search_query(
    filter: &EventFilter,
    before: Option<i64>,
    limit: Option<i64>,
) -> sqlx::query::Map<
    'static,
    sqlx::Postgres,
    impl FnMut(sqlx::postgres::PgRow) -> Result<AuditEvent, sqlx::Error> + Send,
    sqlx::postgres::PgArguments,
> {
    sqlx::query_as!(
        AuditEvent,
        r#"SELECT seq, at, actor, request_id, kind, detail, hash
           FROM events
           WHERE ($1::text IS NULL OR kind = $1)
             AND ($2::text IS NULL OR actor = $2)
             AND ($3::uuid IS NULL OR request_id = $3)
             AND ($4::timestamptz IS NULL OR at >= $4)
             AND ($5::timestamptz IS NULL OR at < $5)
             AND ($6::bigint IS NULL OR seq < $6)
           ORDER BY seq DESC
           LIMIT $7"#,
        filter.kind,
        filter.actor,
        filter.request_id,
        filter.from,
        filter.until,
        before,
        limit,
    )
}

/// Chains the queue, then finds events newest first, before place `before` in the chain
/// when given, so that a page continues where the previous one ended.
#[tracing::instrument(name = "db.search_events", skip(conn))]
pub async fn search(
    conn: &mut PgConnection,
    filter: &EventFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEvent>, sqlx::Error> {
    chain_queued(conn).await?;
    search_query(filter, before, Some(limit)).fetch_all(conn).await
}

/// Chains the queue, then lists every event of one request in chain order, with its
/// place and hash.
#[tracing::instrument(name = "db.request_history", skip(conn))]
pub async fn history(conn: &mut PgConnection, request_id: Uuid) -> Result<Vec<AuditEvent>, sqlx::Error> {
    chain_queued(conn).await?;
    sqlx::query_as!(
        AuditEvent,
        "SELECT seq, at, actor, request_id, kind, detail, hash FROM events WHERE request_id = $1 ORDER BY seq",
        request_id
    )
    .fetch_all(conn)
    .await
}

/// Streams every event that matches, newest first, for an export. Call [`chain_queued`]
/// first, so the export contains the events that committed before it started.
pub fn stream<'c>(
    conn: &'c mut PgConnection,
    filter: &'c EventFilter,
) -> futures_util::stream::BoxStream<'c, Result<AuditEvent, sqlx::Error>> {
    search_query(filter, None, None).fetch(conn)
}
