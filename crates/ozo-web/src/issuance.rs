//! The life of a request: upload, approval or denial, and signing. The API and the
//! operator pages both call these functions.

use ozo_domain::{validate, Finding, Lang, RequestStatus, Verdict};
use ozo_store::accounts::Account;
use ozo_store::approvals;
use ozo_store::certificates::CertificateRow;
use ozo_store::events::{self, Actor};
use ozo_store::invitations;
use ozo_store::jobs;
use ozo_store::requests::{self, NewRequest, Recorded, RequestRow, Transition};
use ozo_store::StoreError;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::i18n::Text;
use crate::{ApiError, AppState};

const MAX_ORGANISATION_CHARS: usize = 200;
const MAX_CONTACT_CHARS: usize = 254;
const MAX_REASON_CHARS: usize = 1000;

/// An upload as received by the API or the upload page.
pub struct Upload {
    pub environment: String,
    /// The invitation code; without one, the environment must allow unverified uploads.
    pub invitation: Option<String>,
    /// Used only without an invitation; an invitation names the organisation.
    pub organisation: String,
    pub contact: String,
    pub csr: Vec<u8>,
}

/// An accepted upload: the new request and the secret of its status page.
pub struct Uploaded {
    pub row: RequestRow,
    pub status_token: String,
}

/// Validates and records an upload. An accepted CSR becomes a pending request and uses
/// up its invitation for the environment; a rejected one is recorded too, with its
/// findings, and returned as [`ApiError::Rejected`].
pub async fn upload(state: &AppState, upload: Upload) -> Result<Uploaded, ApiError> {
    let known = state.environments().map(|runtime| runtime.environment.name.as_str()).collect::<Vec<_>>().join(", ");
    let requested = upload.environment.trim();
    if requested.is_empty() {
        return Err(ApiError::BadRequest(Text::new(
            format!("The field environment is missing; expected one of: {known}."),
            format!("Het veld environment (omgeving) ontbreekt; verwacht werd een van: {known}."),
        )));
    }
    let environment = state.environment(requested).ok_or_else(|| {
        ApiError::BadRequest(Text::new(
            format!("Unknown environment {requested:?}; expected one of: {known}."),
            format!("Onbekende omgeving {requested:?}; verwacht werd een van: {known}."),
        ))
    })?;
    let environment_name = environment.environment.name.as_str();
    tracing::Span::current().record("environment", environment_name);

    let code = upload.invitation.as_deref().map(str::trim).filter(|code| !code.is_empty());
    let invitation = match code {
        Some(code) => Some(crate::invitations::check(state.pool(), code, environment_name).await?),
        None if environment.allow_uploads_without_invitation => None,
        None => {
            return Err(ApiError::Invitation(Text::new(
                format!("An upload for {environment_name} needs an invitation code. Use the link or code from your invitation, or ask your OZO contact for one."),
                format!("Een upload voor {environment_name} heeft een uitnodigingscode nodig. Gebruik de link of code uit uw uitnodiging, of vraag uw OZO-contactpersoon erom."),
            )))
        }
    };
    let (organisation, contact) = match &invitation {
        Some(invitation) => (invitation.organisation.as_str(), invitation.contact.as_str()),
        None => (
            required_text(&upload.organisation, "organisation", "organisation (organisatie)", MAX_ORGANISATION_CHARS)?,
            required_text(&upload.contact, "contact", "contact (contactpersoon)", MAX_CONTACT_CHARS)?,
        ),
    };
    let origin = Origin { invitation_id: invitation.as_ref().map(|i| i.id), unverified: invitation.is_none() };

    let verdict = validate(&upload.csr, &environment.environment, state.environment_list());

    let id = Uuid::new_v4();
    let csr = match verdict {
        Verdict::Accepted(csr) => csr,
        Verdict::Rejected(rejected) => {
            let record = Rejection {
                der: rejected.der.as_deref(),
                spki_sha256: rejected.spki_sha256.as_ref().map(|h| h.as_slice()),
            };
            return Err(record_rejection(
                state,
                id,
                environment_name,
                organisation,
                contact,
                origin,
                record,
                rejected.findings,
            )
            .await);
        }
    };

    let status_token = crate::auth::random_secret();
    let warnings: Vec<&str> = csr.warnings().iter().map(|f| f.code.as_str()).collect();
    let detail = json!({ "warnings": warnings, "invitation": origin.invitation_id, "unverified": origin.unverified });
    let recorded = state
        .upload_writer()
        .record(crate::upload_writer::AcceptedUpload {
            id,
            environment: environment_name.to_owned(),
            organisation: organisation.to_owned(),
            contact: contact.to_owned(),
            csr_der: csr.der().to_vec(),
            spki_sha256: csr.spki_sha256().to_vec(),
            warnings: csr.warnings().to_vec(),
            invitation_id: origin.invitation_id,
            unverified: origin.unverified,
            status_token_sha256: crate::auth::secret_sha256(&status_token).to_vec(),
            event_detail: detail,
        })
        .await?;

    let finding = match recorded {
        Recorded::Pending(row) => {
            tracing::info!(request.id = %id, environment = environment_name, "accepted a CSR upload");
            return Ok(Uploaded { row, status_token });
        }
        Recorded::KeyExposed => Finding::exposed_key(),
        Recorded::KeyReuse => Finding::key_reuse(),
        Recorded::InvitationUnavailable => {
            // Another upload used the invitation since it was checked above, or it was
            // withdrawn or expired meanwhile.
            return Err(ApiError::Invitation(Text::new(
                format!("This invitation can no longer be used for a {environment_name} request: it was used, withdrawn or expired just now."),
                format!("Deze uitnodiging kan niet meer worden gebruikt voor een aanvraag voor {environment_name}: ze is zojuist gebruikt, ingetrokken of verlopen."),
            )));
        }
    };
    let mut findings = csr.warnings().to_vec();
    findings.insert(0, finding);
    let record = Rejection { der: Some(csr.der()), spki_sha256: Some(&csr.spki_sha256()) };
    Err(record_rejection(state, id, environment_name, organisation, contact, origin, record, findings).await)
}

/// The origin of an upload: an invitation, or none (unverified).
#[derive(Clone, Copy)]
struct Origin {
    invitation_id: Option<Uuid>,
    unverified: bool,
}

struct Rejection<'a> {
    der: Option<&'a [u8]>,
    spki_sha256: Option<&'a [u8]>,
}

/// Records a rejected upload so auditors see it, and returns the error for the client.
async fn record_rejection(
    state: &AppState,
    id: Uuid,
    environment: &str,
    organisation: &str,
    contact: &str,
    origin: Origin,
    record: Rejection<'_>,
    findings: Vec<Finding>,
) -> ApiError {
    let reason = findings.iter().find(|f| f.is_error()).map(|f| f.code.as_str()).unwrap_or("unknown");
    let result = async {
        let mut tx = state.pool().begin().await?;
        let codes: Vec<&str> = findings.iter().map(|f| f.code.as_str()).collect();
        events::queue(
            &mut tx,
            &Actor::Client,
            Some(id),
            "request.rejected",
            json!({ "reason": reason, "findings": codes }),
        )
        .await?;
        requests::insert(
            &mut tx,
            &NewRequest {
                id,
                environment,
                organisation,
                contact,
                status: RequestStatus::Rejected,
                csr_der: record.der,
                spki_sha256: record.spki_sha256,
                findings: &findings,
                invitation_id: origin.invitation_id,
                unverified: origin.unverified,
                status_token_sha256: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok::<(), StoreError>(())
    }
    .await;

    match result {
        Ok(()) => {
            tracing::info!(request.id = %id, environment, reason, "rejected a CSR upload");
            metrics::counter!("ozo_csr_rejections_total", "environment" => environment.to_owned(), "reason" => reason.to_owned())
                .increment(1);
            ApiError::Rejected { request_id: id, findings }
        }
        Err(error) => error.into(),
    }
}

pub(crate) fn required_text<'a>(
    value: &'a str,
    field: &str,
    field_nl: &str,
    max_chars: usize,
) -> Result<&'a str, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::BadRequest(Text::new(
            format!("The field {field} is missing or empty; fill it in."),
            format!("Het veld {field_nl} ontbreekt of is leeg; vul het in."),
        )));
    }
    if value.chars().count() > max_chars || value.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(Text::new(
            format!("The field {field} must be at most {max_chars} characters on one line."),
            format!("Het veld {field_nl} mag hoogstens {max_chars} tekens op één regel bevatten."),
        )));
    }
    Ok(value)
}

pub async fn load_request(state: &AppState, id: Uuid) -> Result<RequestRow, ApiError> {
    let mut conn = state.pool().acquire().await?;
    requests::get(&mut conn, id).await?.ok_or_else(|| request_not_found(id))
}

pub fn request_not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(Text::new(format!("No request with id {id}."), format!("Geen aanvraag met id {id}.")))
}

fn conflict(id: Uuid, current: RequestStatus, action_en: &str, action_nl: &str) -> ApiError {
    ApiError::Conflict {
        current,
        text: Text::new(
            format!("Request {id} cannot be {action_en}: it is {current}. Nothing was changed."),
            format!("Aanvraag {id} kan niet worden {action_nl}: de status is {current}. Er is niets gewijzigd."),
        ),
    }
}

/// The digest of what an approval of `row` covers: its stored CSR as validated today, the
/// environment, the CA that will sign, the lifetime and the policy version. An error
/// means the stored CSR no longer passes validation.
pub(crate) fn approval_digest(
    state: &AppState,
    row: &RequestRow,
) -> Result<(ozo_domain::VerifiedCsr, [u8; 32]), String> {
    let environment = state
        .environment(&row.environment)
        .ok_or_else(|| format!("the environment {} is no longer configured", row.environment))?;
    let stored = row.csr_der.as_deref().unwrap_or_default();
    let csr = match validate(stored, &environment.environment, state.environment_list()) {
        Verdict::Accepted(csr) => csr,
        Verdict::Rejected(rejected) => {
            let codes: Vec<&str> = rejected.findings.iter().map(|f| f.code.as_str()).collect();
            return Err(format!("the stored CSR no longer passes validation: {}", codes.join(", ")));
        }
    };
    if row.spki_sha256.as_deref() != Some(csr.spki_sha256().as_slice()) {
        return Err("the stored key fingerprint does not match the stored CSR".to_owned());
    }
    let ca = environment.signer.describe();
    let digest = ozo_domain::ApprovalSubject {
        csr: &csr,
        environment: environment.environment.name.as_str(),
        ca: &ca,
        lifetime_seconds: environment.lifetime.whole_seconds(),
        policy_version: ozo_domain::POLICY_VERSION,
    }
    .digest();
    Ok((csr, digest))
}

/// Records one operator's approval of a pending request. Once the environment's number
/// of approvals is reached, the request becomes approved and its signing job commits
/// with the last approval; the job then runs at once, and a worker retries it if this
/// process stops first. The request's row is locked meanwhile, so of two operators acting
/// at the same moment one goes first and the other sees the outcome.
pub async fn approve(state: &AppState, id: Uuid, operator: &Account) -> Result<RequestRow, ApiError> {
    let mut tx = state.pool().begin().await?;
    match requests::lock(&mut tx, id).await? {
        None => return Err(request_not_found(id)),
        Some(RequestStatus::Pending) => {}
        Some(current) => return Err(conflict(id, current, "approved", "goedgekeurd")),
    }
    let row = requests::get(&mut tx, id).await?.ok_or_else(|| request_not_found(id))?;
    let environment = state
        .environment(&row.environment)
        .ok_or_else(|| anyhow::anyhow!("environment {} is not configured", row.environment))?;

    if let Some(invitation_id) = row.invitation_id {
        let invitation = invitations::get(&mut tx, invitation_id).await?;
        if invitation.is_some_and(|invitation| invitation.created_by == format!("account:{}", operator.name)) {
            return Err(ApiError::FourEyes(Text::new(
                format!("You created the invitation request {id} came in on, so another operator must approve it."),
                format!("U heeft de uitnodiging gemaakt waarmee aanvraag {id} binnenkwam, dus een andere operator moet deze goedkeuren."),
            )));
        }
    }
    let digest = match approval_digest(state, &row) {
        Ok((_, digest)) => digest,
        Err(reason) => {
            return Err(ApiError::Conflict {
                current: row.status,
                text: Text::new(
                    format!("Request {id} cannot be approved: {reason}."),
                    format!("Aanvraag {id} kan niet worden goedgekeurd: {reason}."),
                ),
            })
        }
    };
    if !approvals::insert(&mut tx, id, operator.id, &digest).await? {
        return Err(ApiError::FourEyes(Text::new(
            format!("You already approved request {id}; another operator must approve it too."),
            format!("U heeft aanvraag {id} al goedgekeurd; een andere operator moet deze ook goedkeuren."),
        )));
    }
    let approvals = approvals::for_request(&mut tx, id).await?.len();
    let required = environment.approvals_required;
    let detail = json!({ "approvals": approvals, "required": required, "digest": hex::encode(digest) });
    events::append(&mut tx, &Actor::Account(operator.name.clone()), Some(id), "request.approval_recorded", detail)
        .await?;

    let complete = approvals >= required;
    if complete {
        if requests::transition(&mut tx, id, RequestStatus::Pending, RequestStatus::Approved, None).await?
            != Transition::Done
        {
            return Err(anyhow::anyhow!("request {id} left pending while its row was locked").into());
        }
        events::append(
            &mut tx,
            &Actor::Account(operator.name.clone()),
            Some(id),
            "request.approved",
            json!({ "approvals": approvals }),
        )
        .await?;
        jobs::enqueue(&mut tx, id, jobs::JobAction::Issue).await?;
    }
    tx.commit().await?;
    tracing::info!(request.id = %id, operator.name = %operator.name, approvals, required, "recorded an approval");

    if complete {
        crate::signing::run_job(state, Some(id)).await?;
    }
    load_request(state, id).await
}

/// Asks the environment's CA which certificate it would issue for a pending request,
/// without issuing it. `None` when the backend cannot tell.
pub async fn preview(state: &AppState, id: Uuid) -> Result<Option<ozo_ca::CertificatePreview>, ApiError> {
    let row = load_request(state, id).await?;
    if !matches!(row.status, RequestStatus::Pending | RequestStatus::Approved | RequestStatus::Failed) {
        return Err(conflict(id, row.status, "previewed", "vooraf bekeken"));
    }
    let environment = state
        .environment(&row.environment)
        .ok_or_else(|| anyhow::anyhow!("environment {} is not configured", row.environment))?;
    let stored = row.csr_der.as_deref().unwrap_or_default();
    let Verdict::Accepted(csr) = validate(stored, &environment.environment, state.environment_list()) else {
        return Err(ApiError::Conflict {
            current: row.status,
            text: Text::new(
                format!("The stored CSR of request {id} no longer passes validation, so the CA cannot be asked."),
                format!("De opgeslagen CSR van verzoek {id} voldoet niet meer aan de eisen, dus de CA kan niet gevraagd worden."),
            ),
        });
    };

    let mut conn = state.pool().acquire().await?;
    let round = requests::signing_round(&mut conn, id).await?;
    drop(conn);
    let request = ozo_ca::SigningRequest { request_id: id, csr: &csr, lifetime: environment.lifetime, round };

    match environment.signer.preview(request).await {
        Ok(preview) => Ok(preview),
        Err(ozo_ca::SignError::Unavailable(error)) => Err(ApiError::CaUnavailable(Text::new(
            format!("The CA could not be reached for a preview. Try again in a minute: {error}"),
            format!("De CA was niet bereikbaar voor een voorbeeld. Probeer het over een minuut opnieuw: {error}"),
        ))),
        Err(ozo_ca::SignError::Rejected(error)) => Err(ApiError::CaRefused(Text::new(
            format!("The CA would refuse this request: {error}"),
            format!("De CA zou dit verzoek weigeren: {error}"),
        ))),
    }
}

/// Sends a failed request back to signing, after an operator fixed the cause.
pub async fn retry(state: &AppState, id: Uuid, operator: &str) -> Result<RequestRow, ApiError> {
    let mut tx = state.pool().begin().await?;
    match requests::transition(&mut tx, id, RequestStatus::Failed, RequestStatus::Approved, None).await? {
        Transition::Done => {}
        Transition::Conflict { current } => return Err(conflict(id, current, "retried", "opnieuw geprobeerd")),
        Transition::NotFound => return Err(request_not_found(id)),
    }
    events::append(&mut tx, &Actor::Account(operator.to_owned()), Some(id), "signing.retried", json!({})).await?;
    jobs::enqueue(&mut tx, id, jobs::JobAction::Issue).await?;
    tx.commit().await?;
    tracing::info!(request.id = %id, operator.name = operator, "sent a failed request back to signing");

    crate::signing::run_job(state, Some(id)).await?;
    load_request(state, id).await
}

/// Revokes the certificate of an issued request with an RFC 5280 reason and calls the
/// CA at once. Until the CA confirms, a worker keeps calling it.
pub async fn revoke(state: &AppState, id: Uuid, operator: &str, reason: &str) -> Result<RequestRow, ApiError> {
    record_revocation(state.pool(), id, operator, reason).await?;

    crate::signing::run_job(state, Some(id)).await?;
    load_request(state, id).await
}

/// Records the revocation of an issued request's certificate: the decision, its event and
/// a revoke job commit together. The CA is not called here; the service's worker does
/// that with the configured CA.
pub async fn record_revocation(pool: &sqlx::PgPool, id: Uuid, operator: &str, reason: &str) -> Result<(), ApiError> {
    let reason: ozo_domain::RevocationReason = reason.parse().map_err(|error: ozo_domain::revocation::UnknownRevocationReason| {
        ApiError::BadRequest(Text::new(
            error.to_string(),
            format!("Onbekende reden voor intrekking {:?}; verwacht werd een reden uit RFC 5280, zoals keyCompromise, superseded of cessationOfOperation.", error.0),
        ))
    })?;

    let mut tx = pool.begin().await?;
    match requests::transition(&mut tx, id, RequestStatus::Issued, RequestStatus::Revoked, Some(reason.as_str()))
        .await?
    {
        Transition::Done => {}
        Transition::Conflict { current } => return Err(conflict(id, current, "revoked", "ingetrokken")),
        Transition::NotFound => return Err(request_not_found(id)),
    }
    let certificate = ozo_store::certificates::for_request(&mut tx, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("issued request {id} has no certificate"))?;
    ozo_store::certificates::revoke(&mut tx, id, reason.as_str()).await?;
    let detail = json!({ "serial": certificate.serial_hex, "reason": reason.as_str(), "reason_code": reason.code() });
    events::append(&mut tx, &Actor::Account(operator.to_owned()), Some(id), "certificate.revoked", detail).await?;
    jobs::enqueue(&mut tx, id, jobs::JobAction::Revoke).await?;
    tx.commit().await?;
    tracing::info!(request.id = %id, operator.name = operator, reason = %reason, "revoked a certificate");
    Ok(())
}

/// Denies a pending request with a reason that the client sees.
pub async fn deny(state: &AppState, id: Uuid, operator: &str, reason: &str) -> Result<RequestRow, ApiError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::BadRequest(Text::new(
            format!("A denial needs a reason of 1 to {MAX_REASON_CHARS} characters; the client sees it."),
            format!("Een afwijzing heeft een reden van 1 tot {MAX_REASON_CHARS} tekens nodig; de client ziet die."),
        )));
    }

    let mut tx = state.pool().begin().await?;
    match requests::transition(&mut tx, id, RequestStatus::Pending, RequestStatus::Denied, Some(reason)).await? {
        Transition::Done => {}
        Transition::Conflict { current } => return Err(conflict(id, current, "denied", "afgewezen")),
        Transition::NotFound => return Err(request_not_found(id)),
    }
    events::append(
        &mut tx,
        &Actor::Account(operator.to_owned()),
        Some(id),
        "request.denied",
        json!({ "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(request.id = %id, operator.name = operator, "denied a request");
    load_request(state, id).await
}

/// A request as the API shows it.
#[derive(Serialize)]
pub struct RequestView<'a> {
    #[serde(flatten)]
    pub row: &'a RequestRow,
    pub findings: Vec<ozo_domain::finding::FindingJson<'a>>,
    pub status_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<&'a CertificateRow>,
    /// Approvals so far, when loaded; the names stay on the operator's pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvals: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvals_required: Option<usize>,
}

pub fn findings_of(row: &RequestRow) -> Vec<Finding> {
    row.findings.iter().filter_map(|stored| stored.to_finding()).collect()
}

pub fn request_view<'a>(
    row: &'a RequestRow,
    findings: &'a [Finding],
    certificate: Option<&'a CertificateRow>,
    lang: Lang,
) -> RequestView<'a> {
    RequestView {
        row,
        findings: findings.iter().map(|f| f.to_json(lang)).collect(),
        status_url: format!("/api/v1/requests/{}", row.id),
        certificate_url: certificate.map(|_| format!("/api/v1/requests/{}/certificate", row.id)),
        certificate,
        approvals: None,
        approvals_required: None,
    }
}
