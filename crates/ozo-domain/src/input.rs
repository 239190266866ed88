//! Turns an upload into the DER bytes of one CSR, or into the finding that explains
//! why it is not one. Private keys are detected here, before anything is parsed or kept.

use base64ct::{Base64, Encoding};
use der::{Decode, Encode, Header, Reader, SliceReader, Tag};
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};
use sha2::{Digest, Sha256};
use x509_cert::request::CertReq;

use crate::{Finding, FindingCode};

/// Why an upload is not one CSR.
pub(crate) enum UploadError {
    /// The upload contains a private key. `exposed_spki_sha256` is the fingerprint of
    /// the public key that belongs to it, when that could be derived.
    PrivateKey { finding: Finding, exposed_spki_sha256: Option<[u8; 32]> },
    Other(Finding),
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const CSR_LABELS: [&str; 2] = ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"];

/// Returns the DER of the single CSR in `input`, which is PEM (with any text around the
/// block) or DER.
pub(crate) fn decode_upload(input: &[u8]) -> Result<Vec<u8>, UploadError> {
    if contains_pem_private_key(input) {
        return Err(private_key_error(input));
    }

    let input = input.strip_prefix(UTF8_BOM).unwrap_or(input);
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(UploadError::Other(malformed(
            "The upload is empty. Expected a CSR in PEM form (-----BEGIN CERTIFICATE REQUEST-----) or DER.",
            "De upload is leeg. Verwacht werd een CSR in PEM-vorm (-----BEGIN CERTIFICATE REQUEST-----) of DER.",
        )));
    }

    let der = if find(input, b"-----BEGIN").is_some() {
        decode_pem(input).map_err(UploadError::Other)?
    } else if input.first() == Some(&0x30) {
        input.to_vec()
    } else {
        // A DER CSR starts with a SEQUENCE tag; anything else is text without a PEM block.
        return Err(UploadError::Other(malformed(
            "The upload contains no -----BEGIN CERTIFICATE REQUEST----- block and is not a DER file. Paste or upload the whole content of client.csr, as openssl req -new wrote it.",
            "De upload bevat geen -----BEGIN CERTIFICATE REQUEST-----blok en is geen DER-bestand. Plak of upload de hele inhoud van client.csr, zoals openssl req -new die schreef.",
        )));
    };

    if looks_like_private_key(&der) {
        return Err(UploadError::PrivateKey {
            finding: private_key_finding(),
            exposed_spki_sha256: public_key_fingerprint(&der),
        });
    }
    Ok(der)
}

fn private_key_error(input: &[u8]) -> UploadError {
    UploadError::PrivateKey { finding: private_key_finding(), exposed_spki_sha256: exposed_key_fingerprint(input) }
}

/// Derives the fingerprint of the public key whose private key is in a PEM upload, or
/// failing that, of the CSR beside it. The decoded key is dropped (and zeroized by
/// `p256`) at once.
fn exposed_key_fingerprint(input: &[u8]) -> Option<[u8; 32]> {
    let blocks = pem_blocks(input).ok()?;
    let decoded = |block: &PemBlock| Base64::decode_vec(std::str::from_utf8(&block.base64).ok()?).ok();

    let from_key = blocks
        .iter()
        .filter(|block| block.label.contains("PRIVATE KEY") && !block.label.contains("ENCRYPTED"))
        .find_map(|block| public_key_fingerprint(&decoded(block)?));
    if from_key.is_some() {
        return from_key;
    }
    blocks
        .iter()
        .filter(|block| CSR_LABELS.contains(&block.label.as_str()))
        .find_map(|block| {
            let csr = CertReq::from_der(&decoded(block)?).ok()?;
            let spki = csr.info.public_key.to_der().ok()?;
            Some(Sha256::digest(spki).into())
        })
}

/// The fingerprint of the public key of a P-256 private key in PKCS#8 or SEC1 DER.
fn public_key_fingerprint(private_key_der: &[u8]) -> Option<[u8; 32]> {
    let secret = p256::SecretKey::from_pkcs8_der(private_key_der)
        .or_else(|_| p256::SecretKey::from_sec1_der(private_key_der))
        .ok()?;
    let spki = secret.public_key().to_public_key_der().ok()?;
    Some(Sha256::digest(spki.as_bytes()).into())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Whether a PEM boundary of any private-key form appears: PKCS#8 (`PRIVATE KEY`,
/// `ENCRYPTED PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) and others.
fn contains_pem_private_key(input: &[u8]) -> bool {
    find(input, b"PRIVATE KEY-----").is_some()
}

/// Whether DER bytes have the shape of a private key rather than of a CSR: a SEQUENCE
/// that starts with a version INTEGER followed by key material (PKCS#8, SEC1, PKCS#1,
/// DSA), or the two-element SEQUENCE of an encrypted PKCS#8 key.
fn looks_like_private_key(der: &[u8]) -> bool {
    let Some(body) = sequence_body(der) else {
        return false;
    };
    let Ok(mut reader) = SliceReader::new(body) else {
        return false;
    };

    let mut tags = Vec::with_capacity(4);
    while tags.len() < 4 && !reader.is_finished() {
        let Ok(header) = Header::decode(&mut reader) else {
            break;
        };
        if reader.read_slice(header.length).is_err() {
            break;
        }
        tags.push(header.tag);
    }

    matches!(
        tags.as_slice(),
        [Tag::Integer, Tag::OctetString, ..]
            | [Tag::Integer, Tag::Sequence, Tag::OctetString, ..]
            | [Tag::Integer, Tag::Integer, Tag::Integer, ..]
            | [Tag::Sequence, Tag::OctetString]
    )
}

fn sequence_body(der: &[u8]) -> Option<&[u8]> {
    let mut reader = SliceReader::new(der).ok()?;
    let header = Header::decode(&mut reader).ok()?;
    if header.tag != Tag::Sequence {
        return None;
    }
    reader.read_slice(header.length).ok()
}

struct PemBlock {
    label: String,
    base64: Vec<u8>,
}

fn decode_pem(input: &[u8]) -> Result<Vec<u8>, Finding> {
    let blocks = pem_blocks(input)?;

    let (csrs, others): (Vec<&PemBlock>, Vec<&PemBlock>) = blocks
        .iter()
        .partition(|block| CSR_LABELS.contains(&block.label.as_str()));

    if let Some(other) = others.first() {
        let label = &other.label;
        return Err(if csrs.is_empty() {
            malformed(
                format!("The upload is a PEM block labelled {label:?}, not a certificate signing request. Expected a block labelled \"CERTIFICATE REQUEST\", as openssl req -new writes it."),
                format!("De upload is een PEM-blok met label {label:?}, geen certificaataanvraag (CSR). Verwacht werd een blok met label \"CERTIFICATE REQUEST\", zoals openssl req -new dat schrijft."),
            )
        } else {
            malformed(
                format!("Besides the CSR, the upload contains a PEM block labelled {label:?}. Upload only the CSR file."),
                format!("Naast de CSR bevat de upload een PEM-blok met label {label:?}. Upload alleen het CSR-bestand."),
            )
        });
    }

    let csr = match csrs.as_slice() {
        [csr] => csr,
        [] => {
            return Err(malformed(
                "The upload contains no complete CERTIFICATE REQUEST block. Expected the whole file that openssl req -new wrote, from -----BEGIN CERTIFICATE REQUEST----- to -----END CERTIFICATE REQUEST-----.",
                "De upload bevat geen volledig CERTIFICATE REQUEST-blok. Verwacht werd het hele bestand dat openssl req -new schreef, van -----BEGIN CERTIFICATE REQUEST----- tot en met -----END CERTIFICATE REQUEST-----.",
            ))
        }
        several => {
            let count = several.len();
            return Err(malformed(
                format!("The upload contains {count} CSRs; expected exactly one. Upload each CSR as its own request."),
                format!("De upload bevat {count} CSR's; verwacht werd er precies één. Upload elke CSR als aparte aanvraag."),
            ));
        }
    };

    Base64::decode_vec(std::str::from_utf8(&csr.base64).unwrap_or_default()).map_err(|_| {
        malformed(
            "The base64 text inside the CERTIFICATE REQUEST block is invalid: the file was probably changed or cut off. Upload the file exactly as openssl req -new wrote it.",
            "De base64-tekst in het CERTIFICATE REQUEST-blok is ongeldig: het bestand is waarschijnlijk gewijzigd of afgekapt. Upload het bestand precies zoals openssl req -new het schreef.",
        )
    })
}

/// Splits PEM text into its blocks. Text outside the blocks is ignored; lines may end
/// in CRLF.
fn pem_blocks(input: &[u8]) -> Result<Vec<PemBlock>, Finding> {
    let mut blocks = Vec::new();
    let mut current: Option<PemBlock> = None;

    for raw_line in input.split(|&b| b == b'\n') {
        let line = raw_line.trim_ascii();

        if line.starts_with(b"-----BEGIN") && find(line, b"-----END").is_some() {
            return Err(malformed(
                "The PEM text has lost its line breaks: BEGIN and END are on one line. With curl, upload the file with --data-binary @client.csr; -d removes line breaks.",
                "De PEM-tekst heeft geen regeleinden meer: BEGIN en END staan op één regel. Upload het bestand met curl via --data-binary @client.csr; -d verwijdert regeleinden.",
            ));
        }

        if let Some(label) = boundary_label(line, b"-----BEGIN ") {
            if current.is_some() {
                return Err(unterminated_block());
            }
            current = Some(PemBlock { label, base64: Vec::new() });
            continue;
        }

        if let Some(label) = boundary_label(line, b"-----END ") {
            let Some(block) = current.take() else {
                return Err(unterminated_block());
            };
            if block.label != label {
                return Err(unterminated_block());
            }
            blocks.push(block);
            continue;
        }

        if let Some(block) = current.as_mut() {
            if line.contains(&b':') {
                return Err(malformed(
                    "The PEM block has header lines (such as Proc-Type). A CSR has none: upload the file exactly as openssl req -new wrote it.",
                    "Het PEM-blok heeft kopregels (zoals Proc-Type). Een CSR heeft die niet: upload het bestand precies zoals openssl req -new het schreef.",
                ));
            }
            block.base64.extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
        }
    }

    if current.is_some() {
        return Err(unterminated_block());
    }
    Ok(blocks)
}

fn boundary_label(line: &[u8], prefix: &[u8]) -> Option<String> {
    let rest = line.strip_prefix(prefix)?.strip_suffix(b"-----")?;
    Some(String::from_utf8_lossy(rest).into_owned())
}

fn unterminated_block() -> Finding {
    malformed(
        "The PEM text is incomplete: a -----BEGIN line has no matching -----END line. Upload the whole file that openssl req -new wrote.",
        "De PEM-tekst is onvolledig: de -----END-regel bij een -----BEGIN-regel ontbreekt. Upload het hele bestand dat openssl req -new schreef.",
    )
}

pub(crate) fn malformed(en: impl Into<String>, nl: impl Into<String>) -> Finding {
    Finding::error(FindingCode::Malformed, en, nl)
}

fn private_key_finding() -> Finding {
    Finding::error(
        FindingCode::PrivateKey,
        "The upload contains a private key. It was not stored. Treat this key as compromised: \
         delete it, make a new key and CSR with openssl req, and upload only the CSR file \
         (client.csr). Never send the private key (client-key.pem) to anyone.",
        "De upload bevat een privésleutel. Die is niet opgeslagen. Beschouw deze sleutel als \
         gelekt: verwijder hem, maak met openssl req een nieuwe sleutel en CSR, en upload \
         alleen het CSR-bestand (client.csr). Stuur de privésleutel (client-key.pem) nooit \
         naar iemand.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_shapes_of_private_keys() {
        // SEQUENCE { INTEGER 1, OCTET STRING } as in SEC1.
        assert!(looks_like_private_key(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x04, 0x01, 0x00]));
        // SEQUENCE { SEQUENCE {}, OCTET STRING } as in encrypted PKCS#8.
        assert!(looks_like_private_key(&[0x30, 0x05, 0x30, 0x00, 0x04, 0x01, 0x00]));
        // SEQUENCE { INTEGER, INTEGER } is an RSA public key, not a private one.
        assert!(!looks_like_private_key(&[0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03]));
        assert!(!looks_like_private_key(b"not der"));
    }

    fn code(error: UploadError) -> FindingCode {
        match error {
            UploadError::PrivateKey { finding, .. } | UploadError::Other(finding) => finding.code,
        }
    }

    #[test]
    fn pem_label_of_a_private_key() {
        let input = b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(code(decode_upload(input).unwrap_err()), FindingCode::PrivateKey);
    }

    #[test]
    fn pem_mismatched_end_label() {
        let input = b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(code(decode_upload(input).unwrap_err()), FindingCode::Malformed);
    }

    #[test]
    fn text_without_pem_block() {
        let UploadError::Other(finding) = decode_upload(b"hello, this is my CSR").unwrap_err() else {
            panic!("not a private key");
        };
        assert_eq!(finding.code, FindingCode::Malformed);
        assert!(finding.en.contains("no -----BEGIN CERTIFICATE REQUEST----- block"), "{}", finding.en);
    }

    #[test]
    fn pem_without_line_breaks() {
        let input = b"-----BEGIN CERTIFICATE REQUEST-----AAAA-----END CERTIFICATE REQUEST-----";
        let UploadError::Other(finding) = decode_upload(input).unwrap_err() else {
            panic!("not a private key");
        };
        assert!(finding.en.contains("--data-binary"), "{}", finding.en);
    }
}
