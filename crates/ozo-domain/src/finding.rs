//! Findings: the results of validation, each with a stable code and a message in
//! English and Dutch that says what was found and what is expected.

use std::fmt;

use serde::Serialize;

use crate::Lang;

/// The stable code of a finding. API clients, the CLI and the corpus table test match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingCode {
    KeyType,
    KeyCurve,
    KeyEncoding,
    KeyInvalid,
    Signature,
    SignatureAlgorithm,
    Subject,
    WrongEnvironment,
    Attribute,
    Extension,
    PrivateKey,
    Malformed,
    TooLarge,
    /// The public key is already on another request or certificate. Only the store can
    /// decide this, so validation never produces it.
    KeyReuse,
}

impl FindingCode {
    pub const ALL: [FindingCode; 14] = [
        FindingCode::KeyType,
        FindingCode::KeyCurve,
        FindingCode::KeyEncoding,
        FindingCode::KeyInvalid,
        FindingCode::Signature,
        FindingCode::SignatureAlgorithm,
        FindingCode::Subject,
        FindingCode::WrongEnvironment,
        FindingCode::Attribute,
        FindingCode::Extension,
        FindingCode::PrivateKey,
        FindingCode::Malformed,
        FindingCode::TooLarge,
        FindingCode::KeyReuse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FindingCode::KeyType => "key-type",
            FindingCode::KeyCurve => "key-curve",
            FindingCode::KeyEncoding => "key-encoding",
            FindingCode::KeyInvalid => "key-invalid",
            FindingCode::Signature => "signature",
            FindingCode::SignatureAlgorithm => "signature-algorithm",
            FindingCode::Subject => "subject",
            FindingCode::WrongEnvironment => "wrong-environment",
            FindingCode::Attribute => "attribute",
            FindingCode::Extension => "extension",
            FindingCode::PrivateKey => "private-key",
            FindingCode::Malformed => "malformed",
            FindingCode::TooLarge => "too-large",
            FindingCode::KeyReuse => "key-reuse",
        }
    }

    pub fn parse(code: &str) -> Option<FindingCode> {
        FindingCode::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

impl fmt::Display for FindingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a finding rejects the CSR (`error`) or only informs the operator (`warning`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One result of validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub code: FindingCode,
    pub severity: Severity,
    /// The message in English.
    pub en: String,
    /// The same message in Dutch.
    pub nl: String,
}

impl Finding {
    pub fn error(code: FindingCode, en: impl Into<String>, nl: impl Into<String>) -> Self {
        Finding { code, severity: Severity::Error, en: en.into(), nl: nl.into() }
    }

    pub fn warning(code: FindingCode, en: impl Into<String>, nl: impl Into<String>) -> Self {
        Finding { code, severity: Severity::Warning, en: en.into(), nl: nl.into() }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn message(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.en,
            Lang::Nl => &self.nl,
        }
    }

    /// The finding of a public key that is already on another request or certificate.
    pub fn key_reuse() -> Self {
        Finding::error(
            FindingCode::KeyReuse,
            "This public key is already on another request or certificate. Every certificate \
             needs its own key: make a new key and CSR with the openssl req command and upload \
             the new CSR.",
            "Deze publieke sleutel staat al op een andere aanvraag of een ander certificaat. \
             Elk certificaat heeft een eigen sleutel nodig: maak met het openssl req-commando \
             een nieuwe sleutel en CSR en upload de nieuwe CSR.",
        )
    }

    /// The finding of a public key whose private key was uploaded earlier, and which
    /// therefore counts as compromised.
    pub fn exposed_key() -> Self {
        Finding::error(
            FindingCode::PrivateKey,
            "The private key of this CSR was uploaded earlier, so it counts as compromised and \
             gets no certificate. Delete it, make a new key and CSR with openssl req, and upload \
             only the new CSR.",
            "De privésleutel van deze CSR is eerder geüpload, dus geldt als gelekt en krijgt geen \
             certificaat. Verwijder hem, maak met openssl req een nieuwe sleutel en CSR, en \
             upload alleen de nieuwe CSR.",
        )
    }

    /// The finding as JSON in one language: `{"code", "severity", "message"}`.
    pub fn to_json(&self, lang: Lang) -> FindingJson<'_> {
        FindingJson { code: self.code, severity: self.severity, message: self.message(lang) }
    }
}

/// The JSON shape of a finding in one language.
#[derive(Debug, Serialize)]
pub struct FindingJson<'a> {
    pub code: FindingCode,
    pub severity: Severity,
    pub message: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in FindingCode::ALL {
            assert_eq!(FindingCode::parse(code.as_str()), Some(code));
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
