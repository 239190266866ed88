//! The subject rule: exactly `CN=…, O=…` of the environment, one attribute per RDN,
//! UTF8String or PrintableString, compared byte for byte.

use der::asn1::ObjectIdentifier as Oid;
use der::{Tag, Tagged};
use x509_cert::name::Name;

use crate::{Environment, ExpectedSubject, Finding, FindingCode};

const CN: Oid = Oid::new_unwrap("2.5.4.3");
const O: Oid = Oid::new_unwrap("2.5.4.10");

/// One attribute of the subject as received.
struct Attribute {
    oid: Oid,
    tag: Tag,
    /// The text of the value, when its tag is one of the accepted string types.
    text: Option<String>,
}

/// Checks the subject against `environment`; a subject that is exactly another
/// environment's gets `wrong-environment` instead of `subject`.
pub(crate) fn check_subject(name: &Name, environment: &Environment, all: &[Environment]) -> Option<Finding> {
    let rdns = read_rdns(name);
    if matches(&rdns, &environment.subject) {
        return None;
    }

    let found = describe(&rdns);
    let expected = &environment.subject;
    let env = environment.name.as_str();
    let subj = expected.openssl_subj();

    if let Some(other) = all
        .iter()
        .find(|other| other.name != environment.name && matches(&rdns, &other.subject))
    {
        let other_name = other.name.as_str();
        return Some(Finding::error(
            FindingCode::WrongEnvironment,
            format!("This CSR is for {other_name} (subject {found}), but it was uploaded for {env}, which expects {expected}. Upload it for {other_name}, or make a new key and CSR for {env} with -subj \"{subj}\"."),
            format!("Deze CSR is voor {other_name} (subject {found}), maar is geüpload voor {env}, dat {expected} verwacht. Upload hem voor {other_name}, of maak een nieuwe sleutel en CSR voor {env} met -subj \"{subj}\"."),
        ));
    }

    let (detail_en, detail_nl) = detail(&rdns);
    Some(Finding::error(
        FindingCode::Subject,
        format!("The subject is {found}; {env} expects exactly {expected}: CN first, then O, one attribute each and nothing else.{detail_en} Make a new key and CSR with -subj \"{subj}\"."),
        format!("Het subject is {found}; {env} verwacht precies {expected}: eerst CN, dan O, elk één attribuut en verder niets.{detail_nl} Maak een nieuwe sleutel en CSR met -subj \"{subj}\"."),
    ))
}

fn read_rdns(name: &Name) -> Vec<Vec<Attribute>> {
    name.0
        .iter()
        .map(|rdn| {
            rdn.0
                .iter()
                .map(|atv| {
                    let tag = atv.value.tag();
                    let text = matches!(tag, Tag::Utf8String | Tag::PrintableString)
                        .then(|| std::str::from_utf8(atv.value.value()).ok().map(str::to_owned))
                        .flatten();
                    Attribute { oid: atv.oid, tag, text }
                })
                .collect()
        })
        .collect()
}

fn matches(rdns: &[Vec<Attribute>], expected: &ExpectedSubject) -> bool {
    let single = |rdn: &Vec<Attribute>, oid: Oid, value: &str| {
        matches!(rdn.as_slice(), [attr] if attr.oid == oid && attr.text.as_deref() == Some(value))
    };
    matches!(rdns, [cn, o] if single(cn, CN, &expected.common_name) && single(o, O, &expected.organization))
}

/// Renders a subject for a message, as `CN=a, O=b` with `+` between the attributes of
/// a multi-valued RDN. Values are shortened and control characters replaced, because
/// they come from the upload.
fn describe(rdns: &[Vec<Attribute>]) -> String {
    if rdns.is_empty() {
        return "empty".to_owned();
    }
    rdns.iter()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| format!("{}={}", short_name(attr.oid), printable(attr)))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn printable(attr: &Attribute) -> String {
    let Some(text) = &attr.text else {
        return format!("<{}>", attr.tag);
    };
    let mut shown: String = text
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > 64 {
        shown.push('…');
    }
    shown
}

fn short_name(oid: Oid) -> String {
    match oid.to_string().as_str() {
        "2.5.4.3" => "CN".to_owned(),
        "2.5.4.10" => "O".to_owned(),
        "2.5.4.11" => "OU".to_owned(),
        "2.5.4.6" => "C".to_owned(),
        "2.5.4.7" => "L".to_owned(),
        "2.5.4.8" => "ST".to_owned(),
        "2.5.4.5" => "serialNumber".to_owned(),
        "1.2.840.113549.1.9.1" => "emailAddress".to_owned(),
        other => other.to_owned(),
    }
}

/// Explains the less obvious ways a subject fails: multi-valued RDNs and string types.
fn detail(rdns: &[Vec<Attribute>]) -> (String, String) {
    if rdns.iter().any(|rdn| rdn.len() > 1) {
        return (
            " It has an RDN with several attributes joined by '+' (a multi-valued RDN).".to_owned(),
            " Het bevat een RDN met meerdere attributen, verbonden met '+' (een meerwaardige RDN).".to_owned(),
        );
    }
    if let Some(attr) = rdns.iter().flatten().find(|attr| attr.text.is_none()) {
        let tag = attr.tag;
        return (
            format!(" A value is encoded as {tag}; expected UTF8String or PrintableString."),
            format!(" Een waarde is gecodeerd als {tag}; verwacht werd UTF8String of PrintableString."),
        );
    }
    (String::new(), String::new())
}
