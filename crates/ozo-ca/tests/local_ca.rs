use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use der::{Decode, DecodePem};
use ozo_ca::{LocalCa, Signer, SigningRequest};
use ozo_domain::{validate, Environment, Verdict, VerifiedCsr};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::Certificate;

fn verified(file: &str, environment: usize) -> VerifiedCsr {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/csr").join(file);
    let environments = Environment::builtin();
    match validate(&std::fs::read(path).unwrap(), &environments[environment], &environments) {
        Verdict::Accepted(csr) => csr,
        Verdict::Rejected(rejected) => panic!("{file} rejected: {:?}", rejected.findings),
    }
}

#[tokio::test]
async fn local_ca_issues_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::open_or_create(&dir.path().join("staging"), "ozo-signer staging CA", "OZOverbindzorg").unwrap();

    let key_mode = std::fs::metadata(dir.path().join("staging/ca-key.pem")).unwrap().permissions().mode() & 0o777;
    assert_eq!(key_mode, 0o600);

    let csr = verified("staging-valid.csr", 0);
    let request_id = uuid::Uuid::new_v4();
    let issued = ca
        .sign(SigningRequest { request_id, csr: &csr, lifetime: time::Duration::days(365) })
        .await
        .unwrap();

    let certificate = Certificate::from_der(&issued.der).unwrap();
    let tbs = &certificate.tbs_certificate;
    // The subject is the CSR's, byte for byte, with CN encoded first.
    assert_eq!(der::Encode::to_der(&tbs.subject).unwrap(), csr.subject_der());
    assert_eq!(tbs.subject.0[0].0.get(0).unwrap().oid.to_string(), "2.5.4.3");
    // RFC 4514 text lists the last RDN first.
    assert_eq!(tbs.issuer.to_string(), "O=OZOverbindzorg,CN=ozo-signer staging CA");
    assert_eq!(tbs.issuer.0[0].0.get(0).unwrap().oid.to_string(), "2.5.4.3");
    assert_eq!(issued.issuer, tbs.issuer.to_string());
    assert_eq!(
        der::Encode::to_der(&tbs.subject_public_key_info).unwrap(),
        csr.spki_der()
    );
    // 128 random bits: at most 16 bytes, plus a 0x00 sign byte when the top bit is set.
    let serial = tbs.serial_number.as_bytes();
    assert!(serial.len() <= 17, "{serial:?}");
    assert!(issued.serial_hex.len() <= 32, "{}", issued.serial_hex);
    assert!(issued.serial_hex.len() >= 16, "{}", issued.serial_hex);
    assert!(!issued.serial_hex.starts_with("00"), "{}", issued.serial_hex);
    assert_eq!((issued.not_after - issued.not_before).whole_days(), 365);

    let (_, basic) = certificate.tbs_certificate.get::<BasicConstraints>().unwrap().unwrap();
    assert!(!basic.ca);
    let (_, key_usage) = certificate.tbs_certificate.get::<KeyUsage>().unwrap().unwrap();
    assert!(key_usage.digital_signature());
    assert_eq!(key_usage.0.bits(), x509_cert::der::flagset::FlagSet::<KeyUsages>::from(KeyUsages::DigitalSignature).bits());
    let (_, eku) = certificate.tbs_certificate.get::<ExtendedKeyUsage>().unwrap().unwrap();
    assert_eq!(eku.0, vec![der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2")]);
    let extension_count = tbs.extensions.as_ref().map(Vec::len).unwrap_or(0);
    assert_eq!(extension_count, 5, "basicConstraints, keyUsage, EKU, SKI, AKI");

    // Two certificates for the same CA get different serials.
    let again = ca
        .sign(SigningRequest { request_id, csr: &csr, lifetime: time::Duration::days(30) })
        .await
        .unwrap();
    assert_ne!(again.serial_hex, issued.serial_hex);
    assert_eq!((again.not_after - again.not_before).whole_days(), 30);
}

#[test]
fn local_ca_reopens_same_root() {
    let dir = tempfile::tempdir().unwrap();
    let first = LocalCa::open_or_create(&dir.path().join("staging"), "staging CA", "OZOverbindzorg").unwrap();
    let second = LocalCa::open_or_create(&dir.path().join("staging"), "staging CA", "OZOverbindzorg").unwrap();
    assert_eq!(first.ca_certificate_pem(), second.ca_certificate_pem());

    let other = LocalCa::open_or_create(&dir.path().join("production"), "production CA", "OZOverbindzorg").unwrap();
    assert_ne!(first.ca_certificate_pem(), other.ca_certificate_pem());

    let root = Certificate::from_pem(first.ca_certificate_pem()).unwrap();
    let (_, basic) = root.tbs_certificate.get::<BasicConstraints>().unwrap().unwrap();
    assert!(basic.ca);
}

#[test]
fn local_ca_rejects_readable_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("staging");
    LocalCa::open_or_create(&path, "staging CA", "OZOverbindzorg").unwrap();
    std::fs::set_permissions(path.join("ca-key.pem"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = LocalCa::open(&path).err().expect("a world-readable key is rejected");
    assert!(error.to_string().contains("chmod 600"), "{error}");
}
