//! The auditor's view of the event log: search, export and the check of the hash chain,
//! in pages and in a read-only API.

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ozo_store::events::{self, AuditEvent, EventFilter};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::auth::{ApiAccount, AuditorSession, PageRejection};
use crate::i18n::{page_texts, PageTexts, RequestLang, Text};
use crate::{ApiError, AppState};

/// Events per page of a search.
const PAGE_SIZE: i64 = 100;
/// Chunks an export may be ahead of the client before it waits.
const EXPORT_BUFFER: usize = 64;
/// The size of the chunks an export of requests sends.
const EXPORT_CHUNK: usize = 64 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit", get(audit_page))
        .route("/audit/export", get(export_page))
        .route("/api/v1/events", get(search_api))
        .route("/api/v1/events/export", get(export_api))
        .route("/audit/requests", get(records_page))
        .route("/audit/requests/export", get(records_export_page))
        .route("/api/v1/audit/requests", get(records_api))
        .route("/api/v1/audit/requests/export", get(records_export_api))
}

/// The filters and paging of a search of requests and certificates.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RecordQuery {
    #[serde(default)]
    environment: String,
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    serial: String,
    #[serde(default)]
    spki: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
    /// The `next_before` of the previous page.
    #[serde(default)]
    before: String,
    #[serde(default)]
    format: String,
}

impl RecordQuery {
    fn filter(&self) -> Result<ozo_store::requests::RecordFilter, ApiError> {
        let text = |value: &str| Some(value.trim().to_owned()).filter(|value| !value.is_empty());
        let spki_sha256 = match text(&self.spki) {
            None => None,
            Some(value) => Some(hex::decode(value.to_lowercase()).ok().filter(|bytes| bytes.len() == 32).ok_or_else(|| {
                ApiError::BadRequest(Text::new(
                    format!("spki {value:?} is not a key fingerprint; expected 64 hex digits, the SHA-256 of the public key"),
                    format!("spki {value:?} is geen sleutelvingerafdruk; verwacht werden 64 hexadecimale tekens, de SHA-256 van de publieke sleutel"),
                ))
            })?),
        };
        Ok(ozo_store::requests::RecordFilter {
            environment: text(&self.environment),
            organisation: text(&self.organisation),
            status: text(&self.status),
            serial_hex: text(&self.serial).map(|serial| serial.to_lowercase()),
            spki_sha256,
            from: parse_time("from", &self.from)?,
            until: parse_time("until", &self.until)?,
        })
    }

    fn before(&self) -> Result<Option<(time::OffsetDateTime, Uuid)>, ApiError> {
        let value = self.before.trim();
        if value.is_empty() {
            return Ok(None);
        }
        let parsed = value
            .split_once('|')
            .and_then(|(at, id)| Some((time::OffsetDateTime::parse(at, &Rfc3339).ok()?, Uuid::parse_str(id).ok()?)));
        parsed.map(Some).ok_or_else(|| {
            ApiError::BadRequest(Text::new(
                format!("before {value:?} is not a page position; pass the next_before of the previous page"),
                format!("before {value:?} is geen paginapositie; geef de next_before van de vorige pagina mee"),
            ))
        })
    }

    fn filter_query(&self) -> String {
        let pairs = [
            ("environment", &self.environment),
            ("organisation", &self.organisation),
            ("status", &self.status),
            ("serial", &self.serial),
            ("spki", &self.spki),
            ("from", &self.from),
            ("until", &self.until),
        ];
        pairs
            .iter()
            .filter(|(_, value)| !value.trim().is_empty())
            .map(|(name, value)| format!("{name}={}", encode(value.trim())))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Returns the position after the last record of a full page, for the next page.
fn next_before(records: &[ozo_store::requests::Record]) -> Option<String> {
    if records.len() as i64 != PAGE_SIZE {
        return None;
    }
    let last = records.last()?;
    Some(format!("{}|{}", last.created_at.format(&Rfc3339).ok()?, last.id))
}

/// `GET /api/v1/audit/requests`: requests with their certificates, newest first.
async fn records_api(
    State(state): State<AppState>,
    account: ApiAccount,
    Query(query): Query<RecordQuery>,
) -> Result<Response, ApiError> {
    account.require("auditor")?;

    let filter = query.filter()?;
    let before = query.before()?;
    let mut conn = state.pool().acquire().await?;
    let records = ozo_store::requests::search_records(&mut conn, &filter, before, Some(PAGE_SIZE)).await?;

    let next = next_before(&records);
    Ok(Json(serde_json::json!({ "records": records, "next_before": next })).into_response())
}

async fn records_export_api(
    State(state): State<AppState>,
    account: ApiAccount,
    Query(query): Query<RecordQuery>,
) -> Result<Response, ApiError> {
    account.require("auditor")?;
    export_records(state, query)
}

async fn records_export_page(
    State(state): State<AppState>,
    _session: AuditorSession,
    Query(query): Query<RecordQuery>,
) -> Result<Response, PageRejection> {
    Ok(export_records(state, query)?)
}

/// Streams every matching record from a task through a bounded channel, so memory stays
/// flat however many match.
fn export_records(state: AppState, query: RecordQuery) -> Result<Response, ApiError> {
    let format = Format::parse(&query.format)?;
    let filter = query.filter()?;

    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(EXPORT_BUFFER);
    tokio::spawn(async move {
        if let Format::Csv = format {
            let header = "id,environment,organisation,status,status_reason,created_at,spki_sha256,serial_hex,not_after,revoked_at,revocation_reason\n";
            let _ = sender.send(Ok(Bytes::from_static(header.as_bytes()))).await;
        }
        let mut conn = match state.pool().acquire().await {
            Ok(conn) => conn,
            Err(error) => {
                tracing::error!(error = %error, "the record export failed to get a connection");
                let _ = sender.send(Err(std::io::Error::other("the export failed"))).await;
                return;
            }
        };
        let rows = ozo_store::requests::stream_records(&mut conn, &filter);
        send_rows(&sender, rows, format, record_csv_line, "records").await;
    });

    Ok(download(receiver, format, "requests"))
}

fn record_csv_line(record: &ozo_store::requests::Record) -> String {
    let time = |at: Option<time::OffsetDateTime>| at.and_then(|at| at.format(&Rfc3339).ok()).unwrap_or_default();
    let fields = [
        record.id.to_string(),
        record.environment.clone(),
        record.organisation.clone(),
        record.status.clone(),
        record.status_reason.clone().unwrap_or_default(),
        time(Some(record.created_at)),
        record.spki_sha256.clone().unwrap_or_default(),
        record.serial_hex.clone().unwrap_or_default(),
        time(record.not_after),
        time(record.revoked_at),
        record.revocation_reason.clone().unwrap_or_default(),
    ];
    let mut line = fields.iter().map(|field| csv_field(field)).collect::<Vec<_>>().join(",");
    line.push('\n');
    line
}

#[derive(Template)]
#[template(path = "audit_requests.html")]
struct RecordsPage<'a> {
    t: &'a PageTexts,
    user: Option<crate::auth::NavUser>,
    csrf: String,
    query: RecordQuery,
    records: Vec<ozo_store::requests::Record>,
    next_link: Option<String>,
    filter_query: String,
    /// Names suggested for the organisation filter.
    organisations: Vec<String>,
}

async fn records_page(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    session: AuditorSession,
    Query(query): Query<RecordQuery>,
) -> Result<Response, PageRejection> {
    let filter = query.filter()?;
    let before = query.before()?;

    let mut conn = state.pool().acquire().await.map_err(ApiError::from)?;
    let records = ozo_store::requests::search_records(&mut conn, &filter, before, Some(PAGE_SIZE)).await?;
    let organisations = crate::history::suggested_organisations(&state).await?;

    let filter_query = query.filter_query();
    let next_link =
        next_before(&records).map(|next| format!("/audit/requests?{filter_query}&before={}", encode(&next)));
    let page = RecordsPage {
        t: page_texts(lang),
        user: Some(crate::auth::NavUser::of(&session.0.account)),
        csrf: session.0.csrf_token.clone(),
        query,
        records,
        next_link,
        filter_query,
        organisations,
    };
    Ok(axum::response::Html(page.render().map_err(ApiError::from)?).into_response())
}

/// The filters and paging of a search, from the query string.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    request: String,
    /// RFC 3339 time or a date (YYYY-MM-DD, from midnight UTC).
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
    before: Option<i64>,
    #[serde(default)]
    format: String,
    #[serde(default)]
    verify: String,
}

impl AuditQuery {
    fn filter(&self) -> Result<EventFilter, ApiError> {
        let text = |value: &str| Some(value.trim().to_owned()).filter(|value| !value.is_empty());
        let request_id = match text(&self.request) {
            None => None,
            Some(value) => Some(Uuid::parse_str(&value).map_err(|_| {
                ApiError::BadRequest(Text::new(
                    format!("request {value:?} is not a request id; expected a UUID such as 0b6d2f39-5ae2-4c4e-9d0e-0f4a3e1b2c3d"),
                    format!("request {value:?} is geen aanvraag-id; verwacht werd een UUID zoals 0b6d2f39-5ae2-4c4e-9d0e-0f4a3e1b2c3d"),
                ))
            })?),
        };
        Ok(EventFilter {
            kind: text(&self.kind),
            actor: text(&self.actor),
            request_id,
            from: parse_time("from", &self.from)?,
            until: parse_time("until", &self.until)?,
        })
    }

    /// Returns the query string of these filters, for links to the next page and to exports.
    fn filter_query(&self) -> String {
        let pairs = [
            ("kind", &self.kind),
            ("actor", &self.actor),
            ("request", &self.request),
            ("from", &self.from),
            ("until", &self.until),
        ];
        pairs
            .iter()
            .filter(|(_, value)| !value.trim().is_empty())
            .map(|(name, value)| format!("{name}={}", encode(value.trim())))
            .collect::<Vec<_>>()
            .join("&")
    }
}

fn parse_time(field: &str, value: &str) -> Result<Option<time::OffsetDateTime>, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if let Ok(at) = time::OffsetDateTime::parse(value, &Rfc3339) {
        return Ok(Some(at));
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(value, &date_format) {
        return Ok(Some(date.midnight().assume_utc()));
    }
    Err(ApiError::BadRequest(Text::new(
        format!("{field} {value:?} is not a time; expected a date such as 2026-12-04 or an RFC 3339 time such as 2026-12-04T10:00:00Z"),
        format!("{field} {value:?} is geen tijd; verwacht werd een datum zoals 2026-12-04 of een RFC 3339-tijd zoals 2026-12-04T10:00:00Z"),
    )))
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// `GET /api/v1/events`: events newest first, 100 per page; `next_before` continues.
async fn search_api(
    State(state): State<AppState>,
    account: ApiAccount,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    account.require("auditor")?;

    let filter = query.filter()?;
    let mut conn = state.pool().acquire().await?;
    let found = events::search(&mut conn, &filter, query.before, PAGE_SIZE).await?;

    let next_before = (found.len() as i64 == PAGE_SIZE).then(|| found.last().map(|event| event.seq)).flatten();
    Ok(Json(serde_json::json!({ "events": found, "next_before": next_before })).into_response())
}

/// `GET /api/v1/events/export?format=csv|jsonl`: every matching event, streamed.
async fn export_api(
    State(state): State<AppState>,
    account: ApiAccount,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    account.require("auditor")?;
    export(state, query)
}

async fn export_page(
    State(state): State<AppState>,
    _session: AuditorSession,
    Query(query): Query<AuditQuery>,
) -> Result<Response, PageRejection> {
    Ok(export(state, query)?)
}

#[derive(Clone, Copy)]
enum Format {
    Csv,
    JsonLines,
}

impl Format {
    fn parse(name: &str) -> Result<Format, ApiError> {
        match name {
            "csv" => Ok(Format::Csv),
            "jsonl" => Ok(Format::JsonLines),
            other => Err(ApiError::BadRequest(Text::new(
                format!("format {other:?} is not an export format; expected csv or jsonl"),
                format!("format {other:?} is geen exportformaat; verwacht werd csv of jsonl"),
            ))),
        }
    }
}

/// Turns the chunks an export task sends into a download named `stem.csv` or `stem.jsonl`.
fn download(
    receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    format: Format,
    stem: &str,
) -> Response {
    let body = Body::from_stream(futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    }));
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::JsonLines => ("application/jsonl", "jsonl"),
    };
    let disposition = format!("attachment; filename=\"{stem}.{extension}\"");
    ([(header::CONTENT_TYPE, content_type.to_owned()), (header::CONTENT_DISPOSITION, disposition)], body)
        .into_response()
}

/// Streams the export from a task that reads the rows, so memory holds only the rows in
/// the channel whatever the size of the log.
fn export(state: AppState, query: AuditQuery) -> Result<Response, ApiError> {
    let format = Format::parse(&query.format)?;
    let filter = query.filter()?;

    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(EXPORT_BUFFER);
    tokio::spawn(async move {
        if let Format::Csv = format {
            let _ = sender.send(Ok(Bytes::from_static(b"seq,at,actor,request_id,kind,detail,hash\n"))).await;
        }
        let mut conn = match state.pool().acquire().await {
            Ok(conn) => conn,
            Err(error) => {
                tracing::error!(error = %error, "the event export failed to get a connection");
                let _ = sender.send(Err(std::io::Error::other("the export failed"))).await;
                return;
            }
        };
        if let Err(error) = events::chain_queued(&mut conn).await {
            tracing::error!(error = %error, "the event export failed to chain the queued events");
            let _ = sender.send(Err(std::io::Error::other("the export failed"))).await;
            return;
        }
        let rows = events::stream(&mut conn, &filter);
        send_rows(&sender, rows, format, csv_line, "events").await;
    });

    Ok(download(receiver, format, "events"))
}

fn csv_line(event: &AuditEvent) -> String {
    let fields = [
        event.seq.to_string(),
        event.at.format(&Rfc3339).unwrap_or_default(),
        event.actor.clone(),
        event.request_id.map(|id| id.to_string()).unwrap_or_default(),
        event.kind.clone(),
        event.detail.to_string(),
        hex::encode(&event.hash),
    ];
    let mut line = fields.iter().map(|field| csv_field(field)).collect::<Vec<_>>().join(",");
    line.push('\n');
    line
}

/// Sends `rows` as CSV lines or JSON Lines in chunks of about 64 KiB, and an error that
/// ends the download when reading fails. Returns when the rows end or the client leaves.
async fn send_rows<T: serde::Serialize>(
    sender: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    mut rows: futures_util::stream::BoxStream<'_, Result<T, sqlx::Error>>,
    format: Format,
    csv_line: fn(&T) -> String,
    what: &str,
) {
    use futures_util::TryStreamExt;

    let mut chunk = String::with_capacity(EXPORT_CHUNK + 1024);
    loop {
        let row = match rows.try_next().await {
            Ok(Some(row)) => row,
            Ok(None) => {
                let _ = sender.send(Ok(Bytes::from(chunk))).await;
                return;
            }
            Err(error) => {
                tracing::error!(error = %error, export = what, "an export failed while reading rows");
                let _ = sender.send(Err(std::io::Error::other("the export failed"))).await;
                return;
            }
        };
        match format {
            Format::Csv => chunk.push_str(&csv_line(&row)),
            Format::JsonLines => {
                chunk.push_str(&serde_json::to_string(&row).unwrap_or_default());
                chunk.push('\n');
            }
        }
        if chunk.len() >= EXPORT_CHUNK {
            let full = std::mem::replace(&mut chunk, String::with_capacity(EXPORT_CHUNK + 1024));
            if sender.send(Ok(Bytes::from(full))).await.is_err() {
                return;
            }
        }
    }
}

/// Quotes a CSV field when it contains a comma, a quote or a line break (RFC 4180).
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

struct EventLine {
    seq: i64,
    at: String,
    actor: String,
    request_id: String,
    kind: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage<'a> {
    t: &'a PageTexts,
    user: Option<crate::auth::NavUser>,
    csrf: String,
    query: AuditQuery,
    head: String,
    head_seq: i64,
    /// The result of the chain check, when asked for.
    verified: Option<String>,
    intact: bool,
    lines: Vec<EventLine>,
    next_link: Option<String>,
    filter_query: String,
}

async fn audit_page(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    session: AuditorSession,
    Query(query): Query<AuditQuery>,
) -> Result<Response, PageRejection> {
    let filter = query.filter()?;

    let mut conn = state.pool().acquire().await.map_err(ApiError::from)?;
    let (head_seq, head) = events::head(&mut conn).await.map_err(ApiError::from)?.unwrap_or_default();
    let (verified, intact) = if query.verify == "1" {
        let report = events::verify_chain(&mut conn).await.map_err(ApiError::from)?;
        match report.broken {
            None => (Some(format!("{} ({})", page_texts(lang).chain_intact, report.checked)), true),
            Some(broken) => (Some(broken.to_string()), false),
        }
    } else {
        (None, true)
    };
    let found = events::search(&mut conn, &filter, query.before, PAGE_SIZE).await?;

    let filter_query = query.filter_query();
    let next_link = (found.len() as i64 == PAGE_SIZE)
        .then(|| found.last().map(|event| format!("/audit?{filter_query}&before={}", event.seq)))
        .flatten();
    let lines = found
        .into_iter()
        .map(|event| EventLine {
            seq: event.seq,
            at: crate::pages::format_time(event.at),
            actor: event.actor,
            request_id: event.request_id.map(|id| id.to_string()).unwrap_or_default(),
            kind: event.kind,
            detail: event.detail.to_string(),
        })
        .collect();
    let page = AuditPage {
        t: page_texts(lang),
        user: Some(crate::auth::NavUser::of(&session.0.account)),
        csrf: session.0.csrf_token.clone(),
        query,
        head: hex::encode(head),
        head_seq,
        verified,
        intact,
        lines,
        next_link,
        filter_query,
    };
    Ok(axum::response::Html(page.render().map_err(ApiError::from)?).into_response())
}
