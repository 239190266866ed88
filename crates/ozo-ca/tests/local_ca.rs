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
    let issued =
        ca.sign(SigningRequest { request_id, csr: &csr, lifetime: time::Duration::days(365), round: 1 }).await.unwrap();

    let certificate = Certificate::from_der(&issued.der).unwrap();
    let tbs = &certificate.tbs_certificate;
    // The subject is the CSR's, byte for byte, with CN encoded first.
    assert_eq!(der::Encode::to_der(&tbs.subject).unwrap(), csr.subject_der());
    assert_eq!(tbs.subject.0[0].0.get(0).unwrap().oid.to_string(), "2.5.4.3");
    // RFC 4514 text lists the last RDN first.
    assert_eq!(tbs.issuer.to_string(), "O=OZOverbindzorg,CN=ozo-signer staging CA");
    assert_eq!(tbs.issuer.0[0].0.get(0).unwrap().oid.to_string(), "2.5.4.3");
    assert_eq!(issued.issuer, tbs.issuer.to_string());
    assert_eq!(der::Encode::to_der(&tbs.subject_public_key_info).unwrap(), csr.spki_der());
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
    assert_eq!(
        key_usage.0.bits(),
        x509_cert::der::flagset::FlagSet::<KeyUsages>::from(KeyUsages::DigitalSignature).bits()
    );
    let (_, eku) = certificate.tbs_certificate.get::<ExtendedKeyUsage>().unwrap().unwrap();
    assert_eq!(eku.0, vec![der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2")]);
    let extension_count = tbs.extensions.as_ref().map(Vec::len).unwrap_or(0);
    assert_eq!(extension_count, 5, "basicConstraints, keyUsage, EKU, SKI, AKI");

    // Two certificates for the same CA get different serials.
    let again =
        ca.sign(SigningRequest { request_id, csr: &csr, lifetime: time::Duration::days(30), round: 1 }).await.unwrap();
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

#[tokio::test]
async fn check_issued_accepts_the_right_certificate_and_names_each_mismatch() {
    use ozo_ca::{check_issued, CertificateMismatch};

    let dir = tempfile::tempdir().unwrap();
    let staging = LocalCa::open_or_create(&dir.path().join("staging"), "staging CA", "OZOverbindzorg").unwrap();
    let production =
        LocalCa::open_or_create(&dir.path().join("production"), "production CA", "OZOverbindzorg").unwrap();
    let csr = verified("staging-valid.csr", 0);
    let lifetime = time::Duration::days(30);
    let request = SigningRequest { request_id: uuid::Uuid::new_v4(), csr: &csr, lifetime, round: 1 };
    let issued = staging.sign(request).await.unwrap();
    let now = time::OffsetDateTime::now_utc();

    assert_eq!(check_issued(&issued, &csr, lifetime, staging.ca_certificate_pem(), now), Ok(()));

    // Another environment's root: the chain does not lead there.
    let other_root = check_issued(&issued, &csr, lifetime, production.ca_certificate_pem(), now);
    assert!(matches!(other_root, Err(CertificateMismatch::Chain(_))), "{other_root:?}");

    // A certificate for another key, signed by the right CA.
    let other_csr = verified("sha384-signature.csr", 0);
    let other_key = check_issued(&issued, &other_csr, lifetime, staging.ca_certificate_pem(), now);
    assert_eq!(other_key, Err(CertificateMismatch::PublicKey));

    // Longer than configured.
    let too_long = check_issued(&issued, &csr, time::Duration::days(7), staging.ca_certificate_pem(), now);
    assert_eq!(too_long, Err(CertificateMismatch::Lifetime { days: 30, allowed_days: 7 }));

    // Already expired at the time of the check.
    let later = now + time::Duration::days(31);
    let expired = check_issued(&issued, &csr, lifetime, staging.ca_certificate_pem(), later);
    assert!(matches!(expired, Err(CertificateMismatch::NotCurrent { .. })), "{expired:?}");

    // A chain that claims an intermediate the root did not sign.
    let mut forged = issued.clone();
    forged.chain_pem = production.ca_certificate_pem().to_owned();
    let forged_chain = check_issued(&forged, &csr, lifetime, staging.ca_certificate_pem(), now);
    assert!(matches!(forged_chain, Err(CertificateMismatch::Chain(_))), "{forged_chain:?}");
}
