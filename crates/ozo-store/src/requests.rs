//! Requests and their state transitions.

use ozo_domain::{Finding, FindingCode, RequestStatus, Severity};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{is_unique_violation, StoreError};

/// A finding as stored in the `findings` column, in both languages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFinding {
    pub code: String,
    pub severity: String,
    pub en: String,
    pub nl: String,
}

impl From<&Finding> for StoredFinding {
    fn from(finding: &Finding) -> Self {
        StoredFinding {
            code: finding.code.as_str().to_owned(),
            severity: finding.severity.as_str().to_owned(),
            en: finding.en.clone(),
            nl: finding.nl.clone(),
        }
    }
}

impl StoredFinding {
    /// Converts back to a domain finding; `None` for a code this version does not know.
    pub fn to_finding(&self) -> Option<Finding> {
        let code = FindingCode::parse(&self.code)?;
        let severity = match self.severity.as_str() {
            "warning" => Severity::Warning,
            _ => Severity::Error,
        };
        Some(Finding { code, severity, en: self.en.clone(), nl: self.nl.clone() })
    }
}

/// A request to insert.
#[derive(Clone, Debug)]
pub struct NewRequest<'a> {
    pub id: Uuid,
    pub environment: &'a str,
    pub organisation: &'a str,
    pub contact: &'a str,
    /// `pending` for an accepted CSR, `rejected` for one that failed validation.
    pub status: RequestStatus,
    pub csr_der: Option<&'a [u8]>,
    pub spki_sha256: Option<&'a [u8]>,
    pub findings: &'a [Finding],
    pub invitation_id: Option<Uuid>,
    /// Uploaded without an invitation, where the environment allows that.
    pub unverified: bool,
    /// SHA-256 of the secret in the client's status page URL.
    pub status_token_sha256: Option<&'a [u8]>,
}

impl NewRequest<'_> {
    /// Converts the findings to the JSON of the `findings` column.
    fn stored_findings(&self) -> Result<serde_json::Value, StoreError> {
        let findings: Vec<StoredFinding> = self.findings.iter().map(StoredFinding::from).collect();
        serde_json::to_value(findings).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

/// A stored request.
#[derive(Clone, Debug, Serialize)]
pub struct RequestRow {
    pub id: Uuid,
    pub environment: String,
    pub organisation: String,
    pub contact: String,
    pub status: RequestStatus,
    #[serde(skip)]
    pub csr_der: Option<Vec<u8>>,
    #[serde(serialize_with = "serialize_optional_hex")]
    pub spki_sha256: Option<Vec<u8>>,
    #[serde(skip)]
    pub findings: Vec<StoredFinding>,
    pub status_reason: Option<String>,
    pub invitation_id: Option<Uuid>,
    pub unverified: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

pub(crate) fn serialize_hex<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    serializer.serialize_str(&hex)
}

fn serialize_optional_hex<S: serde::Serializer>(bytes: &Option<Vec<u8>>, serializer: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(bytes) => serialize_hex(bytes, serializer),
        None => serializer.serialize_none(),
    }
}

struct RawRequest {
    id: Uuid,
    environment: String,
    organisation: String,
    contact: String,
    status: String,
    csr_der: Option<Vec<u8>>,
    spki_sha256: Option<Vec<u8>>,
    findings: serde_json::Value,
    status_reason: Option<String>,
    invitation_id: Option<Uuid>,
    unverified: bool,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<RawRequest> for RequestRow {
    type Error = StoreError;

    fn try_from(raw: RawRequest) -> Result<Self, StoreError> {
        let status = raw.status.parse().map_err(|e| StoreError::Corrupt(format!("request {}: {e}", raw.id)))?;
        let findings = serde_json::from_value(raw.findings)
            .map_err(|e| StoreError::Corrupt(format!("request {}: findings: {e}", raw.id)))?;
        Ok(RequestRow {
            id: raw.id,
            environment: raw.environment,
            organisation: raw.organisation,
            contact: raw.contact,
            status,
            csr_der: raw.csr_der,
            spki_sha256: raw.spki_sha256,
            findings,
            status_reason: raw.status_reason,
            invitation_id: raw.invitation_id,
            unverified: raw.unverified,
            created_at: raw.created_at,
            updated_at: raw.updated_at,
        })
    }
}

/// Inserts a request and records its organisation. A public key already on a request that
/// was not rejected gives [`StoreError::KeyReuse`].
#[tracing::instrument(name = "db.insert_request", skip_all, fields(request.id = %request.id, environment = request.environment))]
pub async fn insert(conn: &mut PgConnection, request: &NewRequest<'_>) -> Result<(), StoreError> {
    let findings = request.stored_findings()?;

    let result = sqlx::query!(
        r#"WITH inserted AS (
               INSERT INTO requests (id, environment, organisation, contact, status, csr_der, spki_sha256, findings,
                                     invitation_id, unverified, status_token_sha256)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
               RETURNING organisation
           )
           INSERT INTO organisations (name)
           SELECT organisation FROM inserted
           WHERE NOT EXISTS (SELECT 1 FROM organisations WHERE name = inserted.organisation)
           ON CONFLICT (name) DO NOTHING"#,
        request.id,
        request.environment,
        request.organisation,
        request.contact,
        request.status.as_str(),
        request.csr_der,
        request.spki_sha256,
        findings,
        request.invitation_id,
        request.unverified,
        request.status_token_sha256,
    )
    .execute(conn)
    .await;

    match result {
        Ok(_) => Ok(()),
        Err(error) if is_unique_violation(&error, "requests_spki_sha256_key") => Err(StoreError::KeyReuse),
        Err(error) => Err(error.into()),
    }
}

/// The outcome of recording an accepted upload.
#[derive(Debug)]
pub enum Recorded {
    /// The request and its `request.received` event were written.
    Pending(RequestRow),
    /// The public key was uploaded together with its private key before; nothing was
    /// written.
    KeyExposed,
    /// The public key is on another request; nothing was written.
    KeyReuse,
    /// The invitation was used for the environment, withdrawn or expired since it was
    /// checked; nothing was written.
    InvitationUnavailable,
}

/// Records accepted uploads in one statement and one commit, and returns the outcome of
/// each in the order given. For each upload the statement checks that the key was never
/// exposed and is on no other request, uses up the invitation for the environment when
/// there is one, and inserts the request as pending. It also records the organisation
/// and queues the `request.received` event, in the order given. For each upload either
/// all of that is written or nothing. A lone upload goes to the simpler statement of
/// `record_upload`.
///
/// Two uploads of one key fail the whole statement, and so does an upload whose key
/// another transaction inserted meanwhile: the caller then records each upload on its
/// own, where that second case gives [`Recorded::KeyReuse`]. Two uploads must not name
/// the same invitation, since the statement updates an invitation row only once.
#[tracing::instrument(name = "db.record_uploads", skip_all, fields(uploads = requests.len()))]
pub async fn record_uploads(
    conn: &mut PgConnection,
    requests: &[(NewRequest<'_>, serde_json::Value)],
) -> Result<Vec<Recorded>, StoreError> {
    if let [(request, detail)] = requests {
        return Ok(vec![record_upload(conn, request, detail).await?]);
    }

    let mut ids = Vec::with_capacity(requests.len());
    let mut environments = Vec::with_capacity(requests.len());
    let mut organisations = Vec::with_capacity(requests.len());
    let mut contacts = Vec::with_capacity(requests.len());
    let mut statuses = Vec::with_capacity(requests.len());
    let mut csrs = Vec::with_capacity(requests.len());
    let mut keys = Vec::with_capacity(requests.len());
    let mut findings = Vec::with_capacity(requests.len());
    let mut invitations = Vec::with_capacity(requests.len());
    let mut unverified = Vec::with_capacity(requests.len());
    let mut tokens = Vec::with_capacity(requests.len());
    let mut details = Vec::with_capacity(requests.len());
    for (request, detail) in requests {
        ids.push(request.id);
        environments.push(request.environment);
        organisations.push(request.organisation);
        contacts.push(request.contact);
        statuses.push(request.status.as_str());
        csrs.push(request.csr_der);
        keys.push(request.spki_sha256);
        findings.push(request.stored_findings()?);
        invitations.push(request.invitation_id);
        unverified.push(request.unverified);
        tokens.push(request.status_token_sha256);
        details.push(detail.clone());
    }

    let rows = sqlx::query_as!(
        UploadOutcome,
        r#"WITH writer_lock AS (
               -- Held from before the events get their ids until the commit; see
               -- migrations/20261205000016_chain_without_waiting.sql.
               SELECT pg_advisory_xact_lock_shared(7078406372) IS NULL AS unlocked
           ),
           batch AS (
               SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[],
                                    $7::bytea[], $8::jsonb[], $9::uuid[], $10::bool[], $11::bytea[], $12::jsonb[])
                   WITH ORDINALITY AS b (id, environment, organisation, contact, status, csr_der, spki_sha256,
                                         findings, invitation_id, unverified, status_token_sha256, detail, position)
           ),
           -- The keys are looked up by the array, not row by row, so that a plan made
           -- while the tables were small never reads a whole table.
           exposed AS (
               SELECT spki_sha256 FROM exposed_keys WHERE spki_sha256 = ANY ($7::bytea[])
           ),
           reused AS (
               SELECT spki_sha256 FROM requests WHERE spki_sha256 = ANY ($7::bytea[]) AND status <> 'rejected'
           ),
           checked AS (
               SELECT b.id,
                      coalesce(b.spki_sha256 IN (SELECT spki_sha256 FROM exposed), false) AS exposed,
                      coalesce(b.spki_sha256 IN (SELECT spki_sha256 FROM reused), false) AS reused
               FROM batch b
           ),
           used AS (
               UPDATE invitations i SET used_environments = array_append(i.used_environments, b.environment)
               FROM batch b JOIN checked c ON c.id = b.id
               WHERE i.id = b.invitation_id AND NOT c.exposed AND NOT c.reused
                 AND i.withdrawn_at IS NULL AND i.expires_at > now()
                 AND b.environment = ANY (i.environments) AND NOT (b.environment = ANY (i.used_environments))
               RETURNING b.id
           ),
           inserted AS (
               INSERT INTO requests (id, environment, organisation, contact, status, csr_der, spki_sha256, findings,
                                     invitation_id, unverified, status_token_sha256)
               SELECT b.id, b.environment, b.organisation, b.contact, b.status, b.csr_der, b.spki_sha256, b.findings,
                      b.invitation_id, b.unverified, b.status_token_sha256
               FROM batch b JOIN checked c ON c.id = b.id
               WHERE NOT c.exposed AND NOT c.reused
                 AND (b.invitation_id IS NULL OR b.id IN (SELECT id FROM used))
               ORDER BY b.position
               RETURNING id, environment, organisation, contact, status, csr_der, spki_sha256, findings,
                         status_reason, invitation_id, unverified, created_at, updated_at
           ),
           organisation AS (
               INSERT INTO organisations (name)
               SELECT DISTINCT organisation FROM inserted
               WHERE NOT EXISTS (SELECT 1 FROM organisations WHERE name = inserted.organisation)
               ON CONFLICT (name) DO NOTHING
           ),
           queued AS (
               INSERT INTO event_queue (actor, request_id, kind, detail)
               SELECT 'client', b.id, 'request.received', b.detail
               FROM batch b JOIN inserted ON inserted.id = b.id CROSS JOIN writer_lock
               WHERE NOT writer_lock.unlocked
               ORDER BY b.position
           )
           SELECT c.exposed AS "exposed!", c.reused AS "reused!", inserted.id AS "id?",
                  inserted.environment AS "environment?", inserted.organisation AS "organisation?",
                  inserted.contact AS "contact?", inserted.status AS "status?", inserted.csr_der,
                  inserted.spki_sha256, inserted.findings AS "findings?", inserted.status_reason,
                  inserted.invitation_id, inserted.unverified AS "unverified?",
                  inserted.created_at AS "created_at?", inserted.updated_at AS "updated_at?"
           FROM batch b JOIN checked c ON c.id = b.id LEFT JOIN inserted ON inserted.id = b.id
           ORDER BY b.position"#,
        &ids,
        &environments as &[&str],
        &organisations as &[&str],
        &contacts as &[&str],
        &statuses as &[&str],
        &csrs as &[Option<&[u8]>],
        &keys as &[Option<&[u8]>],
        &findings,
        &invitations as &[Option<Uuid>],
        &unverified,
        &tokens as &[Option<&[u8]>],
        &details,
    )
    .fetch_all(conn)
    .await?;

    if rows.len() != requests.len() {
        return Err(StoreError::Corrupt(format!(
            "the upload statement returned {} outcomes for {} uploads; expected one per upload",
            rows.len(),
            requests.len()
        )));
    }
    rows.into_iter().map(Recorded::try_from).collect()
}

/// Records one accepted upload, with the same checks and writes as [`record_uploads`]
/// but without its arrays and joins. In `pgbench` this statement took about a sixth less
/// time than the batch statement with one upload (docs/benchmarks.md).
#[tracing::instrument(name = "db.record_upload", skip_all)]
async fn record_upload(
    conn: &mut PgConnection,
    request: &NewRequest<'_>,
    detail: &serde_json::Value,
) -> Result<Recorded, StoreError> {
    let findings = request.stored_findings()?;

    let row = sqlx::query_as!(
        UploadOutcome,
        r#"WITH writer_lock AS (
               -- Held from before the event gets its id until the commit; see
               -- migrations/20261205000016_chain_without_waiting.sql.
               SELECT pg_advisory_xact_lock_shared(7078406372) IS NULL AS unlocked
           ),
           exposed AS (
               SELECT EXISTS (SELECT 1 FROM exposed_keys WHERE spki_sha256 = $7) AS hit
           ),
           reused AS (
               SELECT EXISTS (SELECT 1 FROM requests WHERE spki_sha256 = $7 AND status <> 'rejected') AS hit
           ),
           used AS (
               UPDATE invitations i SET used_environments = array_append(i.used_environments, $2)
               FROM exposed, reused
               WHERE i.id = $9 AND NOT exposed.hit AND NOT reused.hit
                 AND i.withdrawn_at IS NULL AND i.expires_at > now()
                 AND $2 = ANY (i.environments) AND NOT ($2 = ANY (i.used_environments))
               RETURNING i.id
           ),
           inserted AS (
               INSERT INTO requests (id, environment, organisation, contact, status, csr_der, spki_sha256, findings,
                                     invitation_id, unverified, status_token_sha256)
               SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
               FROM exposed, reused
               WHERE NOT exposed.hit AND NOT reused.hit AND ($9::uuid IS NULL OR EXISTS (SELECT 1 FROM used))
               RETURNING id, environment, organisation, contact, status, csr_der, spki_sha256, findings,
                         status_reason, invitation_id, unverified, created_at, updated_at
           ),
           organisation AS (
               INSERT INTO organisations (name)
               SELECT organisation FROM inserted
               WHERE NOT EXISTS (SELECT 1 FROM organisations WHERE name = inserted.organisation)
               ON CONFLICT (name) DO NOTHING
           ),
           queued AS (
               INSERT INTO event_queue (actor, request_id, kind, detail)
               SELECT 'client', inserted.id, 'request.received', $12
               FROM inserted CROSS JOIN writer_lock
               WHERE NOT writer_lock.unlocked
           )
           SELECT exposed.hit AS "exposed!", reused.hit AS "reused!", inserted.id AS "id?",
                  inserted.environment AS "environment?", inserted.organisation AS "organisation?",
                  inserted.contact AS "contact?", inserted.status AS "status?", inserted.csr_der AS "csr_der?",
                  inserted.spki_sha256 AS "spki_sha256?", inserted.findings AS "findings?",
                  inserted.status_reason AS "status_reason?", inserted.invitation_id AS "invitation_id?",
                  inserted.unverified AS "unverified?", inserted.created_at AS "created_at?",
                  inserted.updated_at AS "updated_at?"
           FROM exposed CROSS JOIN reused LEFT JOIN inserted ON true"#,
        request.id,
        request.environment,
        request.organisation,
        request.contact,
        request.status.as_str(),
        request.csr_der,
        request.spki_sha256,
        findings,
        request.invitation_id,
        request.unverified,
        request.status_token_sha256,
        detail,
    )
    .fetch_one(conn)
    .await;

    match row {
        Ok(row) => row.try_into(),
        Err(error) if is_unique_violation(&error, "requests_spki_sha256_key") => Ok(Recorded::KeyReuse),
        Err(error) => Err(error.into()),
    }
}

/// One upload's row from the upload statements: whether its key was exposed or is on
/// another request, and the request when it was inserted.
struct UploadOutcome {
    exposed: bool,
    reused: bool,
    id: Option<Uuid>,
    environment: Option<String>,
    organisation: Option<String>,
    contact: Option<String>,
    status: Option<String>,
    csr_der: Option<Vec<u8>>,
    spki_sha256: Option<Vec<u8>>,
    findings: Option<serde_json::Value>,
    status_reason: Option<String>,
    invitation_id: Option<Uuid>,
    unverified: Option<bool>,
    created_at: Option<OffsetDateTime>,
    updated_at: Option<OffsetDateTime>,
}

impl TryFrom<UploadOutcome> for Recorded {
    type Error = StoreError;

    fn try_from(row: UploadOutcome) -> Result<Self, StoreError> {
        if row.exposed {
            return Ok(Recorded::KeyExposed);
        }
        if row.reused {
            return Ok(Recorded::KeyReuse);
        }
        let (
            Some(id),
            Some(environment),
            Some(organisation),
            Some(contact),
            Some(status),
            Some(findings),
            Some(unverified),
            Some(created_at),
            Some(updated_at),
        ) = (
            row.id,
            row.environment,
            row.organisation,
            row.contact,
            row.status,
            row.findings,
            row.unverified,
            row.created_at,
            row.updated_at,
        )
        else {
            return Ok(Recorded::InvitationUnavailable);
        };
        let raw = RawRequest {
            id,
            environment,
            organisation,
            contact,
            status,
            csr_der: row.csr_der,
            spki_sha256: row.spki_sha256,
            findings,
            status_reason: row.status_reason,
            invitation_id: row.invitation_id,
            unverified,
            created_at,
            updated_at,
        };
        Ok(Recorded::Pending(raw.try_into()?))
    }
}

/// Finds a request by id.
#[tracing::instrument(name = "db.get_request", skip(conn))]
pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<RequestRow>, StoreError> {
    let raw = sqlx::query_as!(
        RawRequest,
        r#"SELECT id, environment, organisation, contact, status, csr_der, spki_sha256, findings,
                  status_reason, invitation_id, unverified, created_at, updated_at
           FROM requests WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await?;
    raw.map(RequestRow::try_from).transpose()
}

/// Finds the request behind a client's status page.
#[tracing::instrument(name = "db.find_request_by_status_token", skip_all)]
pub async fn find_by_status_token(
    conn: &mut PgConnection,
    token_sha256: &[u8],
) -> Result<Option<RequestRow>, StoreError> {
    let raw = sqlx::query_as!(
        RawRequest,
        r#"SELECT id, environment, organisation, contact, status, csr_der, spki_sha256, findings,
                  status_reason, invitation_id, unverified, created_at, updated_at
           FROM requests WHERE status_token_sha256 = $1"#,
        token_sha256
    )
    .fetch_optional(conn)
    .await?;
    raw.map(RequestRow::try_from).transpose()
}

/// Lists requests, oldest first, optionally only those with one status, in one environment,
/// or of an organisation whose name contains `organisation` in any case.
#[tracing::instrument(name = "db.list_requests", skip(conn))]
pub async fn list(
    conn: &mut PgConnection,
    status: Option<RequestStatus>,
    environment: Option<&str>,
    organisation: Option<&str>,
    limit: i64,
) -> Result<Vec<RequestRow>, StoreError> {
    let raws = sqlx::query_as!(
        RawRequest,
        r#"SELECT id, environment, organisation, contact, status, csr_der, spki_sha256, findings,
                  status_reason, invitation_id, unverified, created_at, updated_at
           FROM requests
           WHERE ($1::text IS NULL OR status = $1)
             AND ($2::text IS NULL OR environment = $2)
             AND ($3::text IS NULL OR lower(organisation) LIKE $3)
           ORDER BY created_at, id
           LIMIT $4"#,
        status.map(RequestStatus::as_str),
        environment,
        organisation.map(contains_pattern),
        limit
    )
    .fetch_all(conn)
    .await?;
    raws.into_iter().map(RequestRow::try_from).collect()
}

/// The result of a conditional state change.
#[derive(Debug, PartialEq, Eq)]
pub enum Transition {
    Done,
    /// The request was not in the expected state; nothing changed.
    Conflict {
        current: RequestStatus,
    },
    NotFound,
}

/// Moves a request from `from` to `to` if, and only if, it is in `from` now, and sets its
/// reason, clearing the reason of an earlier state. Of two concurrent callers exactly one
/// gets [`Transition::Done`].
#[tracing::instrument(name = "db.transition_request", skip(conn, reason))]
pub async fn transition(
    conn: &mut PgConnection,
    id: Uuid,
    from: RequestStatus,
    to: RequestStatus,
    reason: Option<&str>,
) -> Result<Transition, StoreError> {
    debug_assert!(from.can_become(to), "{from} -> {to} is not a transition");

    let updated = sqlx::query!(
        r#"UPDATE requests SET status = $3, status_reason = $4, updated_at = now()
           WHERE id = $1 AND status = $2"#,
        id,
        from.as_str(),
        to.as_str(),
        reason,
    )
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 1 {
        return Ok(Transition::Done);
    }

    let current = sqlx::query_scalar!("SELECT status FROM requests WHERE id = $1", id).fetch_optional(conn).await?;
    match current {
        None => Ok(Transition::NotFound),
        Some(status) => {
            let current = status.parse().map_err(|e| StoreError::Corrupt(format!("request {id}: {e}")))?;
            Ok(Transition::Conflict { current })
        }
    }
}

/// Returns the signing round of a request: 1 until a CA's certificate for it failed our checks.
#[tracing::instrument(name = "db.signing_round", skip(conn))]
pub async fn signing_round(conn: &mut PgConnection, id: Uuid) -> Result<i32, sqlx::Error> {
    let round = sqlx::query_scalar!("SELECT signing_round FROM requests WHERE id = $1", id).fetch_one(conn).await?;
    Ok(round)
}

/// Starts a new signing round, so that the next attempt requests a new certificate from the CA.
#[tracing::instrument(name = "db.next_signing_round", skip(conn))]
pub async fn next_signing_round(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE requests SET signing_round = signing_round + 1 WHERE id = $1", id).execute(conn).await?;
    Ok(())
}

/// Locks a request's row until the transaction ends and returns its status, so that
/// decisions on one request are taken one after the other. The lock is `FOR NO KEY
/// UPDATE`: it still lets the chaining step insert events that refer to the request,
/// which a `FOR UPDATE` lock would block while this transaction waits for the chain's
/// lock, a deadlock.
#[tracing::instrument(name = "db.lock_request", skip(conn))]
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<RequestStatus>, StoreError> {
    let status = sqlx::query_scalar!("SELECT status FROM requests WHERE id = $1 FOR NO KEY UPDATE", id)
        .fetch_optional(conn)
        .await?;
    status.map(|status| status.parse().map_err(|e| StoreError::Corrupt(format!("request {id}: {e}")))).transpose()
}

/// A request in the list of an organisation's requests.
#[derive(Clone, Debug)]
pub struct RequestSummary {
    pub id: Uuid,
    pub environment: String,
    pub status: String,
    pub created_at: OffsetDateTime,
    pub serial_hex: Option<String>,
}

/// Lists the other requests of an organisation, newest first, with their certificates' serials.
#[tracing::instrument(name = "db.requests_of_organisation", skip(conn))]
pub async fn of_organisation(
    conn: &mut PgConnection,
    organisation: &str,
    except: Uuid,
    limit: i64,
) -> Result<Vec<RequestSummary>, sqlx::Error> {
    sqlx::query_as!(
        RequestSummary,
        r#"SELECT r.id, r.environment, r.status, r.created_at, c.serial_hex AS "serial_hex?"
           FROM requests r LEFT JOIN certificates c ON c.request_id = r.id
           WHERE r.organisation = $1 AND r.id <> $2
           ORDER BY r.created_at DESC
           LIMIT $3"#,
        organisation,
        except,
        limit
    )
    .fetch_all(conn)
    .await
}

/// The filters of an auditor's search of requests and their certificates.
#[derive(Clone, Debug, Default)]
pub struct RecordFilter {
    pub environment: Option<String>,
    /// The organisation's whole name, in any case.
    pub organisation: Option<String>,
    pub status: Option<String>,
    /// The certificate's serial in lowercase hex; leading zeros do not matter.
    pub serial_hex: Option<String>,
    pub spki_sha256: Option<Vec<u8>>,
    pub from: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// A request with its certificate, as auditors list it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Record {
    pub id: Uuid,
    pub environment: String,
    pub organisation: String,
    pub status: String,
    pub status_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub spki_sha256: Option<String>,
    pub serial_hex: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revocation_reason: Option<String>,
}

/// Builds the query of the auditors' search of requests with their certificates, newest
/// first, after the keyset `before` (created_at, id) when given and with at most `limit`
/// rows when given. The page and the export share it, so both apply the same filter.
fn records_query(
    filter: &RecordFilter,
    before: Option<(OffsetDateTime, Uuid)>,
    limit: Option<i64>,
) -> sqlx::query::Map<
    'static,
    sqlx::Postgres,
    impl FnMut(sqlx::postgres::PgRow) -> Result<Record, sqlx::Error> + Send,
    sqlx::postgres::PgArguments,
> {
    sqlx::query_as!(
        Record,
        r#"SELECT r.id, r.environment, r.organisation, r.status, r.status_reason, r.created_at,
                  encode(r.spki_sha256, 'hex') AS spki_sha256, c.serial_hex AS "serial_hex?",
                  c.not_after AS "not_after?", c.revoked_at AS "revoked_at?", c.revocation_reason AS "revocation_reason?"
           FROM requests r LEFT JOIN certificates c ON c.request_id = r.id
           WHERE ($1::text IS NULL OR r.environment = $1)
             AND ($2::text IS NULL OR lower(r.organisation) = lower($2))
             AND ($3::text IS NULL OR r.status = $3)
             AND ($4::text IS NULL OR ltrim(c.serial_hex, '0') = ltrim($4, '0'))
             AND ($5::bytea IS NULL OR r.spki_sha256 = $5)
             AND ($6::timestamptz IS NULL OR r.created_at >= $6)
             AND ($7::timestamptz IS NULL OR r.created_at < $7)
             AND ($8::timestamptz IS NULL OR (r.created_at, r.id) < ($8, $9::uuid))
           ORDER BY r.created_at DESC, r.id DESC
           LIMIT $10"#,
        filter.environment,
        filter.organisation,
        filter.status,
        filter.serial_hex,
        filter.spki_sha256,
        filter.from,
        filter.until,
        before.map(|(at, _)| at),
        before.map(|(_, id)| id),
        limit,
    )
}

/// Finds requests with their certificates, newest first, after the keyset `before`
/// (created_at, id) of the previous page when given.
#[tracing::instrument(name = "db.search_records", skip(conn))]
pub async fn search_records(
    conn: &mut PgConnection,
    filter: &RecordFilter,
    before: Option<(OffsetDateTime, Uuid)>,
    limit: Option<i64>,
) -> Result<Vec<Record>, sqlx::Error> {
    records_query(filter, before, limit).fetch_all(conn).await
}

/// Streams every request with its certificate that matches, newest first, for an export.
pub fn stream_records<'c>(
    conn: &'c mut PgConnection,
    filter: &'c RecordFilter,
) -> futures_util::stream::BoxStream<'c, Result<Record, sqlx::Error>> {
    records_query(filter, None, None).fetch(conn)
}

/// Lists the names of organisations that requests name and that contain `part` in any
/// case, alphabetically, at most `limit` of them.
#[tracing::instrument(name = "db.organisations", skip(conn))]
pub async fn organisations(
    conn: &mut PgConnection,
    part: Option<&str>,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT name FROM organisations WHERE ($1::text IS NULL OR lower(name) LIKE $1) ORDER BY name LIMIT $2",
        part.map(contains_pattern),
        limit,
    )
    .fetch_all(conn)
    .await
}

/// Builds a LIKE pattern that matches text containing `part` in any case, with LIKE's own
/// characters in `part` taken literally.
fn contains_pattern(part: &str) -> String {
    let mut pattern = String::with_capacity(part.len() + 2);
    pattern.push('%');
    for c in part.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}
