//! A CA backend that keeps its own EC P-256 root in the data directory.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use der::asn1::ObjectIdentifier as Oid;
use der::pem::LineEnding;
use der::referenced::OwnedToRef;
use der::{Decode, DecodePem, Encode, EncodePem};
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

use crate::{IssuedCertificate, RevocationRequest, SignError, Signer, SigningRequest};

const ID_KP_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");
const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// Certificates start this long before the moment of signing, so that a client whose
/// clock is a little behind can use a certificate at once.
const BACKDATE: Duration = Duration::from_secs(5 * 60);
const KEY_FILE: &str = "ca-key.pem";
const CERT_FILE: &str = "ca-cert.pem";
/// Revoked serials, one tab-separated line each: serial, RFC 5280 reason, Unix time.
const REVOCATIONS_FILE: &str = "revocations.tsv";

#[derive(Debug, thiserror::Error)]
pub enum LocalCaError {
    #[error("failed to {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} is readable by other users (mode {mode:o}); run chmod 600 {path}")]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("{path} is not a valid {what}: {detail}")]
    Invalid { path: PathBuf, what: &'static str, detail: String },
    #[error("{path} does not certify the key in {key_path}: the CA files do not belong together")]
    Mismatch { path: PathBuf, key_path: PathBuf },
    #[error("failed to build the CA certificate: {0}")]
    Build(String),
}

/// An EC P-256 root CA whose key and certificate live in one directory.
pub struct LocalCa {
    key: SigningKey,
    certificate: Certificate,
    certificate_pem: String,
    directory: PathBuf,
}

impl LocalCa {
    /// Opens the CA in `directory`, creating a new root with `common_name` and
    /// `organization` when the directory contains none. The key file has mode 0600.
    pub fn open_or_create(directory: &Path, common_name: &str, organization: &str) -> Result<Self, LocalCaError> {
        if !directory.join(KEY_FILE).exists() {
            create(directory, common_name, organization)?;
        }
        Self::open(directory)
    }

    /// Opens an existing CA.
    pub fn open(directory: &Path) -> Result<Self, LocalCaError> {
        let key_path = directory.join(KEY_FILE);
        let cert_path = directory.join(CERT_FILE);

        let metadata = fs::metadata(&key_path).map_err(|source| io("read", &key_path, source))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(LocalCaError::KeyPermissions { path: key_path, mode });
        }

        let key_pem = fs::read_to_string(&key_path).map_err(|source| io("read", &key_path, source))?;
        let key = SigningKey::from_pkcs8_pem(&key_pem).map_err(|error| LocalCaError::Invalid {
            path: key_path.clone(),
            what: "PKCS#8 P-256 private key",
            detail: error.to_string(),
        })?;

        let certificate_pem = fs::read_to_string(&cert_path).map_err(|source| io("read", &cert_path, source))?;
        let certificate = Certificate::from_pem(&certificate_pem).map_err(|error| LocalCaError::Invalid {
            path: cert_path.clone(),
            what: "PEM certificate",
            detail: error.to_string(),
        })?;

        let public_key_der =
            key.verifying_key().to_public_key_der().map_err(|error| LocalCaError::Build(error.to_string()))?;
        let certified_key = certificate
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|error| LocalCaError::Build(error.to_string()))?;
        if public_key_der.as_bytes() != certified_key.as_slice() {
            return Err(LocalCaError::Mismatch { path: cert_path, key_path });
        }

        Ok(LocalCa { key, certificate, certificate_pem, directory: directory.to_owned() })
    }

    fn issue(&self, request: SigningRequest<'_>) -> Result<IssuedCertificate, String> {
        let csr = request.csr;
        // The subject is copied from the CSR as encoded, which validation proved to be
        // exactly the environment's subject.
        let subject = Name::from_der(csr.subject_der()).map_err(|e| format!("subject: {e}"))?;
        let spki = SubjectPublicKeyInfoOwned::from_der(csr.spki_der()).map_err(|e| format!("public key: {e}"))?;
        let issuer_spki = self.certificate.tbs_certificate.subject_public_key_info.clone();

        let lifetime: Duration = request.lifetime.try_into().map_err(|_| "negative lifetime".to_owned())?;
        let not_before = SystemTime::now() - BACKDATE;
        let validity = Validity {
            not_before: Time::try_from(not_before).map_err(|e| e.to_string())?,
            not_after: Time::try_from(not_before + lifetime).map_err(|e| e.to_string())?,
        };

        let profile = Profile::Manual { issuer: Some(self.certificate.tbs_certificate.subject.clone()) };
        let mut builder = CertificateBuilder::new(profile, random_serial(), validity, subject, spki.clone(), &self.key)
            .map_err(|e| e.to_string())?;
        let subject_key_id = SubjectKeyIdentifier::try_from(spki.owned_to_ref()).map_err(|e| e.to_string())?;
        let authority_key_id =
            AuthorityKeyIdentifier::try_from(issuer_spki.owned_to_ref()).map_err(|e| e.to_string())?;
        let extensions_result = (|| -> Result<(), x509_cert::builder::Error> {
            builder.add_extension(&BasicConstraints { ca: false, path_len_constraint: None })?;
            builder.add_extension(&KeyUsage(KeyUsages::DigitalSignature.into()))?;
            builder.add_extension(&ExtendedKeyUsage(vec![ID_KP_CLIENT_AUTH]))?;
            builder.add_extension(&subject_key_id)?;
            builder.add_extension(&authority_key_id)?;
            Ok(())
        })();
        extensions_result.map_err(|e| format!("extensions: {e}"))?;

        let certificate = builder.build::<DerSignature>().map_err(|e| e.to_string())?;
        describe_certificate(&certificate, self.certificate_pem.clone())
    }
}

#[async_trait]
impl Signer for LocalCa {
    async fn sign(&self, request: SigningRequest<'_>) -> Result<IssuedCertificate, SignError> {
        self.issue(request).map_err(SignError::Rejected)
    }

    async fn revoke(&self, request: RevocationRequest<'_>) -> Result<(), SignError> {
        if let Some(name) = request.certificate_name {
            return Err(SignError::Rejected(format!(
                "certificate {} was issued by the remote CA as {name}, not by the local CA in {}; configure that CA for the environment to revoke it",
                request.serial_hex,
                self.directory.display()
            )));
        }
        let path = self.directory.join(REVOCATIONS_FILE);
        let existing = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(SignError::Unavailable(format!("failed to read {}: {error}", path.display()))),
        };
        if existing.lines().any(|line| line.split('\t').next() == Some(request.serial_hex)) {
            return Ok(());
        }

        let line =
            format!("{}\t{}\t{}\n", request.serial_hex, request.reason, OffsetDateTime::now_utc().unix_timestamp());
        let appended = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o644)
            .open(&path)
            .and_then(|mut file| file.write_all(line.as_bytes()).and_then(|()| file.sync_all()));
        appended.map_err(|error| SignError::Unavailable(format!("failed to write {}: {error}", path.display())))?;
        tracing::info!(request.id = %request.request_id, certificate.serial = request.serial_hex, reason = %request.reason, "local CA recorded a revocation");
        Ok(())
    }

    fn ca_certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    fn describe(&self) -> String {
        format!("local CA in {}", self.directory.display())
    }
}

/// Describes a certificate for storage.
fn describe_certificate(certificate: &Certificate, chain_pem: String) -> Result<IssuedCertificate, String> {
    let der = certificate.to_der().map_err(|e| e.to_string())?;
    let pem = certificate.to_pem(LineEnding::LF).map_err(|e| e.to_string())?;
    let tbs = &certificate.tbs_certificate;
    let to_offset = |t: Time| OffsetDateTime::from(t.to_system_time());
    Ok(IssuedCertificate {
        sha256_hex: hex::encode(Sha256::digest(&der)),
        serial_hex: crate::serial_hex(tbs.serial_number.as_bytes()),
        issuer: tbs.issuer.to_string(),
        not_before: to_offset(tbs.validity.not_before),
        not_after: to_offset(tbs.validity.not_after),
        der,
        pem,
        chain_pem,
        ca_record: None,
    })
}

/// A random positive serial number of 128 bits.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    loop {
        OsRng.fill_bytes(&mut bytes);
        if bytes.iter().any(|&b| b != 0) {
            break;
        }
    }
    SerialNumber::new(&bytes).expect("16 bytes are within the 20-byte limit of RFC 5280")
}

fn escape_rdn_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Creates a new root in a temporary directory beside `directory` and renames it into
/// place, so that a concurrent start never finds a key without its certificate.
fn create(directory: &Path, common_name: &str, organization: &str) -> Result<(), LocalCaError> {
    let parent = directory.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|source| io("create", parent, source))?;

    let key = SigningKey::random(&mut OsRng);
    let spki =
        SubjectPublicKeyInfoOwned::from_key(*key.verifying_key()).map_err(|e| LocalCaError::Build(e.to_string()))?;
    // RFC 4514 strings list the last RDN first, so this encodes CN first, then O, like
    // the client subjects.
    let subject = Name::from_str(&format!("O={},CN={}", escape_rdn_value(organization), escape_rdn_value(common_name)))
        .map_err(|e| LocalCaError::Build(format!("root subject: {e}")))?;
    let validity = Validity::from_now(ROOT_LIFETIME).map_err(|e| LocalCaError::Build(e.to_string()))?;
    let certificate = CertificateBuilder::new(Profile::Root, random_serial(), validity, subject, spki, &key)
        .and_then(|builder| builder.build::<DerSignature>())
        .map_err(|e| LocalCaError::Build(e.to_string()))?;
    let certificate_pem = certificate.to_pem(LineEnding::LF).map_err(|e| LocalCaError::Build(e.to_string()))?;
    let key_pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| LocalCaError::Build(e.to_string()))?;

    let staging = parent.join(format!(".new-ca-{}", uuid::Uuid::new_v4()));
    fs::DirBuilder::new().mode(0o700).create(&staging).map_err(|source| io("create", &staging, source))?;
    write_file(&staging.join(KEY_FILE), key_pem.as_bytes(), 0o600)?;
    write_file(&staging.join(CERT_FILE), certificate_pem.as_bytes(), 0o644)?;

    match fs::rename(&staging, directory) {
        Ok(()) => {
            tracing::info!(ca.directory = %directory.display(), "created local CA root");
            Ok(())
        }
        // Another process created the CA first; its root wins.
        Err(_) if directory.join(KEY_FILE).exists() => {
            let _ = fs::remove_dir_all(&staging);
            Ok(())
        }
        Err(source) => {
            let _ = fs::remove_dir_all(&staging);
            Err(io("create", directory, source))
        }
    }
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), LocalCaError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| io("create", path, source))?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(|source| io("write", path, source))
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> LocalCaError {
    LocalCaError::Io { action, path: path.to_owned(), source }
}
