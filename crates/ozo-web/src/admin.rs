//! The admin pages: accounts, their roles and their API tokens.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::Form;
use ozo_domain::Lang;
use ozo_store::accounts;
use ozo_store::events::{self, Actor};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::auth::{self, AdminSession, PageRejection};
use crate::i18n::{page_texts, PageTexts, RequestLang};
use crate::{ApiError, AppState};

const MIN_PASSWORD_CHARS: usize = 12;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/accounts", get(accounts_page).post(create_account))
        .route("/admin/accounts/{name}/roles", post(set_roles))
        .route("/admin/accounts/{name}/tokens", post(create_token))
        .route("/admin/tokens/{id}/revoke", post(revoke_token))
}

struct TokenLine {
    id: Uuid,
    created: String,
    revoked: bool,
}

struct AccountLine {
    name: String,
    roles: Vec<String>,
    tokens: Vec<TokenLine>,
}

impl AccountLine {
    fn has(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage<'a> {
    t: &'a PageTexts,
    user: Option<crate::auth::NavUser>,
    csrf: String,
    roles: [&'static str; 3],
    accounts: Vec<AccountLine>,
    /// A token just created: its account and the token, shown this once.
    new_token: Option<(String, String)>,
    notice: Option<String>,
}

async fn render_admin(
    state: &AppState,
    lang: Lang,
    session: &AdminSession,
    new_token: Option<(String, String)>,
    notice: Option<String>,
) -> Result<Response, ApiError> {
    let mut conn = state.pool().acquire().await?;
    let tokens = accounts::list_tokens(&mut conn, None).await?;
    let accounts = accounts::list(&mut conn)
        .await?
        .into_iter()
        .map(|account| AccountLine {
            tokens: tokens
                .iter()
                .filter(|token| token.account == account.name)
                .map(|token| TokenLine {
                    id: token.id,
                    created: crate::pages::format_time(token.created_at),
                    revoked: token.revoked_at.is_some(),
                })
                .collect(),
            name: account.name,
            roles: account.roles,
        })
        .collect();
    let page = AdminPage {
        t: page_texts(lang),
        user: Some(crate::auth::NavUser::of(&session.0.account)),
        csrf: session.0.csrf_token.clone(),
        roles: auth::ROLES,
        accounts,
        new_token,
        notice,
    };
    Ok(axum::response::IntoResponse::into_response(axum::response::Html(page.render()?)))
}

async fn accounts_page(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    session: AdminSession,
) -> Result<Response, PageRejection> {
    Ok(render_admin(&state, lang, &session, None, None).await?)
}

#[derive(Deserialize)]
struct AccountForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: Vec<String>,
}

/// Keeps the known roles of a form, in their usual order.
fn chosen_roles(chosen: &[String]) -> Vec<String> {
    auth::ROLES.iter().filter(|role| chosen.iter().any(|c| c == *role)).map(|role| role.to_string()).collect()
}

async fn create_account(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    session: AdminSession,
    Form(form): Form<AccountForm>,
) -> Result<Response, PageRejection> {
    session.0.check_csrf(&form.csrf)?;

    let name = form.name.trim().to_owned();
    let roles = chosen_roles(&form.role);
    let problem = if roles.is_empty() {
        Some(text(lang, "Choose at least one role.", "Kies ten minste één rol."))
    } else if form.password.chars().count() < MIN_PASSWORD_CHARS {
        Some(text(
            lang,
            "The password needs at least 12 characters.",
            "Het wachtwoord moet ten minste 12 tekens hebben.",
        ))
    } else {
        None
    };
    if let Some(problem) = problem {
        return Ok(render_admin(&state, lang, &session, None, Some(problem)).await?);
    }

    let password = form.password;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(anyhow::Error::from)
        .map_err(ApiError::from)?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("failed to hash a password: {e}")))?;
    let mut tx = state.pool().begin().await.map_err(ApiError::from)?;
    let created = accounts::upsert(&mut tx, &name, Some(&hash), &roles, false).await;
    let notice = match created {
        Ok(_) => {
            let detail = json!({ "account": name, "roles": roles });
            events::append(&mut tx, &Actor::Account(session.0.account.name.clone()), None, "account.created", detail).await?;
            tx.commit().await.map_err(ApiError::from)?;
            tracing::info!(account.name = %name, admin.name = %session.0.account.name, "account created");
            text(lang, &format!("Account {name} created."), &format!("Account {name} is aangemaakt."))
        }
        Err(ozo_store::StoreError::AccountExists(_)) => {
            text(lang, &format!("An account named {name} already exists."), &format!("Er bestaat al een account met de naam {name}."))
        }
        Err(ozo_store::StoreError::Database(error)) if error.as_database_error().is_some_and(|e| e.is_check_violation()) => text(
            lang,
            "The name may contain lowercase letters, digits, dots, hyphens and underscores, and starts with a letter or digit.",
            "De naam mag kleine letters, cijfers, punten, koppeltekens en liggende streepjes bevatten en begint met een letter of cijfer.",
        ),
        Err(error) => return Err(ApiError::from(error).into()),
    };
    Ok(render_admin(&state, lang, &session, None, Some(notice)).await?)
}

#[derive(Deserialize)]
struct RolesForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: Vec<String>,
}

async fn set_roles(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    session: AdminSession,
    Path(name): Path<String>,
    Form(form): Form<RolesForm>,
) -> Result<Response, PageRejection> {
    session.0.check_csrf(&form.csrf)?;

    let roles = chosen_roles(&form.role);
    if name == session.0.account.name && !roles.iter().any(|role| role == "admin") {
        let notice = text(
            lang,
            "You cannot remove your own admin role; another admin can.",
            "U kunt uw eigen beheerdersrol niet verwijderen; een andere beheerder kan dat.",
        );
        return Ok(render_admin(&state, lang, &session, None, Some(notice)).await?);
    }

    let mut tx = state.pool().begin().await.map_err(ApiError::from)?;
    if !accounts::set_roles(&mut tx, &name, &roles).await.map_err(ApiError::from)? {
        let notice = text(
            lang,
            &format!("There is no account named {name}."),
            &format!("Er is geen account met de naam {name}."),
        );
        return Ok(render_admin(&state, lang, &session, None, Some(notice)).await?);
    }
    let detail = json!({ "account": name, "roles": roles });
    events::append(&mut tx, &Actor::Account(session.0.account.name.clone()), None, "account.roles_changed", detail)
        .await?;
    tx.commit().await.map_err(ApiError::from)?;
    tracing::info!(account.name = %name, admin.name = %session.0.account.name, roles = roles.join(","), "account roles changed");

    let notice =
        text(lang, &format!("The roles of {name} are saved."), &format!("De rollen van {name} zijn opgeslagen."));
    Ok(render_admin(&state, lang, &session, None, Some(notice)).await?)
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn create_token(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    session: AdminSession,
    Path(name): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageRejection> {
    session.0.check_csrf(&form.csrf)?;

    let mut tx = state.pool().begin().await.map_err(ApiError::from)?;
    let Some(account) = accounts::find_by_name(&mut tx, &name).await.map_err(ApiError::from)? else {
        let notice = text(
            lang,
            &format!("There is no account named {name}."),
            &format!("Er is geen account met de naam {name}."),
        );
        return Ok(render_admin(&state, lang, &session, None, Some(notice)).await?);
    };
    let token = auth::new_token();
    let id = accounts::insert_token(&mut tx, account.id, &auth::secret_sha256(&token)).await.map_err(ApiError::from)?;
    let detail = json!({ "account": name, "token": id });
    events::append(&mut tx, &Actor::Account(session.0.account.name.clone()), None, "token.created", detail).await?;
    tx.commit().await.map_err(ApiError::from)?;
    tracing::info!(account.name = %name, token.id = %id, admin.name = %session.0.account.name, "API token created");

    Ok(render_admin(&state, lang, &session, Some((name, token)), None).await?)
}

async fn revoke_token(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    session: AdminSession,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageRejection> {
    session.0.check_csrf(&form.csrf)?;
    let Ok(id) = Uuid::parse_str(&id) else {
        let notice = text(lang, &format!("{id} is not a token id."), &format!("{id} is geen token-id."));
        return Ok(render_admin(&state, lang, &session, None, Some(notice)).await?);
    };

    let mut tx = state.pool().begin().await.map_err(ApiError::from)?;
    let notice = match accounts::revoke_token(&mut tx, id).await.map_err(ApiError::from)? {
        Some(account) => {
            let detail = json!({ "account": account, "token": id });
            events::append(&mut tx, &Actor::Account(session.0.account.name.clone()), None, "token.revoked", detail)
                .await?;
            tracing::info!(account.name = %account, token.id = %id, admin.name = %session.0.account.name, "API token revoked");
            text(
                lang,
                &format!("Token {id} of {account} is revoked."),
                &format!("Token {id} van {account} is ingetrokken."),
            )
        }
        None => text(
            lang,
            &format!("Token {id} is unknown or already revoked."),
            &format!("Token {id} is onbekend of al ingetrokken."),
        ),
    };
    tx.commit().await.map_err(ApiError::from)?;
    Ok(render_admin(&state, lang, &session, None, Some(notice)).await?)
}

fn text(lang: Lang, en: &str, nl: &str) -> String {
    match lang {
        Lang::En => en.to_owned(),
        Lang::Nl => nl.to_owned(),
    }
}
