//! Language negotiation and the texts of the pages, in English and Dutch.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use ozo_domain::Lang;

tokio::task_local! {
    static LANG: Lang;
}

/// A user-facing text in both languages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text {
    pub en: String,
    pub nl: String,
}

impl Text {
    pub fn new(en: impl Into<String>, nl: impl Into<String>) -> Self {
        Text { en: en.into(), nl: nl.into() }
    }

    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.en,
            Lang::Nl => &self.nl,
        }
    }
}

/// The language of the request being handled: English outside a request.
pub fn current_lang() -> Lang {
    LANG.try_with(|lang| *lang).unwrap_or_default()
}

/// Picks the language of a request from `?lang=`, then the `lang` cookie, then
/// `Accept-Language`, and makes it available to handlers and error rendering.
pub async fn negotiate_language(request: Request, next: Next) -> Response {
    let from_query = request
        .uri()
        .query()
        .and_then(|query| query.split('&').find_map(|pair| pair.strip_prefix("lang=")))
        .and_then(Lang::from_tag);
    let from_cookie = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("lang="))
        .and_then(Lang::from_tag);
    let from_header = request
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|value| value.to_str().ok())
        .map(Lang::from_accept_language);

    let lang = from_query.or(from_cookie).or(from_header).unwrap_or_default();
    let mut response = LANG.scope(lang, next.run(request)).await;

    // A language picked with ?lang= sticks for later pages.
    if let Some(chosen) = from_query {
        let cookie = format!("lang={}; Path=/; Max-Age=31536000; SameSite=Lax", chosen.as_str());
        if let Ok(value) = header::HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// Extracts the negotiated language.
pub struct RequestLang(pub Lang);

impl<S: Send + Sync> FromRequestParts<S> for RequestLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestLang(current_lang()))
    }
}

/// The fixed texts of the pages.
pub struct PageTexts {
    pub lang: &'static str,
    pub other_lang: &'static str,
    pub other_lang_name: &'static str,
    pub service: &'static str,
    pub tagline: &'static str,
    pub operator_login: &'static str,
    pub client_intro: &'static str,
    pub name: &'static str,
    pub password: &'static str,
    pub sign_in: &'static str,
    pub sign_out: &'static str,
    pub login_failed: &'static str,
    pub queue: &'static str,
    pub status: &'static str,
    pub all: &'static str,
    pub filter: &'static str,
    pub environment: &'static str,
    pub organisation: &'static str,
    pub contact: &'static str,
    pub received: &'static str,
    pub findings: &'static str,
    pub no_requests: &'static str,
    pub request: &'static str,
    pub key_fingerprint: &'static str,
    pub reason: &'static str,
    pub approve: &'static str,
    pub approve_confirm: &'static str,
    pub deny: &'static str,
    pub deny_reason: &'static str,
    pub certificate: &'static str,
    pub serial: &'static str,
    pub issuer: &'static str,
    pub valid_until: &'static str,
    pub history: &'static str,
    pub when: &'static str,
    pub who: &'static str,
    pub what: &'static str,
    pub none: &'static str,
    pub signed_in_as: &'static str,
}

pub const EN: PageTexts = PageTexts {
    lang: "en",
    other_lang: "nl",
    other_lang_name: "Nederlands",
    service: "ozo-signer",
    tagline: "Client certificates for the OZO platform: upload a CSR, an operator approves it, download the certificate.",
    operator_login: "Operator sign-in",
    client_intro: "Clients upload their CSR through the API; the README describes each step.",
    name: "Account name",
    password: "Password",
    sign_in: "Sign in",
    sign_out: "Sign out",
    login_failed: "The account name or password is wrong, or the account may not use these pages.",
    queue: "Requests",
    status: "Status",
    all: "all",
    filter: "Show",
    environment: "Environment",
    organisation: "Organisation",
    contact: "Contact",
    received: "Received",
    findings: "Findings",
    no_requests: "No requests with this status.",
    request: "Request",
    key_fingerprint: "Public key SHA-256",
    reason: "Reason",
    approve: "Approve and sign",
    approve_confirm: "I checked the organisation, the contact and the findings",
    deny: "Deny",
    deny_reason: "Reason for the denial (the client sees it)",
    certificate: "Certificate",
    serial: "Serial number",
    issuer: "Issuer",
    valid_until: "Valid until",
    history: "History",
    when: "When",
    who: "Who",
    what: "What",
    none: "none",
    signed_in_as: "Signed in as",
};

pub const NL: PageTexts = PageTexts {
    lang: "nl",
    other_lang: "en",
    other_lang_name: "English",
    service: "ozo-signer",
    tagline: "Clientcertificaten voor het OZO-platform: upload een CSR, een operator keurt hem goed, download het certificaat.",
    operator_login: "Inloggen voor operators",
    client_intro: "Clients uploaden hun CSR via de API; de README beschrijft elke stap.",
    name: "Accountnaam",
    password: "Wachtwoord",
    sign_in: "Inloggen",
    sign_out: "Uitloggen",
    login_failed: "De accountnaam of het wachtwoord klopt niet, of het account mag deze pagina's niet gebruiken.",
    queue: "Aanvragen",
    status: "Status",
    all: "alle",
    filter: "Toon",
    environment: "Omgeving",
    organisation: "Organisatie",
    contact: "Contactpersoon",
    received: "Ontvangen",
    findings: "Bevindingen",
    no_requests: "Geen aanvragen met deze status.",
    request: "Aanvraag",
    key_fingerprint: "SHA-256 van de publieke sleutel",
    reason: "Reden",
    approve: "Goedkeuren en ondertekenen",
    approve_confirm: "Ik heb de organisatie, de contactpersoon en de bevindingen gecontroleerd",
    deny: "Afwijzen",
    deny_reason: "Reden van de afwijzing (de client ziet deze)",
    certificate: "Certificaat",
    serial: "Serienummer",
    issuer: "Uitgever",
    valid_until: "Geldig tot",
    history: "Geschiedenis",
    when: "Wanneer",
    who: "Wie",
    what: "Wat",
    none: "geen",
    signed_in_as: "Ingelogd als",
};

pub fn page_texts(lang: Lang) -> &'static PageTexts {
    match lang {
        Lang::En => &EN,
        Lang::Nl => &NL,
    }
}
