//! The pages of clients: the upload form and the status page of a request. Both work
//! without JavaScript and are rate-limited per client address.

use std::net::IpAddr;

use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use ozo_domain::{FindingCode, Lang, RequestStatus};
use ozo_store::certificates;
use ozo_store::requests::{self, RequestRow};
use serde::Deserialize;

use crate::auth::secret_sha256;
use crate::client_address::ClientAddress;
use crate::i18n::{client_texts, page_texts, ClientTexts, PageTexts, RequestLang, Text};
use crate::issuance::{self, Upload};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/upload", get(upload_form).post(upload))
        .route("/status/{token}", get(status_page))
        .route("/status/{token}/{file}", get(status_download))
}

struct EnvironmentOption {
    name: String,
    subject: String,
    command: String,
    selected: bool,
}

struct FindingLine {
    code: String,
    severity: String,
    message: String,
}

#[derive(Template)]
#[template(path = "upload.html")]
struct UploadPage<'a> {
    t: &'a PageTexts,
    c: &'a ClientTexts,
    user: Option<crate::auth::NavUser>,
    csrf: String,
    invitation: String,
    /// The organisation of a valid invitation, shown so the client sees it is theirs.
    invited_organisation: Option<String>,
    error: Option<String>,
    environments: Vec<EnvironmentOption>,
    /// Whether some environment takes uploads without an invitation, so the form has
    /// fields for the organisation and contact.
    asks_organisation: bool,
    organisation: String,
    contact: String,
    csr: String,
    findings: Vec<FindingLine>,
    key_removed: bool,
}

/// The client's form input, kept when the form comes back with findings.
#[derive(Default)]
struct UploadForm {
    invitation: String,
    environment: String,
    organisation: String,
    contact: String,
    csr_text: String,
    csr_file: Vec<u8>,
}

fn upload_page(state: &AppState, lang: Lang, form: &UploadForm) -> UploadPage<'static> {
    let environments = state
        .environments()
        .map(|runtime| {
            let env = &runtime.environment;
            EnvironmentOption {
                name: env.name.to_string(),
                subject: env.subject.to_string(),
                command: format!(
                    "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout client-key.pem -out client.csr -subj \"{}\"",
                    env.subject.openssl_subj()
                ),
                selected: env.name.as_str() == form.environment,
            }
        })
        .collect();
    UploadPage {
        t: page_texts(lang),
        c: client_texts(lang),
        user: None,
        csrf: String::new(),
        invitation: form.invitation.clone(),
        invited_organisation: None,
        error: None,
        environments,
        asks_organisation: state.environments().any(|runtime| runtime.allow_uploads_without_invitation),
        organisation: form.organisation.clone(),
        contact: form.contact.clone(),
        csr: form.csr_text.clone(),
        findings: Vec::new(),
        key_removed: false,
    }
}

fn render(template: &impl Template, status: StatusCode) -> Result<Response, ApiError> {
    Ok((status, Html(template.render()?)).into_response())
}

#[derive(Deserialize)]
struct UploadQuery {
    invitation: Option<String>,
    environment: Option<String>,
}

async fn upload_form(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    Query(query): Query<UploadQuery>,
) -> Result<Response, ApiError> {
    let form = UploadForm {
        invitation: query.invitation.unwrap_or_default(),
        environment: query.environment.unwrap_or_default(),
        ..UploadForm::default()
    };
    let mut page = upload_page(&state, lang, &form);

    apply_invitation(&state, lang, &mut page, &form.invitation).await?;
    render(&page, StatusCode::OK)
}

/// Shows the invitation's organisation and narrows the environments to those it may
/// still be used for, or shows why the code does not work.
async fn apply_invitation(
    state: &AppState,
    lang: Lang,
    page: &mut UploadPage<'static>,
    code: &str,
) -> Result<(), ApiError> {
    let code = code.trim();
    if code.is_empty() {
        return Ok(());
    }
    let mut conn = state.pool().acquire().await?;
    let hash = secret_sha256(&crate::invitations::normalise_code(code));
    let Some(invitation) = ozo_store::invitations::find_by_code(&mut conn, &hash).await? else {
        page.error = Some(
            Text::new(
                "The invitation code is unknown. Check that you copied the whole code or link.",
                "De uitnodigingscode is onbekend. Controleer of u de hele code of link hebt gekopieerd.",
            )
            .get(lang)
            .to_owned(),
        );
        return Ok(());
    };

    let now = time::OffsetDateTime::now_utc();
    let usable: Vec<&String> = invitation
        .environments
        .iter()
        .filter(|env| crate::invitations::problem(&invitation, env, now).is_none())
        .collect();
    if usable.is_empty() {
        let first = invitation.environments.first().map(String::as_str).unwrap_or_default();
        page.error = crate::invitations::problem(&invitation, first, now).map(|text| text.get(lang).to_owned());
    } else {
        page.environments.retain(|option| usable.contains(&&option.name));
        if page.environments.len() == 1 {
            page.environments[0].selected = true;
        }
    }
    page.invited_organisation = Some(invitation.organisation);
    Ok(())
}

/// Reads the upload form's fields into `form`. On an error, `form` keeps the fields read
/// before it; browsers send them in the form's order, with the environment before the CSR.
async fn read_form(mut multipart: Multipart, form: &mut UploadForm) -> Result<(), ApiError> {
    let unreadable = |error: axum::extract::multipart::MultipartError| {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(Text::new(
                format!("The form could not be read ({error}). Reload the page and try again."),
                format!(
                    "Het formulier kon niet worden gelezen ({error}). Laad de pagina opnieuw en probeer het nog eens."
                ),
            ))
        }
    };
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "csr_file" => form.csr_file = field.bytes().await.map_err(unreadable)?.to_vec(),
            "invitation" => form.invitation = field.text().await.map_err(unreadable)?,
            "environment" => form.environment = field.text().await.map_err(unreadable)?,
            "organisation" => form.organisation = field.text().await.map_err(unreadable)?,
            "contact" => form.contact = field.text().await.map_err(unreadable)?,
            "csr" => form.csr_text = field.text().await.map_err(unreadable)?,
            _ => {}
        }
    }
    Ok(())
}

async fn upload(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    ClientAddress(client): ClientAddress,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    let mut form = UploadForm::default();
    if let Err(error) = read_form(multipart, &mut form).await {
        if let ApiError::PayloadTooLarge = error {
            crate::ops::count_oversized_upload(&state, Some(&form.environment));
        }
        return Err(error);
    }
    let mut page = upload_page(&state, lang, &form);
    apply_invitation(&state, lang, &mut page, &form.invitation).await?;
    if let Err(error) = state.limit_upload(client, Some(&form.invitation)).await {
        let ApiError::TooManyRequests { retry_after } = error else {
            return Err(error);
        };
        page.error = Some(crate::ratelimit::wait_text(retry_after).get(lang).to_owned());
        let mut response = render(&page, StatusCode::TOO_MANY_REQUESTS)?;
        response.headers_mut().insert(header::RETRY_AFTER, (retry_after.as_secs() + 1).into());
        return Ok(response);
    }

    // A chosen file wins over pasted text; browsers send an empty file part when no
    // file was chosen.
    let csr = if form.csr_file.is_empty() { form.csr_text.clone().into_bytes() } else { form.csr_file.clone() };
    // Show what was checked: the file's text replaces pasted text in the form.
    if !form.csr_file.is_empty() {
        page.csr = String::from_utf8(form.csr_file.clone()).unwrap_or_default();
    }
    let submitted = Upload {
        environment: form.environment.clone(),
        invitation: Some(form.invitation.clone()),
        organisation: form.organisation.clone(),
        contact: form.contact.clone(),
        csr,
    };

    match issuance::upload(&state, submitted).await {
        Ok(uploaded) => Ok(Redirect::to(&format!("/status/{}", uploaded.status_token)).into_response()),
        Err(ApiError::Rejected { findings, .. }) => {
            // Never send a private key back to the browser.
            if findings.iter().any(|f| f.code == FindingCode::PrivateKey) {
                page.csr.clear();
                page.key_removed = true;
            }
            page.findings = findings
                .iter()
                .map(|f| FindingLine {
                    code: f.code.to_string(),
                    severity: f.severity.as_str().to_owned(),
                    message: f.message(lang).to_owned(),
                })
                .collect();
            render(&page, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(ApiError::BadRequest(text) | ApiError::Invitation(text)) => {
            page.error = Some(text.get(lang).to_owned());
            render(&page, StatusCode::BAD_REQUEST)
        }
        Err(ApiError::PayloadTooLarge) => {
            page.csr.clear();
            page.error = Some(
                Text::new(
                    "The upload is too large; a CSR is about 400 bytes.",
                    "De upload is te groot; een CSR is ongeveer 400 bytes.",
                )
                .get(lang)
                .to_owned(),
            );
            render(&page, StatusCode::PAYLOAD_TOO_LARGE)
        }
        Err(error) => Err(error),
    }
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage<'a> {
    t: &'a PageTexts,
    c: &'a ClientTexts,
    user: Option<crate::auth::NavUser>,
    csrf: String,
    token: String,
    row: RequestRow,
    status_text: &'static str,
    received: String,
    findings: Vec<FindingLine>,
    serial: String,
    valid_until: String,
    curl_command: String,
    issued: bool,
    next_step: &'static str,
    /// The operator's reason, shown only for a denial or a revocation: a failure's reason
    /// is an internal CA message for operators.
    client_reason: Option<String>,
}

/// Finds the request of a status token, counting the view against the address's limit.
async fn request_of_token(state: &AppState, client: IpAddr, token: &str) -> Result<RequestRow, ApiError> {
    state.limit_status(client).await?;
    let mut conn = state.pool().acquire().await?;
    requests::find_by_status_token(&mut conn, &secret_sha256(token)).await?.ok_or_else(|| {
        ApiError::NotFound(Text::new(
            "No request has this status page. Check that you copied the whole link.",
            "Geen aanvraag heeft deze statuspagina. Controleer of u de hele link hebt gekopieerd.",
        ))
    })
}

async fn status_page(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    ClientAddress(client): ClientAddress,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let row = request_of_token(&state, client, &token).await?;

    let mut conn = state.pool().acquire().await?;
    let certificate = certificates::for_request(&mut conn, row.id).await?;
    let c = client_texts(lang);
    let test_url = state.environment(&row.environment).map(|runtime| runtime.test_url.clone()).unwrap_or_default();

    let page = StatusPage {
        t: page_texts(lang),
        c,
        user: None,
        csrf: String::new(),
        token,
        status_text: c.status_text(row.status),
        received: crate::pages::format_time(row.created_at),
        findings: issuance::findings_of(&row)
            .iter()
            .map(|f| FindingLine {
                code: f.code.to_string(),
                severity: f.severity.as_str().to_owned(),
                message: f.message(lang).to_owned(),
            })
            .collect(),
        serial: certificate.as_ref().map(|c| c.serial_hex.clone()).unwrap_or_default(),
        valid_until: certificate.as_ref().map(|c| crate::pages::format_time(c.not_after)).unwrap_or_default(),
        curl_command: format!("curl --cert client-cert.pem --key client-key.pem {test_url}"),
        issued: certificate.is_some() && row.status == RequestStatus::Issued,
        next_step: c.next_step(row.status),
        client_reason: row
            .status_reason
            .clone()
            .filter(|_| matches!(row.status, RequestStatus::Denied | RequestStatus::Revoked)),
        row,
    };
    render(&page, StatusCode::OK)
}

async fn status_download(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Path((token, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let row = request_of_token(&state, client, &token).await?;

    let body = if file == "ca-cert.pem" {
        let runtime = state
            .environment(&row.environment)
            .ok_or_else(|| anyhow::anyhow!("environment {} is not configured", row.environment))?;
        runtime.signer.ca_certificate_pem().to_owned()
    } else {
        let mut conn = state.pool().acquire().await?;
        let certificate = certificates::for_request(&mut conn, row.id).await?.ok_or_else(|| ApiError::Conflict {
            current: row.status,
            text: Text::new(
                format!("The request is {}; there is no certificate to download.", row.status),
                format!("De aanvraag is {}; er is geen certificaat om te downloaden.", row.status),
            ),
        })?;
        match file.as_str() {
            "client-cert.pem" => format!("{}{}", certificate.pem, certificate.chain_pem),
            "chain.pem" => certificate.chain_pem,
            _ => {
                return Err(ApiError::NotFound(Text::new(
                    "Expected client-cert.pem, chain.pem or ca-cert.pem.",
                    "Verwacht werd client-cert.pem, chain.pem of ca-cert.pem.",
                )))
            }
        }
    };

    Ok((
        [
            (header::CONTENT_TYPE, "application/x-pem-file".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
        ],
        body,
    )
        .into_response())
}
