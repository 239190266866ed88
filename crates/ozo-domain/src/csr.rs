//! Validation of an uploaded CSR against the policy of one environment.

use der::asn1::{Any, BitString, ObjectIdentifier as Oid};
use der::{Decode, Encode, Reader, SliceReader, Tag, Tagged};
use aws_lc_rs::signature::{EcdsaVerificationAlgorithm, UnparsedPublicKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use sha2::{Digest, Sha256};
use x509_cert::ext::Extensions;
use x509_cert::request::{CertReq, Version};
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use crate::input::{decode_upload, malformed, UploadError};
use crate::subject::check_subject;
use crate::{Environment, ExpectedSubject, Finding, FindingCode};

/// The largest upload accepted, in bytes. A P-256 CSR in PEM is about 400 bytes.
pub const MAX_UPLOAD_BYTES: usize = 16 * 1024;

const ID_EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
const PRIME256V1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_WITH_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
const EXTENSION_REQUEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.14");
const CHALLENGE_PASSWORD: Oid = Oid::new_unwrap("1.2.840.113549.1.9.7");
const SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
const KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
const EXTENDED_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");

/// The outcome of validation.
#[derive(Debug)]
pub enum Verdict {
    Accepted(VerifiedCsr),
    Rejected(RejectedCsr),
}

impl Verdict {
    pub fn findings(&self) -> &[Finding] {
        match self {
            Verdict::Accepted(csr) => &csr.warnings,
            Verdict::Rejected(rejected) => &rejected.findings,
        }
    }

    pub fn is_accepted(&self) -> bool {
        matches!(self, Verdict::Accepted(_))
    }
}

/// A CSR that passed every rule of its environment. Only [`validate`] creates one.
#[derive(Clone, Debug)]
pub struct VerifiedCsr {
    der: Vec<u8>,
    spki_der: Vec<u8>,
    spki_sha256: [u8; 32],
    public_key: p256::PublicKey,
    subject: ExpectedSubject,
    subject_der: Vec<u8>,
    signature_algorithm: &'static str,
    warnings: Vec<Finding>,
}

impl VerifiedCsr {
    /// The CSR exactly as received, in DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The SubjectPublicKeyInfo in DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The SHA-256 of the SubjectPublicKeyInfo DER, the key's fingerprint.
    pub fn spki_sha256(&self) -> [u8; 32] {
        self.spki_sha256
    }

    pub fn spki_sha256_hex(&self) -> String {
        hex::encode(self.spki_sha256)
    }

    pub fn public_key(&self) -> &p256::PublicKey {
        &self.public_key
    }

    /// The validated subject, equal to the environment's expected subject.
    pub fn subject(&self) -> &ExpectedSubject {
        &self.subject
    }

    /// The subject Name exactly as encoded in the CSR, for copying into the certificate.
    pub fn subject_der(&self) -> &[u8] {
        &self.subject_der
    }

    pub fn signature_algorithm(&self) -> &'static str {
        self.signature_algorithm
    }

    pub fn warnings(&self) -> &[Finding] {
        &self.warnings
    }
}

/// A CSR that failed validation, with every finding. `der` is set when the upload was a
/// well-formed CSR, and never for an upload that contained a private key. `spki_sha256`
/// is the fingerprint of the CSR's public key or, for an upload with a private key, of
/// the public key that belongs to it, so that the exposed key can be refused later.
#[derive(Clone, Debug)]
pub struct RejectedCsr {
    pub findings: Vec<Finding>,
    pub der: Option<Vec<u8>>,
    pub spki_sha256: Option<[u8; 32]>,
}

impl RejectedCsr {
    fn single(finding: Finding) -> Self {
        RejectedCsr { findings: vec![finding], der: None, spki_sha256: None }
    }

    /// The code of the first error, which is the reason given for the rejection.
    pub fn reason(&self) -> Option<FindingCode> {
        self.findings.iter().find(|f| f.is_error()).map(|f| f.code)
    }
}

/// Validates an upload (PEM or DER) for `environment`. `all` lists every configured
/// environment, so that a CSR made for another one is named as such.
pub fn validate(input: &[u8], environment: &Environment, all: &[Environment]) -> Verdict {
    if input.len() > MAX_UPLOAD_BYTES {
        let size = input.len();
        return Verdict::Rejected(RejectedCsr::single(Finding::error(
            FindingCode::TooLarge,
            format!("The upload is {size} bytes; at most {MAX_UPLOAD_BYTES} bytes are accepted. A P-256 CSR is about 400 bytes: upload only the file that openssl req -new wrote."),
            format!("De upload is {size} bytes; maximaal {MAX_UPLOAD_BYTES} bytes worden geaccepteerd. Een P-256-CSR is ongeveer 400 bytes: upload alleen het bestand dat openssl req -new schreef."),
        )));
    }

    let der = match decode_upload(input) {
        Ok(der) => der,
        Err(UploadError::PrivateKey { finding, exposed_spki_sha256 }) => {
            return Verdict::Rejected(RejectedCsr { findings: vec![finding], der: None, spki_sha256: exposed_spki_sha256 })
        }
        Err(UploadError::Other(finding)) => return Verdict::Rejected(RejectedCsr::single(finding)),
    };

    let (csr, tbs) = match parse_strict(&der) {
        Ok(parsed) => parsed,
        Err(finding) => return Verdict::Rejected(RejectedCsr::single(finding)),
    };

    let spki_der = csr
        .info
        .public_key
        .to_der()
        .expect("a SubjectPublicKeyInfo that was just decoded encodes again");
    let spki_sha256: [u8; 32] = Sha256::digest(&spki_der).into();

    let mut findings = Vec::new();

    let key = check_key(&csr.info.public_key, &mut findings);
    // A key of another type cannot have an ECDSA signature, so its signature algorithm
    // is no separate finding.
    let algorithm = if findings.iter().any(|f| f.code == FindingCode::KeyType) {
        None
    } else {
        check_signature_algorithm(&csr, &mut findings)
    };
    if let (Some(key), Some(algorithm)) = (&key, algorithm) {
        let point = csr.info.public_key.subject_public_key.raw_bytes();
        check_signature(key, point, algorithm, tbs, &csr.signature, &mut findings);
    }
    findings.extend(check_subject(&csr.info.subject, environment, all));
    check_attributes(&csr, &mut findings);

    if findings.iter().any(Finding::is_error) {
        return Verdict::Rejected(RejectedCsr { findings, der: Some(der), spki_sha256: Some(spki_sha256) });
    }

    let (Some(public_key), Some(algorithm)) = (key, algorithm) else {
        unreachable!("a CSR without errors has a P-256 key and an accepted signature algorithm");
    };
    let subject_der = csr.info.subject.to_der().expect("a Name that was just decoded encodes again");
    Verdict::Accepted(VerifiedCsr {
        der,
        spki_der,
        spki_sha256,
        public_key,
        subject: environment.subject.clone(),
        subject_der,
        signature_algorithm: algorithm.name(),
        warnings: findings,
    })
}

/// Decodes the CSR as strict DER and returns it with the exact bytes of its
/// CertificationRequestInfo, over which the signature is computed.
fn parse_strict(der: &[u8]) -> Result<(CertReq, &[u8]), Finding> {
    let csr = CertReq::from_der(der).map_err(|error| {
        malformed(
            format!("The upload is not a valid DER-encoded certificate signing request ({error}). Upload the file exactly as openssl req -new wrote it."),
            format!("De upload is geen geldige DER-gecodeerde certificaataanvraag ({error}). Upload het bestand precies zoals openssl req -new het schreef."),
        )
    })?;

    let reencoded = csr.to_der().ok();
    if reencoded.as_deref() != Some(der) {
        return Err(malformed(
            "The CSR is not in canonical DER: encoding it again gives other bytes. Make a new CSR with openssl req -new.",
            "De CSR is niet in canonieke DER: opnieuw coderen geeft andere bytes. Maak een nieuwe CSR met openssl req -new.",
        ));
    }

    if csr.info.version != Version::V1 {
        return Err(malformed(
            "The CSR version is not 0 (v1). Make a new CSR with openssl req -new.",
            "De CSR-versie is niet 0 (v1). Maak een nieuwe CSR met openssl req -new.",
        ));
    }

    let tbs = certification_request_info_bytes(der).ok_or_else(|| {
        malformed(
            "The CSR's CertificationRequestInfo could not be read.",
            "De CertificationRequestInfo van de CSR kon niet worden gelezen.",
        )
    })?;
    Ok((csr, tbs))
}

fn certification_request_info_bytes(der: &[u8]) -> Option<&[u8]> {
    let mut reader = SliceReader::new(der).ok()?;
    let outer = der::Header::decode(&mut reader).ok()?;
    if outer.tag != Tag::Sequence {
        return None;
    }
    reader.tlv_bytes().ok()
}

fn check_key(spki: &SubjectPublicKeyInfoOwned, findings: &mut Vec<Finding>) -> Option<p256::PublicKey> {
    let algorithm = spki.algorithm.oid;
    if algorithm != ID_EC_PUBLIC_KEY {
        let name = key_algorithm_name(algorithm);
        findings.push(Finding::error(
            FindingCode::KeyType,
            format!("The public key is of type {name}; expected an EC key on the curve prime256v1 (P-256). Make a new key and CSR with -newkey ec -pkeyopt ec_paramgen_curve:prime256v1."),
            format!("De publieke sleutel is van het type {name}; verwacht werd een EC-sleutel op de curve prime256v1 (P-256). Maak een nieuwe sleutel en CSR met -newkey ec -pkeyopt ec_paramgen_curve:prime256v1."),
        ));
        return None;
    }

    let curve = spki.algorithm.parameters.as_ref().map(curve_name);
    if curve != Some(Curve::Prime256v1) {
        let (en, nl) = match curve {
            Some(Curve::Named(name)) => (format!("the curve {name}"), format!("de curve {name}")),
            Some(Curve::Explicit) => ("explicit curve parameters".to_owned(), "expliciete curveparameters".to_owned()),
            Some(Curve::Prime256v1) => unreachable!("prime256v1 is accepted above"),
            None => ("no curve parameters".to_owned(), "geen curveparameters".to_owned()),
        };
        findings.push(Finding::error(
            FindingCode::KeyCurve,
            format!("The EC key uses {en}; expected the named curve prime256v1 (P-256). Make a new key and CSR with -newkey ec -pkeyopt ec_paramgen_curve:prime256v1."),
            format!("De EC-sleutel gebruikt {nl}; verwacht werd de benoemde curve prime256v1 (P-256). Maak een nieuwe sleutel en CSR met -newkey ec -pkeyopt ec_paramgen_curve:prime256v1."),
        ));
        return None;
    }

    let point = spki.subject_public_key.as_bytes().unwrap_or_default();
    let public_key = p256::PublicKey::from_sec1_bytes(point);

    match point.first() {
        Some(0x04) if point.len() == 65 => {}
        Some(0x02 | 0x03) => findings.push(Finding::error(
            FindingCode::KeyEncoding,
            "The EC public key is a compressed point; expected the uncompressed form (starting with 04) that openssl req writes by default. Make a new key and CSR without -conv_form compressed.",
            "De EC-sleutel is een gecomprimeerd punt; verwacht werd de ongecomprimeerde vorm (beginnend met 04) die openssl req standaard schrijft. Maak een nieuwe sleutel en CSR zonder -conv_form compressed.",
        )),
        _ => findings.push(Finding::error(
            FindingCode::KeyEncoding,
            "The EC public key is not a 65-byte uncompressed point. Make a new key and CSR with openssl req.",
            "De EC-sleutel is geen ongecomprimeerd punt van 65 bytes. Maak een nieuwe sleutel en CSR met openssl req.",
        )),
    }

    match public_key {
        Ok(key) => Some(key),
        Err(_) => {
            findings.push(Finding::error(
                FindingCode::KeyInvalid,
                "The EC public key is not a point on the P-256 curve. Make a new key and CSR with openssl req.",
                "De EC-sleutel is geen punt op de P-256-curve. Maak een nieuwe sleutel en CSR met openssl req.",
            ));
            None
        }
    }
}

/// The curve of an EC key, as its parameters give it.
#[derive(Debug, PartialEq, Eq)]
enum Curve {
    Prime256v1,
    /// Another named curve, by its usual name or OID.
    Named(String),
    Explicit,
}

fn curve_name(parameters: &Any) -> Curve {
    if parameters.tag() == Tag::Sequence {
        return Curve::Explicit;
    }
    let Ok(oid) = parameters.decode_as::<Oid>() else {
        return Curve::Named(format!("<{}>", parameters.tag()));
    };
    if oid == PRIME256V1 {
        return Curve::Prime256v1;
    }
    let name = match oid.to_string().as_str() {
        "1.3.132.0.34" => "secp384r1 (P-384)".to_owned(),
        "1.3.132.0.35" => "secp521r1 (P-521)".to_owned(),
        "1.3.132.0.10" => "secp256k1".to_owned(),
        "1.3.36.3.3.2.8.1.1.7" => "brainpoolP256r1".to_owned(),
        other => format!("OID {other}"),
    };
    Curve::Named(name)
}

fn key_algorithm_name(oid: Oid) -> String {
    match oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "RSA".to_owned(),
        "1.2.840.113549.1.1.10" => "RSA-PSS".to_owned(),
        "1.3.101.112" => "Ed25519".to_owned(),
        "1.3.101.113" => "Ed448".to_owned(),
        "1.3.101.110" => "X25519".to_owned(),
        "1.3.101.111" => "X448".to_owned(),
        "1.2.840.10040.4.1" => "DSA".to_owned(),
        other => format!("OID {other}"),
    }
}

#[derive(Clone, Copy)]
enum SignatureAlgorithm {
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
}

impl SignatureAlgorithm {
    fn name(self) -> &'static str {
        match self {
            SignatureAlgorithm::EcdsaSha256 => "ecdsa-with-SHA256",
            SignatureAlgorithm::EcdsaSha384 => "ecdsa-with-SHA384",
            SignatureAlgorithm::EcdsaSha512 => "ecdsa-with-SHA512",
        }
    }

    fn verification_algorithm(self) -> &'static EcdsaVerificationAlgorithm {
        match self {
            SignatureAlgorithm::EcdsaSha256 => &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            SignatureAlgorithm::EcdsaSha384 => &aws_lc_rs::signature::ECDSA_P256_SHA384_ASN1,
            SignatureAlgorithm::EcdsaSha512 => &aws_lc_rs::signature::ECDSA_P256_SHA512_ASN1,
        }
    }
}

fn check_signature_algorithm(csr: &CertReq, findings: &mut Vec<Finding>) -> Option<SignatureAlgorithm> {
    let oid = csr.algorithm.oid;
    let algorithm = match oid {
        ECDSA_WITH_SHA256 => Some(SignatureAlgorithm::EcdsaSha256),
        ECDSA_WITH_SHA384 => Some(SignatureAlgorithm::EcdsaSha384),
        ECDSA_WITH_SHA512 => Some(SignatureAlgorithm::EcdsaSha512),
        _ => None,
    };
    // RFC 5758: the ecdsa-with-SHA2 identifiers have absent parameters.
    if let (Some(algorithm), None) = (algorithm, &csr.algorithm.parameters) {
        return Some(algorithm);
    }

    let name = match oid.to_string().as_str() {
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1".to_owned(),
        "1.2.840.10045.4.3.1" => "ecdsa-with-SHA224".to_owned(),
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption".to_owned(),
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption".to_owned(),
        "1.3.101.112" => "Ed25519".to_owned(),
        _ if algorithm.is_some() => format!("{} with parameters", oid),
        other => format!("the algorithm with OID {other}"),
    };
    let (hint_en, hint_nl) = if name.contains("SHA1") || name.contains("sha1") {
        ("Make a new CSR without -sha1 (openssl req uses SHA-256 by default).", "Maak een nieuwe CSR zonder -sha1 (openssl req gebruikt standaard SHA-256).")
    } else {
        ("Make a new CSR with the openssl req command, which signs with SHA-256.", "Maak een nieuwe CSR met het openssl req-commando, dat met SHA-256 ondertekent.")
    };
    findings.push(Finding::error(
        FindingCode::SignatureAlgorithm,
        format!("The CSR is signed with {name}; expected ecdsa-with-SHA256, -SHA384 or -SHA512. {hint_en}"),
        format!("De CSR is ondertekend met {name}; verwacht werd ecdsa-with-SHA256, -SHA384 of -SHA512. {hint_nl}"),
    ));
    None
}

fn check_signature(
    key: &p256::PublicKey,
    point: &[u8],
    algorithm: SignatureAlgorithm,
    tbs: &[u8],
    signature: &BitString,
    findings: &mut Vec<Finding>,
) {
    // aws-lc-rs verifies several times faster than the p256 crate; docs/benchmarks.md
    // has the figures. A compressed point is passed uncompressed, so that such a key
    // gets only its key-encoding finding.
    let uncompressed;
    let point = match point {
        [0x04, ..] => point,
        _ => {
            uncompressed = key.to_encoded_point(false);
            uncompressed.as_bytes()
        }
    };
    let verifies = signature.as_bytes().is_some_and(|der_signature| {
        UnparsedPublicKey::new(algorithm.verification_algorithm(), point)
            .verify(tbs, der_signature)
            .is_ok()
    });
    if !verifies {
        findings.push(Finding::error(
            FindingCode::Signature,
            "The CSR's signature does not verify with its public key, so it does not prove possession of the private key: the CSR was changed after it was signed. Upload the file exactly as openssl req -new wrote it, or make a new one.",
            "De handtekening van de CSR klopt niet met de publieke sleutel, dus bewijst niet dat u de privésleutel bezit: de CSR is na het ondertekenen gewijzigd. Upload het bestand precies zoals openssl req -new het schreef, of maak een nieuwe.",
        ));
    }
}

fn check_attributes(csr: &CertReq, findings: &mut Vec<Finding>) {
    for attribute in csr.info.attributes.iter() {
        if attribute.oid == EXTENSION_REQUEST {
            check_extension_request(attribute.values.as_slice(), findings);
            continue;
        }

        let name = if attribute.oid == CHALLENGE_PASSWORD {
            "challengePassword".to_owned()
        } else {
            format!("the attribute with OID {}", attribute.oid)
        };
        findings.push(Finding::error(
            FindingCode::Attribute,
            format!("The CSR contains {name}; expected no attributes. Remove the attributes section from the OpenSSL config, or use the openssl req command with -subj as given."),
            format!("De CSR bevat {name}; verwacht werden geen attributen. Verwijder de sectie attributes uit de OpenSSL-configuratie, of gebruik het openssl req-commando met -subj zoals gegeven."),
        ));
    }
}

fn check_extension_request(values: &[Any], findings: &mut Vec<Finding>) {
    let extensions = match values {
        [value] => value.decode_as::<Extensions>().ok(),
        _ => None,
    };
    let Some(extensions) = extensions else {
        findings.push(Finding::error(
            FindingCode::Attribute,
            "The CSR's extensionRequest attribute is not one valid list of extensions. Make a new CSR with openssl req.",
            "Het extensionRequest-attribuut van de CSR is geen geldige lijst van extensies. Maak een nieuwe CSR met openssl req.",
        ));
        return;
    };

    let mut ignored = Vec::new();
    for extension in &extensions {
        match extension.extn_id {
            SUBJECT_ALT_NAME => ignored.push("subjectAltName"),
            KEY_USAGE => ignored.push("keyUsage"),
            EXTENDED_KEY_USAGE => ignored.push("extendedKeyUsage"),
            other => {
                let name = extension_name(other);
                findings.push(Finding::error(
                    FindingCode::Extension,
                    format!("The CSR requests the extension {name}; only subjectAltName, keyUsage and extendedKeyUsage may be requested. Make a new CSR without -addext or req_extensions."),
                    format!("De CSR vraagt de extensie {name} aan; alleen subjectAltName, keyUsage en extendedKeyUsage mogen worden aangevraagd. Maak een nieuwe CSR zonder -addext of req_extensions."),
                ));
            }
        }
    }

    if !ignored.is_empty() {
        let list = ignored.join(", ");
        findings.push(Finding::warning(
            FindingCode::Extension,
            format!("The CSR requests {list}. These are ignored: the CA's certificate profile decides the extensions of the certificate."),
            format!("De CSR vraagt {list} aan. Die worden genegeerd: het certificaatprofiel van de CA bepaalt de extensies van het certificaat."),
        ));
    }
}

fn extension_name(oid: Oid) -> String {
    match oid.to_string().as_str() {
        "2.5.29.19" => "basicConstraints".to_owned(),
        "2.5.29.14" => "subjectKeyIdentifier".to_owned(),
        "2.5.29.32" => "certificatePolicies".to_owned(),
        "1.3.6.1.5.5.7.1.1" => "authorityInfoAccess".to_owned(),
        other => format!("with OID {other}"),
    }
}
