//! Language negotiation and the texts of the pages, in English and Dutch.

use axum::extract::{FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use ozo_domain::Lang;

tokio::task_local! {
    static LANG: Lang;
    static CONTEXT: RequestContext;
}

/// The facts about a request that page templates and error rendering use.
#[derive(Clone, Debug, Default)]
struct RequestContext {
    /// The path and query, for the link to the same page in the other language.
    target: String,
    /// Whether the client is a browser asking for a page rather than the JSON API.
    wants_html: bool,
}

/// Tells whether the current request is for a page, so errors are rendered as HTML.
pub fn wants_html() -> bool {
    CONTEXT.try_with(|context| context.wants_html).unwrap_or(false)
}

/// Finds the page that a form posted to `path` belongs to: `/operator/requests/ID` for the actions
/// on a request, the parent collection for the admin forms, and the path itself otherwise.
fn form_page(path: &str) -> String {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match segments.as_slice() {
        ["", "operator", "requests", id, _action] => format!("/operator/requests/{id}"),
        ["", "operator", "invitations", ..] => "/operator/invitations".to_owned(),
        ["", "admin", ..] => "/admin/accounts".to_owned(),
        ["", "login"] => "/login".to_owned(),
        ["", "upload"] => "/upload".to_owned(),
        _ => "/".to_owned(),
    }
}

/// Builds the current page's path and query with `lang` set to `lang`.
fn same_page_in(lang: &str) -> String {
    let target = CONTEXT.try_with(|context| context.target.clone()).unwrap_or_else(|_| "/".to_owned());
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut pairs: Vec<&str> = query.split('&').filter(|pair| !pair.is_empty() && !pair.starts_with("lang=")).collect();
    let lang_pair = format!("lang={lang}");
    pairs.push(&lang_pair);
    format!("{path}?{}", pairs.join("&"))
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
    let path = request.uri().path();
    let accepts_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("text/html"));
    // After a form, the link goes to the page the form belongs to: the form's address
    // accepts only POST.
    let target = if request.method() == axum::http::Method::GET {
        request.uri().path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_else(|| "/".to_owned())
    } else {
        form_page(path)
    };
    let context = RequestContext {
        target,
        wants_html: !path.starts_with("/api/")
            && (accepts_html
                || request.method() != axum::http::Method::GET
                || path.starts_with("/status/")
                || path.starts_with("/operator/")
                || path == "/upload"),
    };
    let mut response = LANG.scope(lang, CONTEXT.scope(context, next.run(request))).await;

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
    pub login_locked: &'static str,
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
    pub approve_partial: &'static str,
    pub approve_confirm: &'static str,
    pub preview: &'static str,
    pub subject: &'static str,
    pub preview_button: &'static str,
    pub preview_unsupported: &'static str,
    pub key_usage: &'static str,
    pub extended_key_usage: &'static str,
    pub valid_from: &'static str,
    pub issuing_ca: &'static str,
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
    pub invitations: &'static str,
    pub new_invitation: &'static str,
    pub valid_days: &'static str,
    pub create_invitation: &'static str,
    pub invitation_created: &'static str,
    pub invitation_code_once: &'static str,
    pub upload_link: &'static str,
    pub code: &'static str,
    pub used_for: &'static str,
    pub expires: &'static str,
    pub withdraw: &'static str,
    pub withdrawn: &'static str,
    pub expired: &'static str,
    pub used: &'static str,
    pub open: &'static str,
    pub invitation: &'static str,
    pub unverified: &'static str,
    pub client_upload: &'static str,
    pub home: &'static str,
    pub retry: &'static str,
    pub retry_help: &'static str,
    pub revoke: &'static str,
    pub revoke_confirm: &'static str,
    pub revocation_reason: &'static str,
    pub revoked_because: &'static str,
    pub revocation_confirmed: &'static str,
    pub revocation_pending: &'static str,
    pub ca_name: &'static str,
    pub signing_retry: &'static str,
    pub approvals: &'static str,
    pub age: &'static str,
    pub key_type: &'static str,
    pub accounts: &'static str,
    pub audit_log: &'static str,
    pub audit_requests: &'static str,
    pub chain_head: &'static str,
    pub chain_intact: &'static str,
    pub verify_chain: &'static str,
    pub event_kind: &'static str,
    pub actor: &'static str,
    pub from: &'static str,
    pub until: &'static str,
    pub export: &'static str,
    pub detail: &'static str,
    pub older: &'static str,
    pub roles: &'static str,
    pub api_tokens: &'static str,
    pub save_roles: &'static str,
    pub revoke_token: &'static str,
    pub create_token: &'static str,
    pub token_created: &'static str,
    pub token_once: &'static str,
    pub new_account: &'static str,
    pub create_account: &'static str,
    pub revoked: &'static str,
    pub related: &'static str,
    pub approved_digest: &'static str,
    pub certificate_sha256: &'static str,
    pub event_hash: &'static str,
    pub revoked_on: &'static str,
    pub organisation_hint: &'static str,
}

pub const EN: PageTexts = PageTexts {
    lang: "en",
    other_lang: "nl",
    other_lang_name: "Nederlands",
    service: "ozo-signer",
    tagline:
        "Client certificates for the OZO platform: upload a CSR, an operator approves it, download the certificate.",
    operator_login: "Sign in to ozo-signer",
    client_intro:
        "Clients upload their CSR with the link from their invitation, on the upload page or through the API.",
    name: "Account name",
    password: "Password",
    sign_in: "Sign in",
    sign_out: "Sign out",
    login_failed: "The account name or password is wrong, or the account may not use these pages.",
    login_locked: "Too many failed sign-ins for this account or from this address. Wait 15 minutes and try again, or ask an admin.",
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
    approve_partial: "Approve (another operator signs off next)",
    approve_confirm: "I checked the organisation, the contact and the findings",
    preview: "Certificate the CA would issue",
    subject: "Subject",
    preview_button: "Ask the CA for a preview",
    preview_unsupported: "This environment's CA cannot show a certificate before issuing it.",
    key_usage: "Key usage",
    extended_key_usage: "Extended key usage",
    valid_from: "Valid from",
    issuing_ca: "Issuing CA",
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
    invitations: "Invitations",
    new_invitation: "New invitation",
    valid_days: "Valid for (days)",
    create_invitation: "Create invitation",
    invitation_created: "Invitation created for",
    invitation_code_once: "Send the client this link or code now: it is shown only once and is not stored.",
    upload_link: "Upload link",
    code: "Code",
    used_for: "Used for",
    expires: "Expires",
    withdraw: "Withdraw",
    withdrawn: "withdrawn",
    expired: "expired",
    used: "used",
    open: "open",
    invitation: "Invitation",
    unverified: "Uploaded without an invitation: check the organisation and contact yourself before approving.",
    client_upload: "Upload a CSR",
    home: "Back to the start page",
    retry: "Retry signing",
    retry_help: "Signing failed for the reason above. Fix the cause first, then send the request back to the CA.",
    revoke: "Revoke certificate",
    revoke_confirm: "I understand that the client loses access at once and that this cannot be undone",
    revocation_reason: "Reason for revocation (RFC 5280)",
    revoked_because: "Revoked, reason:",
    revocation_confirmed: "The CA confirmed the revocation.",
    revocation_pending: "Waiting for the CA to confirm the revocation; ozo-signer keeps asking.",
    ca_name: "Name at the CA",
    signing_retry: "Signing will be retried; last error",
    approvals: "Approvals",
    age: "Age",
    key_type: "Key and signature",
    accounts: "Accounts",
    audit_log: "Event log",
    audit_requests: "Requests and certificates",
    chain_head: "Head of the chain",
    chain_intact: "The event chain is intact; events checked",
    verify_chain: "Verify the chain",
    event_kind: "Event",
    actor: "Actor",
    from: "From",
    until: "Until",
    export: "Export",
    detail: "Detail",
    older: "Older events",
    roles: "Roles",
    api_tokens: "API tokens",
    save_roles: "Save roles",
    revoke_token: "Revoke",
    create_token: "New API token",
    token_created: "New API token for",
    token_once: "Copy it now: it is shown only this once and stored only as a hash.",
    new_account: "New account",
    create_account: "Create account",
    revoked: "revoked",
    related: "Other requests of this organisation",
    approved_digest: "Digest of what was approved",
    certificate_sha256: "Certificate SHA-256",
    event_hash: "Hash in the chain",
    revoked_on: "Revoked",
    organisation_hint: "The whole name, in any case; the field suggests names as you type.",
};

pub const NL: PageTexts = PageTexts {
    lang: "nl",
    other_lang: "en",
    other_lang_name: "English",
    service: "ozo-signer",
    tagline: "Clientcertificaten voor het OZO-platform: upload een CSR, een operator keurt hem goed, download het certificaat.",
    operator_login: "Aanmelden bij ozo-signer",
    client_intro: "Clients uploaden hun CSR met de link uit hun uitnodiging, op de uploadpagina of via de API.",
    name: "Accountnaam",
    password: "Wachtwoord",
    sign_in: "Inloggen",
    sign_out: "Uitloggen",
    login_failed: "De accountnaam of het wachtwoord klopt niet, of het account mag deze pagina's niet gebruiken.",
    login_locked: "Te veel mislukte aanmeldingen voor dit account of vanaf dit adres. Wacht 15 minuten en probeer het opnieuw, of vraag een beheerder.",
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
    approve_partial: "Goedkeuren (daarna keurt een andere operator goed)",
    approve_confirm: "Ik heb de organisatie, de contactpersoon en de bevindingen gecontroleerd",
    preview: "Certificaat dat de CA zou uitgeven",
    subject: "Onderwerp",
    preview_button: "Vraag de CA om een voorbeeld",
    preview_unsupported: "De CA van deze omgeving kan een certificaat niet tonen voordat het is uitgegeven.",
    key_usage: "Sleutelgebruik",
    extended_key_usage: "Uitgebreid sleutelgebruik",
    valid_from: "Geldig vanaf",
    issuing_ca: "Uitgevende CA",
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
    invitations: "Uitnodigingen",
    new_invitation: "Nieuwe uitnodiging",
    valid_days: "Geldig (dagen)",
    create_invitation: "Uitnodiging maken",
    invitation_created: "Uitnodiging gemaakt voor",
    invitation_code_once: "Stuur de client nu deze link of code: die wordt maar één keer getoond en niet opgeslagen.",
    upload_link: "Uploadlink",
    code: "Code",
    used_for: "Gebruikt voor",
    expires: "Verloopt",
    withdraw: "Intrekken",
    withdrawn: "ingetrokken",
    expired: "verlopen",
    used: "gebruikt",
    open: "open",
    invitation: "Uitnodiging",
    unverified: "Geüpload zonder uitnodiging: controleer zelf de organisatie en contactpersoon voordat u goedkeurt.",
    client_upload: "Een CSR uploaden",
    home: "Terug naar de startpagina",
    retry: "Opnieuw ondertekenen",
    retry_help: "Het ondertekenen is mislukt om de reden hierboven. Los eerst de oorzaak op en stuur de aanvraag dan opnieuw naar de CA.",
    revoke: "Certificaat intrekken",
    revoke_confirm: "Ik begrijp dat de client direct de toegang verliest en dat dit niet terug te draaien is",
    revocation_reason: "Reden van intrekking (RFC 5280)",
    revoked_because: "Ingetrokken, reden:",
    revocation_confirmed: "De CA heeft de intrekking bevestigd.",
    revocation_pending: "Wacht op bevestiging van de intrekking door de CA; ozo-signer blijft het vragen.",
    ca_name: "Naam bij de CA",
    signing_retry: "Ondertekenen wordt opnieuw geprobeerd; laatste fout",
    approvals: "Goedkeuringen",
    age: "Leeftijd",
    key_type: "Sleutel en handtekening",
    accounts: "Accounts",
    audit_log: "Gebeurtenissenlog",
    audit_requests: "Aanvragen en certificaten",
    chain_head: "Kop van de keten",
    chain_intact: "De keten van gebeurtenissen is intact; gecontroleerde gebeurtenissen",
    verify_chain: "Controleer de keten",
    event_kind: "Gebeurtenis",
    actor: "Door",
    from: "Vanaf",
    until: "Tot",
    export: "Exporteren",
    detail: "Details",
    older: "Oudere gebeurtenissen",
    roles: "Rollen",
    api_tokens: "API-tokens",
    save_roles: "Rollen opslaan",
    revoke_token: "Intrekken",
    create_token: "Nieuw API-token",
    token_created: "Nieuw API-token voor",
    token_once: "Kopieer het nu: het wordt alleen deze keer getoond en alleen als hash bewaard.",
    new_account: "Nieuw account",
    create_account: "Account aanmaken",
    revoked: "ingetrokken",
    related: "Andere aanvragen van deze organisatie",
    approved_digest: "Digest van wat is goedgekeurd",
    certificate_sha256: "SHA-256 van het certificaat",
    event_hash: "Hash in de keten",
    revoked_on: "Ingetrokken",
    organisation_hint: "De volledige naam, hoofdletters maken niet uit; het veld stelt namen voor tijdens het typen.",
};

impl PageTexts {
    /// Names a request status in the page's language; English pages use the state's own
    /// name.
    pub fn status_label(&self, status: &str) -> &'static str {
        let dutch = self.lang == "nl";
        match (status, dutch) {
            ("pending", true) => "in behandeling",
            ("approved", true) => "goedgekeurd",
            ("issued", true) => "uitgegeven",
            ("denied", true) => "afgewezen",
            ("rejected", true) => "geweigerd",
            ("failed", true) => "mislukt",
            ("revoked", true) => "ingetrokken",
            ("pending", false) => "pending",
            ("approved", false) => "approved",
            ("issued", false) => "issued",
            ("denied", false) => "denied",
            ("rejected", false) => "rejected",
            ("failed", false) => "failed",
            ("revoked", false) => "revoked",
            _ => "unknown",
        }
    }

    /// Builds the link to the current page in the other language.
    pub fn switch_href(&self) -> String {
        same_page_in(self.other_lang)
    }
}

pub fn page_texts(lang: Lang) -> &'static PageTexts {
    match lang {
        Lang::En => &EN,
        Lang::Nl => &NL,
    }
}

/// The fixed texts of the client pages.
pub struct ClientTexts {
    pub upload_title: &'static str,
    pub upload_intro: &'static str,
    pub never_send_key: &'static str,
    pub step_make: &'static str,
    pub invitation: &'static str,
    pub invitation_help: &'static str,
    pub invited_as: &'static str,
    pub environment: &'static str,
    pub csr_text: &'static str,
    pub csr_file: &'static str,
    pub organisation: &'static str,
    pub contact: &'static str,
    pub organisation_help: &'static str,
    pub submit: &'static str,
    pub rejected: &'static str,
    pub key_removed: &'static str,
    pub status_title: &'static str,
    pub status_bookmark: &'static str,
    pub status: &'static str,
    pub reason: &'static str,
    pub received: &'static str,
    pub downloads: &'static str,
    pub test_with: &'static str,
    pub serial: &'static str,
    pub valid_until: &'static str,
    pub findings: &'static str,
    pub pending: &'static str,
    pub approved: &'static str,
    pub issued: &'static str,
    pub rejected_status: &'static str,
    pub denied: &'static str,
    pub failed: &'static str,
    pub revoked: &'static str,
    pub next_rejected: &'static str,
    pub next_denied: &'static str,
    pub next_revoked: &'static str,
}

impl ClientTexts {
    /// Returns the client's next step, for the states that need one.
    pub fn next_step(&self, status: ozo_domain::RequestStatus) -> &'static str {
        use ozo_domain::RequestStatus::*;
        match status {
            Rejected => self.next_rejected,
            Denied => self.next_denied,
            Revoked => self.next_revoked,
            _ => "",
        }
    }

    pub fn status_text(&self, status: ozo_domain::RequestStatus) -> &'static str {
        use ozo_domain::RequestStatus::*;
        match status {
            Pending => self.pending,
            Approved => self.approved,
            Issued => self.issued,
            Rejected => self.rejected_status,
            Denied => self.denied,
            Failed => self.failed,
            Revoked => self.revoked,
        }
    }
}

pub const CLIENT_EN: ClientTexts = ClientTexts {
    upload_title: "Request a client certificate",
    upload_intro: "Upload the certificate signing request (CSR) you made with OpenSSL. An OZO operator checks it, and you download the certificate from the status page.",
    never_send_key: "Never send your private key (client-key.pem). Upload only the CSR (client.csr). An upload that contains a private key is refused, and that key must then be replaced.",
    step_make: "Make the key and CSR for the environment you need:",
    invitation: "Invitation code",
    invitation_help: "From the invitation link or e-mail you received from OZO.",
    invited_as: "Invitation for",
    environment: "Environment",
    csr_text: "CSR (paste the whole text of client.csr)",
    csr_file: "or choose the file client.csr",
    organisation: "Organisation",
    contact: "Contact e-mail",
    organisation_help: "Only needed without an invitation.",
    submit: "Upload CSR",
    rejected: "The CSR was not accepted. Change what each point below says, then upload again:",
    key_removed: "Your upload contained a private key. It was removed from this form and not stored.",
    status_title: "Certificate request",
    status_bookmark: "Keep the address of this page: it is the only way to follow your request and download the certificate.",
    status: "Status",
    reason: "Reason",
    received: "Received",
    downloads: "Downloads",
    test_with: "Test the certificate with:",
    serial: "Serial number",
    valid_until: "Valid until",
    findings: "Notes on the CSR",
    pending: "Waiting for an OZO operator to check the request.",
    approved: "Approved; the certificate is being made.",
    issued: "The certificate is ready.",
    rejected_status: "The CSR did not meet the requirements; upload a corrected one.",
    denied: "An OZO operator denied the request.",
    failed: "Making the certificate failed; an OZO operator will look into it.",
    revoked: "The certificate was revoked.",
    next_rejected: "Change what the notes below say, make a new CSR and upload it with the same invitation.",
    next_denied: "To try again, ask your OZO contact for a new invitation.",
    next_revoked: "Stop using this certificate. For a new one, ask your OZO contact for an invitation.",
};

pub const CLIENT_NL: ClientTexts = ClientTexts {
    upload_title: "Een clientcertificaat aanvragen",
    upload_intro: "Upload de certificaataanvraag (CSR) die u met OpenSSL hebt gemaakt. Een OZO-operator controleert hem, en u downloadt het certificaat op de statuspagina.",
    never_send_key: "Stuur nooit uw privésleutel (client-key.pem). Upload alleen de CSR (client.csr). Een upload met een privésleutel wordt geweigerd, en die sleutel moet dan worden vervangen.",
    step_make: "Maak de sleutel en CSR voor de omgeving die u nodig hebt:",
    invitation: "Uitnodigingscode",
    invitation_help: "Uit de uitnodigingslink of e-mail die u van OZO hebt gekregen.",
    invited_as: "Uitnodiging voor",
    environment: "Omgeving",
    csr_text: "CSR (plak de hele tekst van client.csr)",
    csr_file: "of kies het bestand client.csr",
    organisation: "Organisatie",
    contact: "Contact-e-mailadres",
    organisation_help: "Alleen nodig zonder uitnodiging.",
    submit: "CSR uploaden",
    rejected: "De CSR is niet geaccepteerd. Pas aan wat elk punt hieronder zegt en upload opnieuw:",
    key_removed: "Uw upload bevatte een privésleutel. Die is uit dit formulier verwijderd en niet opgeslagen.",
    status_title: "Certificaataanvraag",
    status_bookmark: "Bewaar het adres van deze pagina: alleen hiermee volgt u uw aanvraag en downloadt u het certificaat.",
    status: "Status",
    reason: "Reden",
    received: "Ontvangen",
    downloads: "Downloads",
    test_with: "Test het certificaat met:",
    serial: "Serienummer",
    valid_until: "Geldig tot",
    findings: "Opmerkingen bij de CSR",
    pending: "Wacht op controle door een OZO-operator.",
    approved: "Goedgekeurd; het certificaat wordt gemaakt.",
    issued: "Het certificaat is klaar.",
    rejected_status: "De CSR voldeed niet aan de eisen; upload een verbeterde.",
    denied: "Een OZO-operator heeft de aanvraag afgewezen.",
    failed: "Het maken van het certificaat is mislukt; een OZO-operator zoekt het uit.",
    revoked: "Het certificaat is ingetrokken.",
    next_rejected: "Pas aan wat de opmerkingen hieronder zeggen, maak een nieuwe CSR en upload die met dezelfde uitnodiging.",
    next_denied: "Wilt u het opnieuw proberen, vraag uw OZO-contactpersoon dan om een nieuwe uitnodiging.",
    next_revoked: "Gebruik dit certificaat niet meer. Vraag voor een nieuw certificaat uw OZO-contactpersoon om een uitnodiging.",
};

pub fn client_texts(lang: Lang) -> &'static ClientTexts {
    match lang {
        Lang::En => &CLIENT_EN,
        Lang::Nl => &CLIENT_NL,
    }
}
