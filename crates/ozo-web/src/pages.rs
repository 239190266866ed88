//! Server-rendered pages for operators. They work without JavaScript; every form that
//! changes state carries the session's CSRF token.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use ozo_domain::{Lang, RequestStatus};
use ozo_store::accounts;
use ozo_store::certificates::{self, CertificateRow};
use ozo_store::events::{self, Event};
use ozo_store::requests::{self, RequestRow};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::{self, PageRejection, PageSession, ReaderSession};
use crate::client_address::ClientAddress;
use crate::extract::RequestId;
use crate::i18n::{page_texts, PageTexts, RequestLang};
use crate::issuance;
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/login", get(login_form).post(login))
        .route("/operator/requests", get(queue))
        .route("/operator/requests/{id}", get(request_page))
        .route("/operator/requests/{id}/preview", get(preview_page))
        .route("/operator/requests/{id}/approve", post(approve))
        .route("/operator/requests/{id}/deny", post(deny))
        .route("/operator/requests/{id}/retry", post(retry))
        .route("/operator/requests/{id}/revoke", post(revoke))
        .route("/operator/invitations", get(invitations_page).post(create_invitation))
        .route("/operator/invitations/{id}/withdraw", post(withdraw_invitation))
}

const STYLESHEET: &str = include_str!("../../../templates/style.css");

/// Returns a 404 problem for unknown paths that points to the API and the operator pages.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    let text = crate::i18n::Text::new(
        format!(
            "No page or API route at {}. The API is under /api/v1; operators start at /operator/requests.",
            uri.path()
        ),
        format!(
            "Geen pagina of API-route op {}. De API staat onder /api/v1; operators beginnen op /operator/requests.",
            uri.path()
        ),
    );
    ApiError::NotFound(text).into_response()
}

pub async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], STYLESHEET)
        .into_response()
}

fn render(template: &impl Template) -> Result<Response, ApiError> {
    Ok(Html(template.render()?).into_response())
}

struct EnvironmentLine {
    name: String,
    subject: String,
    openssl_subj: String,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    t: &'a PageTexts,
    user: Option<crate::auth::NavUser>,
    csrf: String,
    environments: Vec<EnvironmentLine>,
}

async fn index(State(state): State<AppState>, RequestLang(lang): RequestLang) -> Result<Response, ApiError> {
    let environments = state
        .environments()
        .map(|runtime| EnvironmentLine {
            name: runtime.environment.name.to_string(),
            subject: runtime.environment.subject.to_string(),
            openssl_subj: runtime.environment.subject.openssl_subj(),
        })
        .collect();
    render(&IndexPage { t: page_texts(lang), user: None, csrf: String::new(), environments })
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    t: &'a PageTexts,
    user: Option<crate::auth::NavUser>,
    csrf: String,
    failed: bool,
    locked: bool,
    name: String,
    /// The page to return to after signing in.
    next: String,
}

#[derive(Deserialize)]
struct NextQuery {
    #[serde(default)]
    next: String,
}

/// Keeps a return address only when it is a path on this site, so that the login page
/// cannot send anyone elsewhere.
fn safe_next(next: &str) -> Option<&str> {
    let local = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') && !next.contains("://");
    local.then_some(next)
}

async fn login_form(RequestLang(lang): RequestLang, Query(query): Query<NextQuery>) -> Result<Response, ApiError> {
    render(&LoginPage {
        t: page_texts(lang),
        user: None,
        csrf: String::new(),
        failed: false,
        locked: false,
        name: String::new(),
        next: safe_next(&query.next).unwrap_or_default().to_owned(),
    })
}

/// The window in which failed sign-ins count.
const LOGIN_WINDOW: time::Duration = time::Duration::minutes(15);
/// Failures after which each further attempt waits longer.
const SLOW_AFTER: i64 = 3;
/// Failures for one account name, or from one address, after which sign-in is locked for
/// the rest of the window.
const LOCK_AFTER_FOR_ACCOUNT: i64 = 10;
const LOCK_AFTER_FROM_ADDRESS: i64 = 30;

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// The Argon2id hash of a random password, checked when the account does not exist so
/// that the response takes as long as for a wrong password.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    auth::hash_password(&auth::random_secret()).expect("hashing a random password with default parameters succeeds")
});

async fn login(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    ClientAddress(address): ClientAddress,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiError> {
    let name = form.name.trim().to_owned();

    // Repeated failures slow the next attempt. The wait happens before a connection is
    // taken, so slowed attempts hold no database resources.
    let mut peek = state.pool().acquire().await?;
    let (earlier, _) = accounts::login_failures(&mut peek, &name, address, LOGIN_WINDOW).await?;
    drop(peek);
    if (SLOW_AFTER..LOCK_AFTER_FOR_ACCOUNT).contains(&earlier) {
        let steps = (earlier - SLOW_AFTER + 1).min(8) as u64;
        tokio::time::sleep(std::time::Duration::from_millis(250 * steps)).await;
    }

    // Attempts for one name take turns, so parallel guesses cannot all pass the count
    // before any of them is recorded.
    let mut conn = state.pool().begin().await?;
    accounts::lock_sign_in(&mut conn, &name).await?;
    let (for_account, from_address) = accounts::login_failures(&mut conn, &name, address, LOGIN_WINDOW).await?;
    let account = accounts::find_by_name(&mut conn, &name).await?;
    // A name that is no account may be a password typed into the wrong field, so logs
    // and events show only a digest of it.
    let shown_name = match &account {
        Some(_) => name.clone(),
        None => format!("unknown account {}", &hex::encode(auth::secret_sha256(&name))[..12]),
    };
    if for_account >= LOCK_AFTER_FOR_ACCOUNT || from_address >= LOCK_AFTER_FROM_ADDRESS {
        tracing::warn!(account.name = %shown_name, client.address = %address, failures.account = for_account, failures.address = from_address, "sign-in locked after repeated failures");
        let page = LoginPage {
            t: page_texts(lang),
            user: None,
            csrf: String::new(),
            failed: false,
            locked: true,
            name,
            next: form.next.clone(),
        };
        let mut response = render(&page)?;
        *response.status_mut() = axum::http::StatusCode::TOO_MANY_REQUESTS;
        let retry_after = LOGIN_WINDOW.whole_seconds().to_string();
        if let Ok(value) = header::HeaderValue::from_str(&retry_after) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(response);
    }

    let hash = account.as_ref().and_then(|a| a.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.clone());
    let password = form.password;
    let password_ok = tokio::task::spawn_blocking(move || auth::verify_password(&hash, &password))
        .await
        .map_err(anyhow::Error::from)?;

    let account = match account {
        Some(account) if password_ok && !account.roles.is_empty() => account,
        _ => {
            accounts::insert_login_failure(&mut conn, &name, address).await?;
            let detail = serde_json::json!({ "account": shown_name, "address": address.to_string() });
            ozo_store::events::append(
                &mut conn,
                &ozo_store::events::Actor::Client,
                None,
                "account.sign_in_failed",
                detail,
            )
            .await?;
            tracing::warn!(account.name = %shown_name, client.address = %address, failures.account = for_account + 1, "failed sign-in");
            let page = LoginPage {
                t: page_texts(lang),
                user: None,
                csrf: String::new(),
                failed: true,
                locked: false,
                name,
                next: form.next.clone(),
            };
            conn.commit().await?;
            let mut response = render(&page)?;
            *response.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
            return Ok(response);
        }
    };
    accounts::clear_login_failures(&mut conn, &account.name).await?;
    let detail = serde_json::json!({ "address": address.to_string() });
    ozo_store::events::append(
        &mut conn,
        &ozo_store::events::Actor::Account(account.name.clone()),
        None,
        "account.signed_in",
        detail,
    )
    .await?;

    // A new session id at every login, so an id planted before login is worthless.
    let session_id = auth::random_secret();
    let csrf = auth::random_secret();
    let expires_at = time::OffsetDateTime::now_utc() + state.settings().session_lifetime;
    accounts::insert_session(&mut conn, &auth::secret_sha256(&session_id), account.id, &csrf, expires_at).await?;
    conn.commit().await?;
    tracing::info!(account.name = %account.name, "signed in");

    let settings = state.settings();
    let cookie = if settings.secure_cookies {
        format!("{}={session_id}; Path=/; HttpOnly; Secure; SameSite=Strict", auth::SECURE_SESSION_COOKIE)
    } else {
        format!("{}={session_id}; Path=/; HttpOnly; SameSite=Strict", auth::SESSION_COOKIE)
    };
    let start = if let Some(next) = safe_next(&form.next) {
        next
    } else if account.has_role("operator") || account.has_role("auditor") {
        "/operator/requests"
    } else {
        "/admin/accounts"
    };
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(start)).into_response())
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    session: PageSession,
    request_headers: axum::http::HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageRejection> {
    session.check_csrf(&form.csrf)?;

    let cookie = auth::session_cookie_value(&request_headers).unwrap_or_default();
    let mut conn = state.pool().acquire().await.map_err(ApiError::from)?;
    accounts::delete_session(&mut conn, &auth::secret_sha256(&cookie)).await.map_err(ApiError::from)?;
    tracing::info!(account.name = %session.account.name, "operator signed out");

    let expired = if state.settings().secure_cookies {
        format!("{}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0", auth::SECURE_SESSION_COOKIE)
    } else {
        format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", auth::SESSION_COOKIE)
    };
    Ok(([(header::SET_COOKIE, expired)], Redirect::to("/login")).into_response())
}

struct QueueLine {
    id: Uuid,
    environment: String,
    organisation: String,
    status: String,
    received: String,
    /// How long ago the request came in, in whole minutes, hours or days.
    age: String,
    /// Approvals so far and needed, as "1 / 2".
    approvals: String,
    findings: String,
    unverified: bool,
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage<'a> {
    t: &'a PageTexts,
    user: Option<crate::auth::NavUser>,
    csrf: String,
    statuses: Vec<&'static str>,
    selected: String,
    environments: Vec<String>,
    selected_environment: String,
    organisation: String,
    lines: Vec<QueueLine>,
}

#[derive(Deserialize)]
struct QueueQuery {
    status: Option<String>,
    environment: Option<String>,
    organisation: Option<String>,
}

/// Formats the time since `since` as one rounded unit, such as "5 min", "3 h" or "2 d".
fn age(since: time::OffsetDateTime) -> String {
    let elapsed = time::OffsetDateTime::now_utc() - since;
    if elapsed < time::Duration::HOUR {
        format!("{} min", elapsed.whole_minutes().max(0))
    } else if elapsed < time::Duration::DAY {
        format!("{} h", elapsed.whole_hours())
    } else {
        format!("{} d", elapsed.whole_days())
    }
}

async fn queue(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    ReaderSession(session): ReaderSession,
    Query(query): Query<QueueQuery>,
) -> Result<Response, PageRejection> {
    let selected = query.status.unwrap_or_else(|| "pending".to_owned());
    let status = selected.parse::<RequestStatus>().ok();

    let environment_filter = query.environment.filter(|name| !name.is_empty() && name != "all");
    let organisation_filter = query.organisation.unwrap_or_default().trim().to_owned();

    let mut conn = state.pool().acquire().await.map_err(ApiError::from)?;
    let organisation = Some(organisation_filter.as_str()).filter(|name| !name.is_empty());
    // NOTE: the queue shows the oldest 500 matching requests; narrow the filters to reach
    // later ones.
    let rows = requests::list(&mut conn, status, environment_filter.as_deref(), organisation, 500).await?;
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let approvals = ozo_store::approvals::counts(&mut conn, &ids).await?;

    let lines = rows
        .iter()
        .map(|row| {
            let required = state.environment(&row.environment).map_or(1, |environment| environment.approvals_required);
            QueueLine {
                id: row.id,
                environment: row.environment.clone(),
                organisation: row.organisation.clone(),
                status: row.status.to_string(),
                received: format_time(row.created_at),
                age: age(row.created_at),
                approvals: format!("{} / {required}", approvals.get(&row.id).copied().unwrap_or(0)),
                findings: row.findings.iter().map(|f| f.code.as_str()).collect::<Vec<_>>().join(", "),
                unverified: row.unverified,
            }
        })
        .collect();
    let mut statuses = vec!["all"];
    statuses.extend(RequestStatus::ALL.iter().map(|s| s.as_str()));
    let page = QueuePage {
        t: page_texts(lang),
        user: Some(crate::auth::NavUser::of(&session.account)),
        csrf: session.csrf_token.clone(),
        statuses,
        selected,
        environments: state.environment_list().iter().map(|environment| environment.name.to_string()).collect(),
        selected_environment: environment_filter.unwrap_or_else(|| "all".to_owned()),
        organisation: organisation_filter,
        lines,
    };
    Ok(render(&page)?)
}

struct FindingLine {
    code: String,
    severity: String,
    message: String,
}

#[derive(Template)]
#[template(path = "request.html")]
struct RequestPage<'a> {
    t: &'a PageTexts,
    user: Option<crate::auth::NavUser>,
    csrf: String,
    received: String,
    valid_until: String,
    history: Vec<HistoryLine>,
    row: RequestRow,
    fingerprint: String,
    findings: Vec<FindingLine>,
    certificate: Option<CertificateRow>,
    notice: Option<String>,
    pending: bool,
    failed: bool,
    issued: bool,
    reasons: Vec<&'static str>,
    preview: Option<PreviewView>,
    /// The last error of the request's waiting job at the CA.
    job_error: Option<String>,
    /// The approvals: account name and time.
    approvals: Vec<(String, String)>,
    approvals_required: usize,
    /// Whether the viewer may act on the request: operators may, auditors only read.
    can_act: bool,
    /// The subject and signature algorithm of the stored CSR as validated now; empty when
    /// it no longer validates.
    subject: String,
    signature_algorithm: String,
    /// Other requests of the same organisation: id, environment, status, received, serial.
    related: Vec<(Uuid, String, String, String, String)>,
    /// The reason the viewer may not approve this request, if any.
    approval_blocked: Option<String>,
    /// Whether an approval by the viewer still leaves the request waiting for another.
    approval_partial: bool,
    /// Whether the environment's CA can show the certificate before issuing it.
    preview_supported: bool,
}

/// The CA's response to a preview request.
enum PreviewView {
    Unsupported,
    Certificate {
        subject: String,
        valid_from: String,
        valid_until: String,
        key_usages: String,
        extended_key_usages: String,
        issuer: String,
    },
}

struct HistoryLine {
    at: String,
    actor: String,
    kind: String,
}

async fn request_page(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    ReaderSession(session): ReaderSession,
    RequestId(id): RequestId,
) -> Result<Response, PageRejection> {
    Ok(render_request(&state, lang, &session, id, None, None).await?)
}

async fn preview_page(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    session: PageSession,
    RequestId(id): RequestId,
) -> Result<Response, PageRejection> {
    let preview = match issuance::preview(&state, id).await? {
        None => PreviewView::Unsupported,
        Some(preview) => PreviewView::Certificate {
            subject: preview.subject,
            valid_from: preview.not_before.map(format_time).unwrap_or_default(),
            valid_until: preview.not_after.map(format_time).unwrap_or_default(),
            key_usages: preview.key_usages.join(", "),
            extended_key_usages: preview.extended_key_usages.join(", "),
            issuer: preview.issuer,
        },
    };

    Ok(render_request(&state, lang, &session, id, None, Some(preview)).await?)
}

async fn render_request(
    state: &AppState,
    lang: Lang,
    session: &PageSession,
    id: Uuid,
    notice: Option<String>,
    preview: Option<PreviewView>,
) -> Result<Response, ApiError> {
    let row = issuance::load_request(state, id).await?;
    let mut conn = state.pool().acquire().await?;
    let certificate = certificates::for_request(&mut conn, id).await?;
    let events = events::for_request(&mut conn, id).await?;
    let job_error = ozo_store::jobs::last_error(&mut conn, id).await?;
    let approvals: Vec<(String, String)> = ozo_store::approvals::for_request(&mut conn, id)
        .await?
        .into_iter()
        .map(|approval| (approval.account, format_time(approval.approved_at)))
        .collect();
    let approvals_required =
        state.environment(&row.environment).map_or(1, |environment| environment.approvals_required);
    let related = requests::of_organisation(&mut conn, &row.organisation, row.id, 20)
        .await?
        .into_iter()
        .map(|other| {
            (
                other.id,
                other.environment,
                other.status,
                format_time(other.created_at),
                other.serial_hex.unwrap_or_default(),
            )
        })
        .collect();
    let viewer = &session.account.name;
    let invited_by_viewer = match row.invitation_id {
        Some(invitation_id) => ozo_store::invitations::get(&mut conn, invitation_id)
            .await?
            .is_some_and(|invitation| invitation.created_by == format!("account:{viewer}")),
        None => false,
    };
    let approved_by_viewer = approvals.iter().any(|(account, _)| account == viewer);
    let approval_blocked = if approved_by_viewer {
        Some(match lang {
            Lang::En => "You approved this request; another operator must approve it too.",
            Lang::Nl => "U heeft deze aanvraag goedgekeurd; een andere operator moet deze ook goedkeuren.",
        })
    } else if invited_by_viewer {
        Some(match lang {
            Lang::En => "You created the invitation this request came in on, so another operator must approve it.",
            Lang::Nl => "U heeft de uitnodiging gemaakt waarmee deze aanvraag binnenkwam, dus een andere operator moet deze goedkeuren.",
        })
    } else {
        None
    }
    .map(str::to_owned);
    let approval_partial = approvals.len() + 1 < approvals_required;
    let preview_supported =
        state.environment(&row.environment).is_some_and(|environment| environment.signer.supports_preview());
    let decoded = issuance::approval_digest(state, &row).ok();
    let subject = decoded
        .as_ref()
        .map(|(csr, _)| format!("CN={}, O={}", csr.subject().common_name, csr.subject().organization))
        .unwrap_or_default();
    let signature_algorithm = decoded.as_ref().map(|(csr, _)| csr.signature_algorithm().to_owned()).unwrap_or_default();

    let findings = issuance::findings_of(&row)
        .into_iter()
        .map(|f| FindingLine {
            code: f.code.as_str().to_owned(),
            severity: f.severity.as_str().to_owned(),
            message: f.message(lang).to_owned(),
        })
        .collect();
    let history = events
        .iter()
        .map(|event: &Event| HistoryLine {
            at: format_time(event.at),
            actor: event.actor.clone(),
            kind: event.kind.clone(),
        })
        .collect();
    let page = RequestPage {
        t: page_texts(lang),
        user: Some(crate::auth::NavUser::of(&session.account)),
        csrf: session.csrf_token.clone(),
        received: format_time(row.created_at),
        valid_until: certificate.as_ref().map(|c| format_time(c.not_after)).unwrap_or_default(),
        history,
        fingerprint: row.spki_sha256.as_deref().map(hex::encode).unwrap_or_default(),
        pending: row.status == RequestStatus::Pending,
        failed: row.status == RequestStatus::Failed,
        issued: row.status == RequestStatus::Issued,
        reasons: ozo_domain::RevocationReason::ALL.iter().map(|reason| reason.as_str()).collect(),
        row,
        findings,
        certificate,
        notice,
        preview,
        job_error,
        approvals,
        approvals_required,
        can_act: session.account.has_role("operator"),
        subject,
        signature_algorithm,
        related,
        approval_blocked,
        approval_partial,
        preview_supported,
    };
    render(&page)
}

#[derive(Deserialize)]
struct ApproveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
}

async fn approve(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    session: PageSession,
    RequestId(id): RequestId,
    Form(form): Form<ApproveForm>,
) -> Result<Response, PageRejection> {
    session.check_csrf(&form.csrf)?;
    if form.confirm != "yes" {
        let notice = match lang {
            Lang::En => "Tick the confirmation box to approve.",
            Lang::Nl => "Vink het bevestigingsvakje aan om goed te keuren.",
        };
        return Ok(render_request(&state, lang, &session, id, Some(notice.to_owned()), None).await?);
    }

    match issuance::approve(&state, id, &session.account).await {
        Ok(row) if row.status == RequestStatus::Pending => {
            let notice = match lang {
                Lang::En => "Your approval is recorded. The certificate is signed once another operator approves too.",
                Lang::Nl => "Uw goedkeuring is vastgelegd. Het certificaat wordt ondertekend zodra een andere operator ook goedkeurt.",
            };
            Ok(render_request(&state, lang, &session, id, Some(notice.to_owned()), None).await?)
        }
        Ok(_) => Ok(Redirect::to(&format!("/operator/requests/{id}")).into_response()),
        Err(ApiError::Conflict { text, .. } | ApiError::FourEyes(text)) => {
            Ok(render_request(&state, lang, &session, id, Some(text.get(lang).to_owned()), None).await?)
        }
        Err(error) => Err(error.into()),
    }
}

async fn retry(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    session: PageSession,
    RequestId(id): RequestId,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageRejection> {
    session.check_csrf(&form.csrf)?;

    match issuance::retry(&state, id, &session.account.name).await {
        Ok(_) => Ok(Redirect::to(&format!("/operator/requests/{id}")).into_response()),
        Err(ApiError::Conflict { text, .. }) => {
            Ok(render_request(&state, lang, &session, id, Some(text.get(lang).to_owned()), None).await?)
        }
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize)]
struct RevokeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: String,
}

async fn revoke(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    session: PageSession,
    RequestId(id): RequestId,
    Form(form): Form<RevokeForm>,
) -> Result<Response, PageRejection> {
    session.check_csrf(&form.csrf)?;
    if form.confirm != "yes" {
        let notice = match lang {
            Lang::En => "Tick the confirmation box to revoke.",
            Lang::Nl => "Vink het bevestigingsvakje aan om in te trekken.",
        };
        return Ok(render_request(&state, lang, &session, id, Some(notice.to_owned()), None).await?);
    }

    match issuance::revoke(&state, id, &session.account.name, &form.reason).await {
        Ok(_) => Ok(Redirect::to(&format!("/operator/requests/{id}")).into_response()),
        Err(ApiError::Conflict { text, .. } | ApiError::BadRequest(text)) => {
            Ok(render_request(&state, lang, &session, id, Some(text.get(lang).to_owned()), None).await?)
        }
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize)]
struct DenyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn deny(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    session: PageSession,
    RequestId(id): RequestId,
    Form(form): Form<DenyForm>,
) -> Result<Response, PageRejection> {
    session.check_csrf(&form.csrf)?;

    match issuance::deny(&state, id, &session.account.name, &form.reason).await {
        Ok(_) => Ok(Redirect::to(&format!("/operator/requests/{id}")).into_response()),
        Err(ApiError::Conflict { text, .. } | ApiError::BadRequest(text)) => {
            Ok(render_request(&state, lang, &session, id, Some(text.get(lang).to_owned()), None).await?)
        }
        Err(error) => Err(error.into()),
    }
}

pub(crate) fn format_time(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_default()
}

struct InvitationLine {
    id: Uuid,
    organisation: String,
    contact: String,
    environments: String,
    used: String,
    expires: String,
    state: String,
    active: bool,
}

#[derive(Template)]
#[template(path = "invitations.html")]
struct InvitationsPage<'a> {
    t: &'a PageTexts,
    user: Option<crate::auth::NavUser>,
    csrf: String,
    environments: Vec<String>,
    lines: Vec<InvitationLine>,
    error: Option<String>,
    created: Option<CreatedInvitation>,
    default_days: i64,
    /// The operator's input, kept when the form comes back with an error.
    organisation: String,
    contact: String,
    chosen: Vec<String>,
}

struct CreatedInvitation {
    organisation: String,
    code: String,
    link: String,
}

async fn render_invitations(
    state: &AppState,
    lang: Lang,
    session: &PageSession,
    error: Option<String>,
    created: Option<CreatedInvitation>,
    kept: Option<&InvitationForm>,
) -> Result<Response, ApiError> {
    let mut conn = state.pool().acquire().await?;
    let rows = ozo_store::invitations::list(&mut conn, 200).await?;
    let now = time::OffsetDateTime::now_utc();
    let t = page_texts(lang);
    let lines = rows
        .into_iter()
        .map(|row| {
            let (state_text, active) = if row.withdrawn_at.is_some() {
                (t.withdrawn, false)
            } else if row.expires_at <= now {
                (t.expired, false)
            } else if row.used_environments.len() == row.environments.len() {
                (t.used, false)
            } else {
                (t.open, true)
            };
            InvitationLine {
                id: row.id,
                organisation: row.organisation,
                contact: row.contact,
                environments: row.environments.join(", "),
                used: row.used_environments.join(", "),
                expires: format_time(row.expires_at),
                state: state_text.to_owned(),
                active,
            }
        })
        .collect();
    let page = InvitationsPage {
        t,
        user: Some(crate::auth::NavUser::of(&session.account)),
        csrf: session.csrf_token.clone(),
        environments: state.environment_names().into_iter().map(str::to_owned).collect(),
        lines,
        error,
        created,
        default_days: crate::invitations::DEFAULT_VALIDITY_DAYS,
        organisation: kept.map(|form| form.organisation.clone()).unwrap_or_default(),
        contact: kept.map(|form| form.contact.clone()).unwrap_or_default(),
        chosen: kept.map(|form| form.environments.clone()).unwrap_or_default(),
    };
    render(&page)
}

async fn invitations_page(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    session: PageSession,
) -> Result<Response, PageRejection> {
    Ok(render_invitations(&state, lang, &session, None, None, None).await?)
}

#[derive(Deserialize)]
struct InvitationForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    contact: String,
    #[serde(default, rename = "environment")]
    environments: Vec<String>,
    #[serde(default)]
    valid_days: String,
}

async fn create_invitation(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    session: PageSession,
    headers: axum::http::HeaderMap,
    axum_extra::extract::Form(form): axum_extra::extract::Form<InvitationForm>,
) -> Result<Response, PageRejection> {
    session.check_csrf(&form.csrf)?;

    let valid_days = form.valid_days.trim().parse::<i64>().ok();
    let input = crate::invitations::InvitationInput {
        organisation: form.organisation.clone(),
        contact: form.contact.clone(),
        environments: form.environments.clone(),
        valid_days,
    };
    let created_by = format!("account:{}", session.account.name);
    match crate::invitations::create(state.pool(), &state.environment_names(), input, &created_by).await {
        Ok((row, code)) => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
            let scheme = if state.settings().secure_cookies { "https" } else { "http" };
            let link = format!("{scheme}://{host}/upload?invitation={code}");
            let created = CreatedInvitation { organisation: row.organisation, code, link };
            Ok(render_invitations(&state, lang, &session, None, Some(created), None).await?)
        }
        Err(ApiError::BadRequest(text)) => {
            let error = Some(text.get(lang).to_owned());
            Ok(render_invitations(&state, lang, &session, error, None, Some(&form)).await?)
        }
        Err(error) => Err(error.into()),
    }
}

async fn withdraw_invitation(
    State(state): State<AppState>,
    session: PageSession,
    crate::extract::InvitationId(id): crate::extract::InvitationId,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageRejection> {
    session.check_csrf(&form.csrf)?;

    crate::invitations::withdraw(state.pool(), id, &format!("account:{}", session.account.name)).await?;

    Ok(Redirect::to("/operator/invitations").into_response())
}
