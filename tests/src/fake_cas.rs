//! A fake Google Cloud Certificate Authority Service (CAS) for the system tests.
//!
//! It serves the three REST calls that ozo-signer makes through Google's Rust SDK
//! (`google-cloud-security-privateca-v1`): CreateCertificate, GetCertificate and
//! RevokeCertificate, with the paths, query parameters, camelCase JSON and error bodies
//! of the CAS v1 REST API. Each CA pool gets its own self-signed EC P-256 root on first
//! use. Tests queue faults for CreateCertificate and read back the calls the fake
//! received and the certificates it stored.
//!
//! The fake runs on its own thread with its own Tokio runtime, so it keeps serving
//! requests while a test blocks its own runtime on curl, OpenSSL or a child process.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use base64ct::{Base64, Encoding};
use der::asn1::ObjectIdentifier as Oid;
use der::oid::AssociatedOid;
use der::pem::LineEnding;
use der::referenced::OwnedToRef;
use der::{Any, DecodePem, Encode, EncodePem, Tag, Tagged};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use rand::rngs::OsRng;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::request::CertReq;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

const ID_KP_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");
const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");

/// The subject attributes that CAS reports in `subjectDescription.subject`, by their
/// X.520 attribute type and the JSON field of the CAS `Subject` message.
const SUBJECT_FIELDS: [(Oid, &str); 8] = [
    (Oid::new_unwrap("2.5.4.3"), "commonName"),
    (Oid::new_unwrap("2.5.4.6"), "countryCode"),
    (Oid::new_unwrap("2.5.4.7"), "locality"),
    (Oid::new_unwrap("2.5.4.8"), "province"),
    (Oid::new_unwrap("2.5.4.9"), "streetAddress"),
    (Oid::new_unwrap("2.5.4.10"), "organization"),
    (Oid::new_unwrap("2.5.4.11"), "organizationalUnit"),
    (Oid::new_unwrap("2.5.4.17"), "postalCode"),
];

/// The lifetime of a certificate whose request body has no `lifetime`.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Leaf certificates start this long before the moment of issuing.
const BACKDATE: Duration = Duration::from_secs(60);
const ROOT_BACKDATE: Duration = Duration::from_secs(60 * 60);
const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// The certificate authority ID reported as the issuer when a request names none.
pub const DEFAULT_CA_ID: &str = "fake-ca";
/// The largest revocation reason of the CAS `RevocationReason` enum,
/// ATTRIBUTE_AUTHORITY_COMPROMISE.
const MAX_REVOCATION_REASON: i64 = 8;

/// A misbehaviour of the fake for one CreateCertificate call.
///
/// Calls with `validateOnly=true` never consume a fault, because they issue nothing, and
/// neither do calls rejected for invalid query parameters.
/// A call whose request ID was seen before consumes a fault like any other. `Hang` and
/// `DropAfterIssue` then delay or drop the replayed response, and `WrongKey` has no
/// effect because nothing new is signed.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Responds with 503 UNAVAILABLE and issues nothing.
    Unavailable,
    /// Responds with 429 RESOURCE_EXHAUSTED, as CAS does when a quota is used up, and
    /// issues nothing.
    ResourceExhausted,
    /// Responds with 400 INVALID_ARGUMENT and this message, and issues nothing.
    InvalidArgument(String),
    /// Responds with 403 PERMISSION_DENIED and this message, and issues nothing.
    PermissionDenied(String),
    /// Issues and stores the certificate, then waits this long before responding. A
    /// client with a shorter timeout gets a timeout error although the certificate
    /// exists, and a retry with the same request ID returns that certificate.
    Hang(Duration),
    /// Issues and stores the certificate, then closes the connection without sending a
    /// response.
    DropAfterIssue,
    /// Issues and stores a certificate for a freshly generated P-256 key in place of the
    /// CSR's key, and returns it like any other certificate.
    WrongKey,
}

impl Fault {
    /// Returns the error response of a fault that rejects the call before anything is
    /// issued.
    fn rejection(&self) -> Option<ApiError> {
        match self {
            Fault::Unavailable => Some(ApiError::unavailable("The service is currently unavailable.")),
            Fault::ResourceExhausted => {
                Some(ApiError::resource_exhausted("Quota exceeded for certificate issuance requests."))
            }
            Fault::InvalidArgument(message) => Some(ApiError::invalid_argument(message.clone())),
            Fault::PermissionDenied(message) => Some(ApiError::permission_denied(message.clone())),
            Fault::Hang(_) | Fault::DropAfterIssue | Fault::WrongKey => None,
        }
    }
}

/// A certificate that the fake issued and stored.
#[derive(Clone, Debug)]
pub struct FakeCertificate {
    /// The full resource name, `projects/p/locations/l/caPools/pool/certificates/ID`.
    pub name: String,
    pub certificate_id: String,
    /// The `requestId` of the CreateCertificate call that issued it, empty when that call
    /// had none.
    pub request_id: String,
    /// The serial number in lowercase hex without leading zeros.
    pub serial_hex: String,
    pub pem: String,
    /// The revocation, once the certificate is revoked.
    pub revocation: Option<FakeRevocation>,
}

/// The revocation of a stored certificate.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeRevocation {
    /// The integer value of the CAS `RevocationReason`: 1 KEY_COMPROMISE to 8
    /// ATTRIBUTE_AUTHORITY_COMPROMISE, or 0 when the request had no reason.
    pub reason: i32,
    /// The `requestId` of the RevokeCertificate call, empty when that call had none.
    pub request_id: String,
    /// The revocation time, RFC 3339 in UTC.
    pub time: String,
}

/// One CreateCertificate call as the fake received it.
#[derive(Clone, Debug)]
pub struct CreateCall {
    /// The CA pool of the URL path, `projects/p/locations/l/caPools/pool`.
    pub pool: String,
    /// Every query parameter in the order sent, `$alt` included.
    pub query: Vec<(String, String)>,
    /// The JSON request body, or `Value::Null` when the body was not JSON.
    pub body: Value,
    /// The fault that this call consumed.
    pub fault: Option<Fault>,
    pub outcome: CreateOutcome,
    /// When the fake received the call.
    pub received: std::time::Instant,
}

impl CreateCall {
    /// Returns the value of the first query parameter called `name`.
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// What the fake did with a CreateCertificate call. A call that consumed
/// [`Fault::Hang`] or [`Fault::DropAfterIssue`] is `Issued` or `Replayed`, although the
/// client may never have seen the response.
#[derive(Clone, Debug, PartialEq)]
pub enum CreateOutcome {
    /// A new certificate was issued and stored under this ID.
    Issued { certificate_id: String },
    /// The request ID was seen before in this pool, and the certificate issued then was
    /// returned again.
    Replayed { certificate_id: String },
    /// `validateOnly=true`: the request was valid, and nothing was stored.
    Validated,
    /// The call was rejected with this error status (such as `ALREADY_EXISTS`) and
    /// message.
    Rejected { status: &'static str, message: String },
}

/// A fake CAS server on a free port of 127.0.0.1, stopped when dropped.
pub struct FakeCas {
    shared: Arc<Shared>,
    endpoint: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeCas {
    /// Binds a free port on 127.0.0.1 and serves on a thread of its own. It works from
    /// synchronous tests and from any Tokio runtime flavour.
    pub fn start() -> FakeCas {
        FakeCas::start_on(0).expect("the fake CAS binds a free port on 127.0.0.1")
    }

    /// Binds `port` on 127.0.0.1, or a free port when it is 0, and serves like
    /// [`FakeCas::start`].
    pub fn start_on(port: u16) -> std::io::Result<FakeCas> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr().expect("the fake CAS listener has an address");

        let shared = Arc::new(Shared::default());
        let server_shared = Arc::clone(&shared);
        let (shutdown, shutdown_received) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-cas".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the fake CAS runtime starts");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("Tokio accepts the fake CAS listener");
                    tokio::select! {
                        () = accept_connections(listener, server_shared) => {}
                        _ = shutdown_received => {}
                    }
                });
                // Dropping the runtime cancels the connection tasks, hanging ones included.
            })
            .expect("the fake CAS thread starts");

        Ok(FakeCas { shared, endpoint: format!("http://{address}"), shutdown: Some(shutdown), thread: Some(thread) })
    }

    /// Returns the base URL for the SDK's `with_endpoint`, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// Returns the PEM root certificate of `pool` (`projects/p/locations/l/caPools/x`),
    /// creating the pool and its root when they are new.
    pub fn root_pem(&self, pool: &str) -> String {
        let mut state = self.shared.lock();
        let pool =
            state.pool_mut(pool).unwrap_or_else(|error| panic!("failed to create the fake CA pool {pool}: {error}"));
        pool.root_pem.clone()
    }

    /// Queues a fault for the next CreateCertificate call that has not consumed one.
    /// Queued faults are consumed before the one set by [`FakeCas::fail_always`].
    pub fn push_fault(&self, fault: Fault) {
        self.shared.lock().queued_faults.push_back(fault);
    }

    /// Sets a fault for every CreateCertificate call that finds the queue empty, or
    /// removes it with `None`.
    pub fn fail_always(&self, fault: Option<Fault>) {
        self.shared.lock().persistent_fault = fault;
    }

    /// Makes every RevokeCertificate call fail with 503 UNAVAILABLE while `down` is true.
    pub fn revocations_unavailable(&self, down: bool) {
        self.shared.lock().revocations_down = down;
    }

    /// Removes the queued faults and the one set by [`FakeCas::fail_always`].
    pub fn clear_faults(&self) {
        let mut state = self.shared.lock();
        state.queued_faults.clear();
        state.persistent_fault = None;
    }

    /// Returns the certificates stored in `pool`, in the order they were issued.
    pub fn certificates(&self, pool: &str) -> Vec<FakeCertificate> {
        let state = self.shared.lock();
        let Some(pool) = state.pools.get(pool) else {
            return Vec::new();
        };
        pool.certificates.iter().map(|stored| stored.record.clone()).collect()
    }

    /// Returns every CreateCertificate call received so far, in order.
    pub fn create_calls(&self) -> Vec<CreateCall> {
        self.shared.lock().create_calls.clone()
    }
}

impl Drop for FakeCas {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The state shared by the test and the server thread.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    /// Locks the state. A panic while the lock was held leaves consistent data behind,
    /// because every change is a single push or assignment, so a poisoned lock is used
    /// as it is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct State {
    pools: BTreeMap<String, Pool>,
    queued_faults: VecDeque<Fault>,
    persistent_fault: Option<Fault>,
    revocations_down: bool,
    create_calls: Vec<CreateCall>,
}

impl State {
    fn pool_mut(&mut self, name: &str) -> Result<&mut Pool, String> {
        match self.pools.entry(name.to_owned()) {
            Entry::Occupied(entry) => Ok(entry.into_mut()),
            Entry::Vacant(entry) => Ok(entry.insert(Pool::create(name)?)),
        }
    }

    fn next_fault(&mut self) -> Option<Fault> {
        self.queued_faults.pop_front().or_else(|| self.persistent_fault.clone())
    }
}

/// A CA pool with one self-signed root that signs every certificate of the pool.
struct Pool {
    key: SigningKey,
    root: Certificate,
    root_pem: String,
    certificates: Vec<StoredCertificate>,
}

impl Pool {
    fn create(name: &str) -> Result<Pool, String> {
        let key = SigningKey::random(&mut OsRng);
        let spki = SubjectPublicKeyInfoOwned::from_key(*key.verifying_key()).map_err(|e| e.to_string())?;

        // Pool IDs match [a-zA-Z0-9_-]{1,63} in CAS; anything else is left out of the
        // common name so that it needs no RFC 4514 escaping.
        let pool_id: String = name
            .rsplit('/')
            .next()
            .unwrap_or(name)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        // RFC 4514 strings list the last RDN first, so this encodes CN first, then O.
        let subject = Name::from_str(&format!("O=Fake CAS,CN=Fake CAS root {pool_id}"))
            .map_err(|e| format!("root subject: {e}"))?;

        let not_before = whole_seconds(OffsetDateTime::now_utc()) - ROOT_BACKDATE;
        let validity = validity(not_before, not_before + ROOT_LIFETIME)?;
        let root = CertificateBuilder::new(Profile::Root, random_serial()?, validity, subject, spki, &key)
            .and_then(|builder| builder.build::<DerSignature>())
            .map_err(|e| format!("root certificate: {e}"))?;
        let root_pem = root.to_pem(LineEnding::LF).map_err(|e| e.to_string())?;

        Ok(Pool { key, root, root_pem, certificates: Vec::new() })
    }

    /// Signs a client certificate: KU digitalSignature, EKU clientAuth, CA false, valid
    /// from one minute ago for `lifetime`.
    fn sign(&self, subject: Name, spki: SubjectPublicKeyInfoOwned, lifetime: Duration) -> Result<Certificate, String> {
        let not_before = whole_seconds(OffsetDateTime::now_utc()) - BACKDATE;
        let validity = validity(not_before, whole_seconds(not_before + lifetime))?;
        let issuer_spki = &self.root.tbs_certificate.subject_public_key_info;
        let subject_key_id = SubjectKeyIdentifier::try_from(spki.owned_to_ref()).map_err(|e| e.to_string())?;
        let authority_key_id =
            AuthorityKeyIdentifier::try_from(issuer_spki.owned_to_ref()).map_err(|e| e.to_string())?;

        let profile = Profile::Manual { issuer: Some(self.root.tbs_certificate.subject.clone()) };
        let mut builder = CertificateBuilder::new(profile, random_serial()?, validity, subject, spki, &self.key)
            .map_err(|e| e.to_string())?;
        builder
            .add_extension(&BasicConstraints { ca: false, path_len_constraint: None })
            .and_then(|()| builder.add_extension(&KeyUsage(KeyUsages::DigitalSignature.into())))
            .and_then(|()| builder.add_extension(&ExtendedKeyUsage(vec![ID_KP_CLIENT_AUTH])))
            .and_then(|()| builder.add_extension(&subject_key_id))
            .and_then(|()| builder.add_extension(&authority_key_id))
            .map_err(|e| format!("extensions: {e}"))?;
        builder.build::<DerSignature>().map_err(|e| e.to_string())
    }
}

/// A certificate with the fields that CAS returns for it.
struct StoredCertificate {
    record: FakeCertificate,
    issuer_certificate_authority: String,
    lifetime: Duration,
    create_time: String,
    description: Value,
}

impl StoredCertificate {
    /// Builds the CAS `Certificate` message in JSON. Without `include_pem`, as for
    /// `validateOnly`, it has neither `pemCertificate` nor `pemCertificateChain`.
    fn to_json(&self, root_pem: &str, include_pem: bool) -> Value {
        let mut certificate = json!({
            "name": self.record.name,
            "issuerCertificateAuthority": self.issuer_certificate_authority,
            "lifetime": format_duration(self.lifetime),
            "createTime": self.create_time,
            "certificateDescription": self.description,
        });
        if include_pem {
            certificate["pemCertificate"] = json!(self.record.pem);
            certificate["pemCertificateChain"] = json!([root_pem]);
        }
        if let Some(revocation) = &self.record.revocation {
            certificate["revocationDetails"] =
                json!({ "revocationState": revocation.reason, "revocationTime": revocation.time });
            certificate["updateTime"] = json!(revocation.time);
        }
        certificate
    }
}

/// The query parameters of CreateCertificate.
struct CreateQuery {
    certificate_id: String,
    request_id: String,
    validate_only: bool,
    issuing_certificate_authority_id: String,
}

impl CreateQuery {
    fn parse(query: &[(String, String)]) -> Result<CreateQuery, ApiError> {
        let value =
            |name: &str| query.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()).unwrap_or_default();
        let certificate_id = value("certificateId");
        let request_id = value("requestId");
        let validate_only = match value("validateOnly").as_str() {
            "" | "false" => false,
            "true" => true,
            other => {
                return Err(ApiError::invalid_argument(format!("validateOnly must be true or false, not {other:?}")))
            }
        };

        if !certificate_id.is_empty() && !is_resource_id(&certificate_id) {
            return Err(ApiError::invalid_argument(format!(
                "certificateId {certificate_id:?} does not match [a-zA-Z0-9_-]{{1,63}}"
            )));
        }
        let issuing_certificate_authority_id = value("issuingCertificateAuthorityId");
        if !issuing_certificate_authority_id.is_empty() && !is_resource_id(&issuing_certificate_authority_id) {
            return Err(ApiError::invalid_argument(format!(
                "issuingCertificateAuthorityId {issuing_certificate_authority_id:?} \
                 does not match [a-zA-Z0-9_-]{{1,63}}"
            )));
        }
        check_request_id(&request_id)?;

        Ok(CreateQuery { certificate_id, request_id, validate_only, issuing_certificate_authority_id })
    }
}

/// The fields of the request's `Certificate` that the fake uses.
struct CertificateRequest {
    csr: CertReq,
    lifetime: Duration,
}

impl CertificateRequest {
    fn parse(body: &Value) -> Result<CertificateRequest, ApiError> {
        let Some(fields) = body.as_object() else {
            return Err(ApiError::invalid_argument("the request body must be a Certificate as a JSON object"));
        };
        if fields.contains_key("config") {
            return Err(ApiError::invalid_argument("the fake CAS issues only from pemCsr; config is not supported"));
        }
        let Some(pem) = fields.get("pemCsr").and_then(Value::as_str) else {
            return Err(ApiError::invalid_argument("pemCsr is missing"));
        };
        let Ok(csr) = CertReq::from_pem(pem.as_bytes()) else {
            return Err(ApiError::invalid_argument("pemCsr is not a valid PKCS#10 CSR"));
        };
        verify_csr_signature(&csr)?;

        let lifetime = match fields.get("lifetime") {
            None => DEFAULT_LIFETIME,
            Some(value) => parse_duration(value).ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "lifetime must be a positive duration such as \"86400s\", not {value}"
                ))
            })?,
        };
        Ok(CertificateRequest { csr, lifetime })
    }
}

/// Checks the CSR's proof of possession when it is signed with ecdsa-with-SHA256 by a
/// P-256 key.
// NOTE: CSRs with other algorithms or curves are accepted without a signature check.
fn verify_csr_signature(csr: &CertReq) -> Result<(), ApiError> {
    if csr.algorithm.oid != ECDSA_WITH_SHA256 {
        return Ok(());
    }
    let invalid = || ApiError::invalid_argument("pemCsr has an invalid signature");
    let spki_der = csr.info.public_key.to_der().map_err(|_| invalid())?;
    let Ok(key) = VerifyingKey::from_public_key_der(&spki_der) else {
        return Ok(());
    };
    let message = csr.info.to_der().map_err(|_| invalid())?;
    let signature_bytes = csr.signature.as_bytes().ok_or_else(invalid)?;
    let signature = DerSignature::from_bytes(signature_bytes).map_err(|_| invalid())?;
    key.verify(&message, &signature).map_err(|_| invalid())
}

/// An error response in the JSON form of Google APIs:
/// `{"error": {"code": 400, "message": "...", "status": "INVALID_ARGUMENT"}}`.
#[derive(Debug)]
struct ApiError {
    code: StatusCode,
    status: &'static str,
    message: String,
}

impl ApiError {
    fn new(code: StatusCode, status: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { code, status, message: message.into() }
    }

    fn invalid_argument(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }

    fn failed_precondition(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "FAILED_PRECONDITION", message)
    }

    fn permission_denied(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "PERMISSION_DENIED", message)
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    fn already_exists(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "ALREADY_EXISTS", message)
    }

    fn resource_exhausted(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED", message)
    }

    fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
    }

    fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", message)
    }

    fn into_reply(self) -> Reply {
        eprintln!("fake CAS: responding {} {}: {}", self.code.as_u16(), self.status, self.message);
        let body = json!({
            "error": { "code": self.code.as_u16(), "message": self.message, "status": self.status }
        });
        Reply::json(self.code, &body)
    }
}

/// What the server does with a request: send a response, or close the connection
/// without one.
enum Reply {
    Respond(Response<Full<Bytes>>),
    DropConnection,
}

impl Reply {
    fn json(code: StatusCode, body: &Value) -> Reply {
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
        *response.status_mut() = code;
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=UTF-8"));
        Reply::Respond(response)
    }
}

/// The error a connection's service returns to make hyper close the connection without
/// writing a response.
#[derive(Debug)]
struct ConnectionDropped;

impl std::fmt::Display for ConnectionDropped {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("the fake CAS dropped the connection on purpose")
    }
}

impl std::error::Error for ConnectionDropped {}

async fn accept_connections(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                eprintln!("fake CAS: failed to accept a connection: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(serve_connection(stream, Arc::clone(&shared)));
    }
}

/// Serves HTTP/1.1 on one connection, which is what the SDK uses for an `http://`
/// endpoint.
async fn serve_connection(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move {
            match handle(&shared, request).await {
                Reply::Respond(response) => Ok(response),
                Reply::DropConnection => Err(ConnectionDropped),
            }
        }
    });
    let served = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
    let Err(error) = served else {
        return;
    };
    if std::error::Error::source(&error).is_some_and(|source| source.is::<ConnectionDropped>()) {
        return;
    }
    if error.is_incomplete_message() {
        // Hyper cancels the handler in this case, which only matters for Fault::Hang.
        eprintln!("fake CAS: the client closed the connection before the response was sent");
        return;
    }
    eprintln!("fake CAS: connection failed: {error}");
}

/// The resources of the CAS v1 REST paths that the fake serves.
enum Resource {
    /// `/v1/{pool}/certificates`
    Certificates { pool: String },
    /// `/v1/{pool}/certificates/{id}`
    Certificate { pool: String, id: String },
    /// `/v1/{pool}/certificates/{id}:revoke`
    Revoke { pool: String, id: String },
}

/// Parses a path after `/v1/`, such as
/// `projects/p/locations/l/caPools/x/certificates/id:revoke`.
fn parse_resource(path: &str) -> Option<Resource> {
    let segments: Vec<&str> = path.split('/').collect();
    let ["projects", project, "locations", location, "caPools", pool_id, "certificates", rest @ ..] =
        segments.as_slice()
    else {
        return None;
    };
    if project.is_empty() || location.is_empty() || pool_id.is_empty() {
        return None;
    }
    let pool = format!("projects/{project}/locations/{location}/caPools/{pool_id}");
    match rest {
        [] => Some(Resource::Certificates { pool }),
        [last] => {
            let (id, revoke) = match last.strip_suffix(":revoke") {
                Some(id) => (id, true),
                None => (*last, false),
            };
            if id.is_empty() {
                return None;
            }
            let id = id.to_owned();
            Some(if revoke { Resource::Revoke { pool, id } } else { Resource::Certificate { pool, id } })
        }
        _ => None,
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Reply {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return ApiError::invalid_argument(format!("failed to read the request body: {error}")).into_reply()
        }
    };

    let resource = path.strip_prefix("/v1/").and_then(parse_resource);
    match (&method, resource) {
        (&Method::POST, Some(Resource::Certificates { pool })) => create_certificate(shared, pool, query, &body).await,
        (&Method::GET, Some(Resource::Certificate { pool, id })) => get_certificate(shared, &pool, &id),
        (&Method::POST, Some(Resource::Revoke { pool, id })) => revoke_certificate(shared, &pool, &id, &body),
        _ => ApiError::not_found(format!("the fake CAS does not serve {method} {path}")).into_reply(),
    }
}

/// The response body of a successful CreateCertificate call and what the fake did.
struct Created {
    certificate: Value,
    outcome: CreateOutcome,
}

async fn create_certificate(shared: &Shared, pool: String, query: Vec<(String, String)>, body: &[u8]) -> Reply {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);

    // Everything from the fault to the stored certificate happens under one lock, so
    // that concurrent calls with one request ID issue one certificate.
    let (result, fault) = {
        let mut state = shared.lock();
        let parsed = CreateQuery::parse(&query);
        let fault = match &parsed {
            Ok(create) if !create.validate_only => state.next_fault(),
            _ => None,
        };
        let result = parsed.and_then(|create| create_locked(&mut state, &pool, &create, &body, fault.as_ref()));
        let outcome = match &result {
            Ok(created) => created.outcome.clone(),
            Err(error) => CreateOutcome::Rejected { status: error.status, message: error.message.clone() },
        };
        state.create_calls.push(CreateCall {
            pool,
            query,
            body,
            fault: fault.clone(),
            outcome,
            received: std::time::Instant::now(),
        });
        (result, fault)
    };

    let created = match result {
        Ok(created) => created,
        Err(error) => return error.into_reply(),
    };
    match fault {
        Some(Fault::DropAfterIssue) => Reply::DropConnection,
        Some(Fault::Hang(delay)) => {
            tokio::time::sleep(delay).await;
            Reply::json(StatusCode::OK, &created.certificate)
        }
        _ => Reply::json(StatusCode::OK, &created.certificate),
    }
}

fn create_locked(
    state: &mut State,
    pool_name: &str,
    create: &CreateQuery,
    body: &Value,
    fault: Option<&Fault>,
) -> Result<Created, ApiError> {
    if let Some(error) = fault.and_then(Fault::rejection) {
        return Err(error);
    }
    let request = CertificateRequest::parse(body)?;
    let pool =
        state.pool_mut(pool_name).map_err(|e| ApiError::internal(format!("failed to create the CA pool: {e}")))?;

    if !create.validate_only && !create.request_id.is_empty() {
        let earlier = pool.certificates.iter().find(|stored| stored.record.request_id == create.request_id);
        if let Some(earlier) = earlier {
            return Ok(Created {
                certificate: earlier.to_json(&pool.root_pem, true),
                outcome: CreateOutcome::Replayed { certificate_id: earlier.record.certificate_id.clone() },
            });
        }
    }

    let certificate_id = match create.certificate_id.as_str() {
        "" => uuid::Uuid::new_v4().simple().to_string(),
        id => id.to_owned(),
    };
    let name = format!("{pool_name}/certificates/{certificate_id}");
    if !create.validate_only && pool.certificates.iter().any(|stored| stored.record.certificate_id == certificate_id) {
        return Err(ApiError::already_exists(format!("Resource '{name}' already exists")));
    }

    let spki = match fault {
        Some(Fault::WrongKey) => {
            SubjectPublicKeyInfoOwned::from_key(*SigningKey::random(&mut OsRng).verifying_key())
                .map_err(|e| ApiError::internal(format!("failed to encode the substitute key: {e}")))?
        }
        _ => request.csr.info.public_key.clone(),
    };
    let certificate = pool
        .sign(request.csr.info.subject.clone(), spki, request.lifetime)
        .map_err(|e| ApiError::internal(format!("failed to sign the certificate: {e}")))?;
    let issuing_ca = match create.issuing_certificate_authority_id.as_str() {
        "" => DEFAULT_CA_ID,
        id => id,
    };
    let stored = describe(&certificate, name, certificate_id.clone(), create, issuing_ca, pool_name, request.lifetime)
        .map_err(|e| ApiError::internal(format!("failed to describe the certificate: {e}")))?;

    if create.validate_only {
        return Ok(Created { certificate: stored.to_json(&pool.root_pem, false), outcome: CreateOutcome::Validated });
    }
    let certificate = stored.to_json(&pool.root_pem, true);
    pool.certificates.push(stored);
    Ok(Created { certificate, outcome: CreateOutcome::Issued { certificate_id } })
}

/// Builds the stored form of a new certificate with the `certificateDescription` that
/// CAS computes.
fn describe(
    certificate: &Certificate,
    name: String,
    certificate_id: String,
    create: &CreateQuery,
    issuing_ca: &str,
    pool_name: &str,
    lifetime: Duration,
) -> Result<StoredCertificate, String> {
    let der = certificate.to_der().map_err(|e| e.to_string())?;
    let pem = certificate.to_pem(LineEnding::LF).map_err(|e| e.to_string())?;
    let tbs = &certificate.tbs_certificate;
    let serial_hex = serial_hex(tbs.serial_number.as_bytes());

    let spki_der = tbs.subject_public_key_info.to_der().map_err(|e| e.to_string())?;
    let public_key_pem = der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &spki_der).map_err(|e| e.to_string())?;
    let subject_key_id =
        SubjectKeyIdentifier::try_from(tbs.subject_public_key_info.owned_to_ref()).map_err(|e| e.to_string())?;
    let authority_key_id = tbs
        .extensions
        .iter()
        .flatten()
        .find(|extension| extension.extn_id == AuthorityKeyIdentifier::OID)
        .and_then(|extension| der::Decode::from_der(extension.extn_value.as_bytes()).ok())
        .and_then(|aki: AuthorityKeyIdentifier| aki.key_identifier)
        .map(|key_id| hex::encode(key_id.as_bytes()))
        .unwrap_or_default();

    let not_before = rfc3339(OffsetDateTime::from(tbs.validity.not_before.to_system_time()));
    let not_after = rfc3339(OffsetDateTime::from(tbs.validity.not_after.to_system_time()));
    let description = json!({
        "subjectDescription": {
            "subject": subject_json(&tbs.subject),
            "hexSerialNumber": serial_hex,
            "lifetime": format_duration(lifetime),
            "notBeforeTime": not_before,
            "notAfterTime": not_after,
        },
        "x509Description": {
            "keyUsage": {
                "baseKeyUsage": { "digitalSignature": true },
                "extendedKeyUsage": { "clientAuth": true },
            },
            "caOptions": { "isCa": false },
        },
        // The CAS `PublicKey.key` is bytes, so JSON carries the PEM text in base64.
        "publicKey": { "key": Base64::encode_string(public_key_pem.as_bytes()), "format": 1 },
        "subjectKeyId": { "keyId": hex::encode(subject_key_id.0.as_bytes()) },
        "authorityKeyId": { "keyId": authority_key_id },
        "certFingerprint": { "sha256Hash": hex::encode(Sha256::digest(&der)) },
    });

    Ok(StoredCertificate {
        record: FakeCertificate {
            name,
            certificate_id,
            request_id: create.request_id.clone(),
            serial_hex,
            pem,
            revocation: None,
        },
        issuer_certificate_authority: format!("{pool_name}/certificateAuthorities/{issuing_ca}"),
        lifetime,
        create_time: rfc3339(OffsetDateTime::now_utc()),
        description,
    })
}

fn get_certificate(shared: &Shared, pool_name: &str, id: &str) -> Reply {
    let name = format!("{pool_name}/certificates/{id}");
    let state = shared.lock();
    let Some(pool) = state.pools.get(pool_name) else {
        return ApiError::not_found(format!("Resource '{name}' was not found")).into_reply();
    };
    let Some(stored) = pool.certificates.iter().find(|stored| stored.record.certificate_id == id) else {
        return ApiError::not_found(format!("Resource '{name}' was not found")).into_reply();
    };
    Reply::json(StatusCode::OK, &stored.to_json(&pool.root_pem, true))
}

/// Revokes a certificate. A repeat with the request ID of the revocation returns the
/// same certificate again. Any other call on a revoked certificate fails with
/// FAILED_PRECONDITION.
fn revoke_certificate(shared: &Shared, pool_name: &str, id: &str, body: &[u8]) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return ApiError::invalid_argument("the request body must be a RevokeCertificateRequest as a JSON object")
            .into_reply();
    };
    let reason = match body.get("reason") {
        None => 0,
        Some(value) => match value.as_i64().filter(|reason| (0..=MAX_REVOCATION_REASON).contains(reason)) {
            Some(reason) => reason as i32,
            None => {
                return ApiError::invalid_argument(format!(
                    "reason must be a RevocationReason number from 0 to {MAX_REVOCATION_REASON}, not {value}"
                ))
                .into_reply()
            }
        },
    };
    let request_id = body.get("requestId").and_then(Value::as_str).unwrap_or("").to_owned();
    if let Err(error) = check_request_id(&request_id) {
        return error.into_reply();
    }

    let name = format!("{pool_name}/certificates/{id}");
    let mut state = shared.lock();
    if state.revocations_down {
        return ApiError::unavailable("The service is currently unavailable.").into_reply();
    }
    let Some(pool) = state.pools.get_mut(pool_name) else {
        return ApiError::not_found(format!("Resource '{name}' was not found")).into_reply();
    };
    let Some(stored) = pool.certificates.iter_mut().find(|stored| stored.record.certificate_id == id) else {
        return ApiError::not_found(format!("Resource '{name}' was not found")).into_reply();
    };

    if let Some(revocation) = &stored.record.revocation {
        if !request_id.is_empty() && revocation.request_id == request_id {
            return Reply::json(StatusCode::OK, &stored.to_json(&pool.root_pem, true));
        }
        return ApiError::failed_precondition(format!("Certificate '{name}' is already revoked")).into_reply();
    }
    stored.record.revocation = Some(FakeRevocation { reason, request_id, time: rfc3339(OffsetDateTime::now_utc()) });
    Reply::json(StatusCode::OK, &stored.to_json(&pool.root_pem, true))
}

/// Checks a `requestId`, which CAS requires to be a UUID other than the nil UUID when
/// it is set.
fn check_request_id(request_id: &str) -> Result<(), ApiError> {
    if request_id.is_empty() {
        return Ok(());
    }
    match uuid::Uuid::parse_str(request_id) {
        Ok(uuid) if !uuid.is_nil() => Ok(()),
        _ => Err(ApiError::invalid_argument(format!(
            "requestId must be a valid UUID other than the nil UUID, not {request_id:?}"
        ))),
    }
}

/// Returns whether `id` matches `[a-zA-Z0-9_-]{1,63}`, the CAS rule for resource IDs
/// such as certificate IDs.
fn is_resource_id(id: &str) -> bool {
    (1..=63).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Builds the CAS `Subject` of an X.509 name from the attributes of [`SUBJECT_FIELDS`]
/// that are strings.
fn subject_json(name: &Name) -> Value {
    let mut subject = serde_json::Map::new();
    for attribute in name.0.iter().flat_map(|rdn| rdn.0.iter()) {
        let Some((_, field)) = SUBJECT_FIELDS.iter().find(|(oid, _)| *oid == attribute.oid) else {
            continue;
        };
        let Some(text) = attribute_text(&attribute.value) else {
            continue;
        };
        subject.insert((*field).to_owned(), Value::String(text));
    }
    Value::Object(subject)
}

fn attribute_text(value: &Any) -> Option<String> {
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
            std::str::from_utf8(value.value()).ok().map(str::to_owned)
        }
        _ => None,
    }
}

/// Parses a JSON `google.protobuf.Duration`, such as `"86400s"` or `"1.5s"`, that is
/// positive.
fn parse_duration(value: &Value) -> Option<Duration> {
    let seconds: f64 = value.as_str()?.strip_suffix('s')?.parse().ok()?;
    if !seconds.is_finite() || seconds <= 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(seconds).ok()
}

/// Formats a duration as a JSON `google.protobuf.Duration`, such as `"86400s"`.
fn format_duration(duration: Duration) -> String {
    match duration.subsec_nanos() {
        0 => format!("{}s", duration.as_secs()),
        nanos => format!("{}.{nanos:09}s", duration.as_secs()),
    }
}

/// Formats a time as RFC 3339 in UTC, such as `2026-12-04T10:00:00Z`.
fn rfc3339(time: OffsetDateTime) -> String {
    let utc = time.to_offset(time::UtcOffset::UTC);
    // Formatting fails only for years outside 0000-9999, which no certificate here has.
    utc.format(&Rfc3339).unwrap_or_else(|_| utc.to_string())
}

fn whole_seconds(time: OffsetDateTime) -> OffsetDateTime {
    time.replace_nanosecond(0).unwrap_or(time)
}

fn validity(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Result<Validity, String> {
    Ok(Validity {
        not_before: Time::try_from(SystemTime::from(not_before)).map_err(|e| e.to_string())?,
        not_after: Time::try_from(SystemTime::from(not_after)).map_err(|e| e.to_string())?,
    })
}

/// Formats a serial number in lowercase hex without the sign byte or other leading zeros.
fn serial_hex(bytes: &[u8]) -> String {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len().saturating_sub(1));
    hex::encode(&bytes[first..])
}

/// Generates a random positive serial number of 128 bits.
fn random_serial() -> Result<SerialNumber, String> {
    let mut bytes = [0u8; 16];
    loop {
        OsRng.fill_bytes(&mut bytes);
        if bytes.iter().any(|&b| b != 0) {
            break;
        }
    }
    SerialNumber::new(&bytes).map_err(|e| format!("serial number: {e}"))
}
