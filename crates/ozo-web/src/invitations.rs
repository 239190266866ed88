//! Invitations: creating them, and checking the code of an upload.

use ozo_store::invitations::{self, InvitationRow, NewInvitation};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{random_code, secret_sha256};
use crate::i18n::Text;
use crate::ApiError;

pub const DEFAULT_VALIDITY_DAYS: i64 = 14;
const MAX_VALIDITY_DAYS: i64 = 90;

/// The operator's input for a new invitation.
pub struct InvitationInput {
    pub organisation: String,
    pub contact: String,
    pub environments: Vec<String>,
    pub valid_days: Option<i64>,
}

/// Creates an invitation and returns it with its code, which is shown only now.
pub async fn create(
    pool: &PgPool,
    known_environments: &[&str],
    input: InvitationInput,
    created_by: &str,
) -> Result<(InvitationRow, String), ApiError> {
    let organisation =
        crate::issuance::required_text(&input.organisation, "organisation", "organisation (organisatie)", 200)?;
    let contact = crate::issuance::required_text(&input.contact, "contact", "contact (contactpersoon)", 254)?;

    let mut environments: Vec<String> =
        input.environments.iter().map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect();
    environments.sort();
    environments.dedup();
    let known = known_environments.join(", ");
    if environments.is_empty() {
        return Err(ApiError::BadRequest(Text::new(
            format!("Choose at least one environment for the invitation: {known}."),
            format!("Kies ten minste één omgeving voor de uitnodiging: {known}."),
        )));
    }
    if let Some(unknown) = environments.iter().find(|e| !known_environments.contains(&e.as_str())) {
        return Err(ApiError::BadRequest(Text::new(
            format!("Unknown environment {unknown:?}; expected one of: {known}."),
            format!("Onbekende omgeving {unknown:?}; verwacht werd een van: {known}."),
        )));
    }

    let days = input.valid_days.unwrap_or(DEFAULT_VALIDITY_DAYS);
    if !(1..=MAX_VALIDITY_DAYS).contains(&days) {
        return Err(ApiError::BadRequest(Text::new(
            format!("An invitation is valid for 1 to {MAX_VALIDITY_DAYS} days, not {days}."),
            format!("Een uitnodiging is 1 tot {MAX_VALIDITY_DAYS} dagen geldig, niet {days}."),
        )));
    }

    let code = random_code();
    let id = Uuid::new_v4();
    let mut tx = pool.begin().await?;
    invitations::insert(
        &mut tx,
        &NewInvitation {
            id,
            code_sha256: &secret_sha256(&normalise_code(&code)),
            organisation,
            contact,
            environments: &environments,
            created_by,
            expires_at: OffsetDateTime::now_utc() + time::Duration::days(days),
        },
    )
    .await?;
    let detail = serde_json::json!({ "invitation": id, "organisation": organisation, "environments": environments });
    ozo_store::events::append(&mut tx, &actor(created_by), None, "invitation.created", detail).await?;
    let row = invitations::get(&mut tx, id).await?.ok_or_else(|| anyhow::anyhow!("invitation {id} vanished"))?;
    tx.commit().await?;

    tracing::info!(invitation.id = %id, created_by, "created an invitation");
    Ok((row, code))
}

/// Withdraws an invitation so that its code no longer works.
pub async fn withdraw(pool: &PgPool, id: Uuid, by: &str) -> Result<InvitationRow, ApiError> {
    let mut tx = pool.begin().await?;
    let withdrawn = invitations::withdraw(&mut tx, id).await?;
    let row = invitations::get(&mut tx, id).await?.ok_or_else(|| {
        ApiError::NotFound(Text::new(format!("No invitation with id {id}."), format!("Geen uitnodiging met id {id}.")))
    })?;
    if withdrawn {
        ozo_store::events::append(
            &mut tx,
            &actor(by),
            None,
            "invitation.withdrawn",
            serde_json::json!({ "invitation": id }),
        )
        .await?;
        tracing::info!(invitation.id = %id, by, "withdrew an invitation");
    }
    tx.commit().await?;
    Ok(row)
}

fn actor(created_by: &str) -> ozo_store::events::Actor {
    match created_by.strip_prefix("account:") {
        Some(name) => ozo_store::events::Actor::Account(name.to_owned()),
        None => ozo_store::events::Actor::Cli,
    }
}

/// Normalises a code before hashing: upper case, without the dashes and spaces a person
/// may type or leave out.
pub fn normalise_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

/// Finds the invitation of a code and checks that it may be used for `environment`.
pub async fn check(pool: &PgPool, code: &str, environment: &str) -> Result<InvitationRow, ApiError> {
    let mut conn = pool.acquire().await?;
    let Some(invitation) = invitations::find_by_code(&mut conn, &secret_sha256(&normalise_code(code))).await? else {
        return Err(ApiError::Invitation(Text::new(
            "The invitation code is unknown. Check that you copied the whole code or link from the invitation, or ask your OZO contact for a new one.",
            "De uitnodigingscode is onbekend. Controleer of u de hele code of link uit de uitnodiging hebt gekopieerd, of vraag uw OZO-contactpersoon om een nieuwe.",
        )));
    };
    problem(&invitation, environment, OffsetDateTime::now_utc())
        .map_or(Ok(invitation), |text| Err(ApiError::Invitation(text)))
}

/// Returns the reason an invitation cannot be used for `environment` at `now`, if any.
pub fn problem(invitation: &InvitationRow, environment: &str, now: OffsetDateTime) -> Option<Text> {
    let date = |at: OffsetDateTime| at.date().to_string();
    if invitation.withdrawn_at.is_some() {
        return Some(Text::new(
            "This invitation was withdrawn by OZO. Ask your OZO contact for a new one.",
            "Deze uitnodiging is door OZO ingetrokken. Vraag uw OZO-contactpersoon om een nieuwe.",
        ));
    }
    if invitation.expires_at <= now {
        let expired = date(invitation.expires_at);
        return Some(Text::new(
            format!("This invitation expired on {expired}. Ask your OZO contact for a new one."),
            format!("Deze uitnodiging is verlopen op {expired}. Vraag uw OZO-contactpersoon om een nieuwe."),
        ));
    }
    if !invitation.environments.iter().any(|e| e == environment) {
        let allowed = invitation.environments.join(", ");
        return Some(Text::new(
            format!("This invitation is not for {environment}; it is for: {allowed}. Choose one of those, or ask your OZO contact for an invitation for {environment}."),
            format!("Deze uitnodiging is niet voor {environment}; ze is voor: {allowed}. Kies daar een van, of vraag uw OZO-contactpersoon om een uitnodiging voor {environment}."),
        ));
    }
    if invitation.used_environments.iter().any(|e| e == environment) {
        return Some(Text::new(
            format!("This invitation was already used for a {environment} request. Follow that request on its status page, or ask your OZO contact for a new invitation."),
            format!("Deze uitnodiging is al gebruikt voor een aanvraag voor {environment}. Volg die aanvraag op de statuspagina, of vraag uw OZO-contactpersoon om een nieuwe uitnodiging."),
        ));
    }
    None
}
