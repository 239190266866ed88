//! The TOML configuration file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ozo_domain::{Environment, EnvironmentName, ExpectedSubject};
use secrecy::SecretString;
use serde::Deserialize;

/// Maximum certificate lifetime in days: 825, the limit the CA/Browser Forum set for
/// TLS certificates in 2018.
const MAX_LIFETIME_DAYS: u32 = 825;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory of the local CAs' key and certificate files.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Address and port to serve on. `OZO_LISTEN` overrides it.
    pub listen: Option<SocketAddr>,
    /// PostgreSQL URL. `DATABASE_URL` overrides it.
    pub database_url: Option<SecretString>,
    /// Whether the service is reached over HTTPS, so cookies get `Secure`.
    #[serde(default)]
    pub secure_cookies: bool,
    /// Reverse proxies and load balancers, as networks (`10.0.0.0/8`) or addresses, whose
    /// `X-Forwarded-For` names the client that the rate limits count.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub rate_limits: RateLimitConfig,
    /// The format of the log lines `serve` writes to standard error. `OZO_LOG_FORMAT`
    /// overrides it.
    #[serde(default)]
    pub log_format: LogFormat,
    /// A second address that serves only `/metrics`, `/healthz` and `/readyz`. When unset,
    /// `/metrics` is served on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds that `serve` waits after SIGTERM for requests in flight and the signing job
    /// it holds, before it exits anyway.
    #[serde(default = "default_shutdown_grace_seconds")]
    pub shutdown_grace_seconds: u64,
    /// Seconds a client has to send a connection's first byte, a request's headers, and
    /// then the request's whole body. Slower connections are closed, and a slower body
    /// gets 408.
    #[serde(default = "default_client_read_timeout_seconds")]
    pub client_read_timeout_seconds: u64,
    /// HTTPS on `listen`, for a deployment without a proxy that terminates TLS.
    pub tls: Option<TlsConfig>,
    pub environments: BTreeMap<String, EnvironmentConfig>,
}

/// The format of log lines.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// One JSON object per line, with the fields of its request at the top level.
    #[default]
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

impl LogFormat {
    pub fn parse(text: &str) -> Option<LogFormat> {
        match text {
            "json" => Some(LogFormat::Json),
            "text" => Some(LogFormat::Text),
            _ => None,
        }
    }
}

/// The server certificate and key for HTTPS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate first and its intermediates after it.
    pub certificate_chain: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8 or SEC1).
    pub private_key: PathBuf,
}

fn default_shutdown_grace_seconds() -> u64 {
    25
}

fn default_client_read_timeout_seconds() -> u64 {
    30
}

/// Limits per client address and per invitation code.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub uploads_per_address_per_10_minutes: u32,
    pub uploads_per_invitation_per_10_minutes: u32,
    pub status_pages_per_address_per_minute: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        let defaults = ozo_web::RateLimits::default();
        RateLimitConfig {
            uploads_per_address_per_10_minutes: defaults.uploads_per_address,
            uploads_per_invitation_per_10_minutes: defaults.uploads_per_invitation,
            status_pages_per_address_per_minute: defaults.status_per_address,
        }
    }
}

impl RateLimitConfig {
    pub fn to_limits(&self) -> ozo_web::RateLimits {
        ozo_web::RateLimits {
            uploads_per_address: self.uploads_per_address_per_10_minutes,
            uploads_per_invitation: self.uploads_per_invitation_per_10_minutes,
            upload_window: std::time::Duration::from_secs(600),
            status_per_address: self.status_pages_per_address_per_minute,
            status_window: std::time::Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    pub common_name: String,
    pub organization: String,
    #[serde(default = "default_lifetime_days")]
    pub certificate_lifetime_days: u32,
    /// Lets clients upload without an invitation; such requests are marked unverified.
    /// Not allowed for an environment named production.
    #[serde(default)]
    pub allow_uploads_without_invitation: bool,
    /// The URL that the status page shows clients for testing their certificate.
    pub test_url: Option<String>,
    /// How many different operators must approve a request: 2 for production, 1 for
    /// other environments, unless set.
    pub approvals_required: Option<u32>,
    pub ca: CaConfig,
}

impl EnvironmentConfig {
    pub fn approvals_required(&self, name: &str) -> u32 {
        self.approvals_required.unwrap_or(if name == "production" { 2 } else { 1 })
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "backend", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CaConfig {
    /// A root CA kept in `directory`, by default `<data_dir>/ca/<environment>`.
    Local { directory: Option<PathBuf> },
    /// A Google Cloud Certificate Authority Service pool.
    GoogleCas(GoogleCasConfig),
}

/// One environment's CAS pool. deploy/google-cas.md shows how to create it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleCasConfig {
    pub project: String,
    pub location: String,
    pub ca_pool: String,
    /// The id of the CA in the pool that must sign; any enabled CA of the pool when unset.
    pub issuing_ca: Option<String>,
    /// The full resource name of a certificate template.
    pub certificate_template: Option<String>,
    /// A PEM file with the pool's root certificate. Every certificate must chain to it.
    pub root_certificate: PathBuf,
    /// Required: `"application-default"`, `"service-account-key"` or `"anonymous"`.
    pub credentials: Option<CasCredentialsChoice>,
    /// The service-account key file, with `credentials = "service-account-key"`.
    pub service_account_key: Option<PathBuf>,
    /// The CAS address; Google's when unset. Tests point it at a fake on 127.0.0.1.
    pub endpoint: Option<String>,
    #[serde(default = "default_cas_requests_per_second")]
    pub requests_per_second: u32,
    #[serde(default = "default_cas_timeout_seconds")]
    pub timeout_seconds: u64,
}

/// The credentials ozo-signer presents to CAS. There is no default, so that a
/// configuration never reaches for the metadata server by accident.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CasCredentialsChoice {
    /// Workload identity or another form of application default credentials.
    ApplicationDefault,
    /// A key file named by `service_account_key`.
    ServiceAccountKey,
    /// No credentials: only for tests against a local fake.
    Anonymous,
}

/// CAS allows about 7 CreateCertificate calls per second per Enterprise CA; 5 leaves room
/// for a second instance's retries.
fn default_cas_requests_per_second() -> u32 {
    5
}

fn default_cas_timeout_seconds() -> u64 {
    30
}

/// Reads a pinned root: exactly one PEM certificate, of a CA.
fn read_root(path: &Path) -> Result<String, String> {
    use der::Decode;

    let bytes = std::fs::read(path).map_err(|error| format!("cannot be read: {error}"))?;
    let Ok(text) = String::from_utf8(bytes) else {
        return Err(
            "is not PEM text (a DER file? convert it with openssl x509 -inform der -in FILE -out root.pem)".to_owned()
        );
    };
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err("contains no -----BEGIN CERTIFICATE----- block".to_owned());
    }
    let certificates = x509_cert::Certificate::load_pem_chain(text.as_bytes())
        .map_err(|error| format!("is not a valid PEM certificate ({error})"))?;
    let [root] = certificates.as_slice() else {
        return Err(format!("contains {} certificates; expected only the root", certificates.len()));
    };
    let is_ca = root.tbs_certificate.extensions.as_deref().unwrap_or_default().iter().any(|extension| {
        extension.extn_id == der::asn1::ObjectIdentifier::new_unwrap("2.5.29.19")
            && x509_cert::ext::pkix::BasicConstraints::from_der(extension.extn_value.as_bytes())
                .is_ok_and(|basic| basic.ca)
    });
    if !is_ca {
        return Err(format!("holds {}, which is not a CA certificate", root.tbs_certificate.subject));
    }
    Ok(text)
}

impl GoogleCasConfig {
    /// Checks the section and reads the pinned root; errors name the key.
    pub fn settings(&self, environment: &str) -> anyhow::Result<ozo_ca::CasSettings> {
        let key = |name: &str| format!("environments.{environment}.ca.{name}");
        let lowercase_id = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        let resource_id = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        let ids = [
            (
                "project",
                self.project.as_str(),
                "a project id of lowercase letters, digits and hyphens",
                &lowercase_id as &dyn Fn(char) -> bool,
            ),
            ("location", self.location.as_str(), "a location such as europe-west4", &lowercase_id),
            ("ca_pool", self.ca_pool.as_str(), "a pool id of letters, digits, hyphens and underscores", &resource_id),
            (
                "issuing_ca",
                self.issuing_ca.as_deref().unwrap_or("ca"),
                "a CA id of letters, digits, hyphens and underscores",
                &resource_id,
            ),
        ];
        for (name, value, expected, allowed) in ids {
            if value.is_empty() || value.len() > 63 || !value.chars().all(allowed) {
                bail!("{}: expected {expected}, found {value:?}", key(name));
            }
        }
        let requests_per_second = std::num::NonZeroU32::new(self.requests_per_second)
            .with_context(|| format!("{}: expected at least 1", key("requests_per_second")))?;
        if !(1..=600).contains(&self.timeout_seconds) {
            bail!("{}: expected 1 to 600 seconds, found {}", key("timeout_seconds"), self.timeout_seconds);
        }
        let Some(choice) = self.credentials else {
            bail!(
                "{}: missing; expected \"application-default\" (workload identity), \"service-account-key\" with service_account_key, \
                 or \"anonymous\" for a local fake. There is no default, so that no configuration asks the metadata server by accident",
                key("credentials")
            );
        };
        let credentials = match (choice, &self.service_account_key) {
            (CasCredentialsChoice::ServiceAccountKey, Some(path)) => {
                ozo_ca::CasCredentials::ServiceAccountKey(path.clone())
            }
            (CasCredentialsChoice::ServiceAccountKey, None) => {
                bail!(
                    "{}: expected the path of the key file with credentials = \"service-account-key\"",
                    key("service_account_key")
                )
            }
            (_, Some(_)) => {
                bail!(
                    "{}: only used with credentials = \"service-account-key\"; remove it or change credentials",
                    key("service_account_key")
                )
            }
            (CasCredentialsChoice::ApplicationDefault, None) => ozo_ca::CasCredentials::ApplicationDefault,
            (CasCredentialsChoice::Anonymous, None) => ozo_ca::CasCredentials::Anonymous,
        };
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                bail!("{}: expected an http:// or https:// URL, found {endpoint:?}", key("endpoint"));
            }
        }
        let root_pem = read_root(&self.root_certificate).map_err(|problem| {
            anyhow::anyhow!(
                "{}: {} {problem}. Expected the pool's root CA certificate as one PEM block, as written by \
                 gcloud privateca roots describe ROOT --pool POOL --location LOCATION --format='value(pemCaCertificates)'",
                key("root_certificate"),
                self.root_certificate.display()
            )
        })?;
        Ok(ozo_ca::CasSettings {
            project: self.project.clone(),
            location: self.location.clone(),
            ca_pool: self.ca_pool.clone(),
            issuing_ca: self.issuing_ca.clone().filter(|id| !id.is_empty()),
            certificate_template: self.certificate_template.clone().filter(|t| !t.is_empty()),
            root_pem,
            credentials,
            endpoint: self.endpoint.clone(),
            requests_per_second,
            timeout: std::time::Duration::from_secs(self.timeout_seconds),
        })
    }
}

/// The keys of [`Config`]. TOML reads them as top-level keys only above the first
/// `[section]` header.
const TOP_LEVEL_KEYS: [&str; 12] = [
    "data_dir",
    "listen",
    "database_url",
    "secure_cookies",
    "trusted_proxies",
    "rate_limits",
    "log_format",
    "metrics_listen",
    "shutdown_grace_seconds",
    "client_read_timeout_seconds",
    "tls",
    "environments",
];

/// Finds a top-level key such as `log_format = "json"` written below a `[section]`
/// header, where TOML reads it as a key of that section. Returns an error message that
/// names the key, the section and where to move the key, or `None` when the text is not
/// valid TOML or has no such key. Only values that are not tables count, because
/// `[environments.NAME]` may use any name, such as `listen`.
fn misplaced_top_level_key(text: &str) -> Option<String> {
    let root: toml::Table = toml::from_str(text).ok()?;
    let mut sections: Vec<(String, &toml::Table)> =
        root.iter().filter_map(|(key, value)| Some((key.clone(), value.as_table()?))).collect();
    while let Some((path, section)) = sections.pop() {
        for (key, value) in section {
            if let Some(nested) = value.as_table() {
                sections.push((format!("{path}.{key}"), nested));
            } else if TOP_LEVEL_KEYS.contains(&key.as_str()) {
                return Some(format!(
                    "{path}.{key}: the key {key} is a top-level key; move it above the first [section]. \
                     TOML reads a key written below a [section] header as part of that section, here [{path}]"
                ));
            }
        }
    }
    None
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

fn default_lifetime_days() -> u32 {
    365
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl Config {
    /// The configuration used without `--config`: the OZO platform's two environments,
    /// each with a local CA under `./data`.
    pub fn builtin() -> Config {
        let environments = Environment::builtin()
            .into_iter()
            .map(|env| {
                let test_url = match env.name.as_str() {
                    "staging" => "https://nuts-node-ozo-int.staging.ozo.headease.nl/status",
                    _ => "https://nuts-node-ozo-int.ozo.headease.nl/status",
                };
                let config = EnvironmentConfig {
                    common_name: env.subject.common_name,
                    organization: env.subject.organization,
                    certificate_lifetime_days: default_lifetime_days(),
                    allow_uploads_without_invitation: false,
                    test_url: Some(test_url.to_owned()),
                    approvals_required: None,
                    ca: CaConfig::Local { directory: None },
                };
                (env.name.to_string(), config)
            })
            .collect();
        Config {
            data_dir: default_data_dir(),
            listen: None,
            database_url: None,
            secure_cookies: false,
            trusted_proxies: Vec::new(),
            rate_limits: RateLimitConfig::default(),
            log_format: LogFormat::default(),
            metrics_listen: None,
            shutdown_grace_seconds: default_shutdown_grace_seconds(),
            client_read_timeout_seconds: default_client_read_timeout_seconds(),
            tls: None,
            environments,
        }
    }

    /// Returns the networks of `trusted_proxies`. [`Config::check`] has made sure that each entry
    /// reads as one.
    pub fn trusted_proxies(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies.iter().filter_map(|entry| ozo_web::client_address::parse_trusted_proxy(entry)).collect()
    }

    /// Reads and checks a configuration file. Errors name the file and the key.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the config file {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let config: Config = match toml::from_str(text) {
            Ok(config) => config,
            Err(error) => match misplaced_top_level_key(text) {
                Some(message) => bail!("{message}"),
                None => return Err(error.into()),
            },
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.environments.is_empty() {
            bail!("environments: expected at least one [environments.NAME] section");
        }
        if !(1..=3600).contains(&self.shutdown_grace_seconds) {
            bail!("shutdown_grace_seconds: expected 1 to 3600, found {}", self.shutdown_grace_seconds);
        }
        if !(1..=600).contains(&self.client_read_timeout_seconds) {
            bail!("client_read_timeout_seconds: expected 1 to 600, found {}", self.client_read_timeout_seconds);
        }
        for entry in &self.trusted_proxies {
            if ozo_web::client_address::parse_trusted_proxy(entry).is_none() {
                bail!(
                    "trusted_proxies: expected networks or addresses such as \"10.0.0.0/8\" or \"2001:db8::1\", found {entry:?}"
                );
            }
        }
        if let (Some(metrics), Some(listen)) = (self.metrics_listen, self.listen) {
            if metrics == listen {
                bail!("metrics_listen: expected an address other than listen ({listen}), or no metrics_listen");
            }
        }
        for (name, env) in &self.environments {
            EnvironmentName::parse(name).map_err(|e| anyhow::anyhow!("environments.{name}: {e}"))?;
            if env.common_name.trim().is_empty() || env.common_name.trim() != env.common_name {
                bail!("environments.{name}.common_name: expected a non-empty name without surrounding spaces");
            }
            if env.organization.trim().is_empty() || env.organization.trim() != env.organization {
                bail!("environments.{name}.organization: expected a non-empty name without surrounding spaces");
            }
            if env.allow_uploads_without_invitation && name == "production" {
                bail!("environments.production.allow_uploads_without_invitation: expected false; uploads without an invitation are for test environments only");
            }
            if !(1..=5).contains(&env.approvals_required(name)) {
                bail!(
                    "environments.{name}.approvals_required: expected 1 to 5, found {}",
                    env.approvals_required(name)
                );
            }
            if name == "production" && env.approvals_required(name) < 2 {
                bail!("environments.production.approvals_required: expected at least 2, so that no operator approves production alone");
            }
            if !(1..=MAX_LIFETIME_DAYS).contains(&env.certificate_lifetime_days) {
                bail!(
                    "environments.{name}.certificate_lifetime_days: expected 1 to {MAX_LIFETIME_DAYS}, found {}",
                    env.certificate_lifetime_days
                );
            }
        }
        let mut subjects: Vec<(&String, String)> = self
            .environments
            .iter()
            .map(|(name, env)| (name, format!("{}/{}", env.common_name, env.organization)))
            .collect();
        subjects.sort_by(|a, b| a.1.cmp(&b.1));
        if let Some(pair) = subjects.windows(2).find(|pair| pair[0].1 == pair[1].1) {
            bail!(
                "environments.{}: has the same subject as environments.{}; each environment needs its own subject, \
                 so that a certificate of one never works in the other",
                pair[1].0,
                pair[0].0
            );
        }
        let mut pools: Vec<(String, &String)> = self
            .environments
            .iter()
            .filter_map(|(name, env)| match &env.ca {
                CaConfig::GoogleCas(cas) => Some((format!("{}/{}/{}", cas.project, cas.location, cas.ca_pool), name)),
                CaConfig::Local { .. } => None,
            })
            .collect();
        pools.sort();
        if let Some(pair) = pools.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            bail!(
                "environments.{}.ca.ca_pool: is also the pool of environments.{}; each environment needs its own pool and root, \
                 so that a certificate of one never works in the other",
                pair[1].1,
                pair[0].1
            );
        }
        for (key, value) in [
            ("uploads_per_address_per_10_minutes", self.rate_limits.uploads_per_address_per_10_minutes),
            ("uploads_per_invitation_per_10_minutes", self.rate_limits.uploads_per_invitation_per_10_minutes),
            ("status_pages_per_address_per_minute", self.rate_limits.status_pages_per_address_per_minute),
        ] {
            if value == 0 {
                bail!("rate_limits.{key}: expected at least 1");
            }
        }
        Ok(())
    }

    /// Lists the environments for validation, in name order.
    pub fn domain_environments(&self) -> Vec<Environment> {
        self.environments
            .iter()
            .map(|(name, env)| Environment {
                name: EnvironmentName::parse(name).expect("environment names were checked when the config was loaded"),
                subject: ExpectedSubject {
                    common_name: env.common_name.clone(),
                    organization: env.organization.clone(),
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../deploy/ozo-signer.example.toml");

    #[test]
    fn example_config_is_valid() {
        let config = Config::parse(EXAMPLE).unwrap();
        let envs = config.domain_environments();
        assert_eq!(envs.len(), 2);
        assert_eq!(envs[0].name.as_str(), "production");
        assert_eq!(envs[0].subject.common_name, "zorgverband.nl");
        assert_eq!(envs[1].name.as_str(), "staging");
        assert_eq!(envs[1].subject.common_name, "connect.zorgverband.nl");
    }

    #[test]
    fn builtin_matches_example() {
        let builtin = Config::builtin().domain_environments();
        let example = Config::parse(EXAMPLE).unwrap().domain_environments();
        assert_eq!(builtin, example);
    }

    #[test]
    fn unknown_key_is_named() {
        let text = EXAMPLE.replace("certificate_lifetime_days", "lifetime");
        let error = format!("{:#}", Config::parse(&text).unwrap_err());
        assert!(error.contains("lifetime"), "{error}");
        assert!(error.contains("unknown field"), "{error}");
    }

    #[test]
    fn top_level_keys_are_the_config_fields() {
        let error = format!("{:#}", Config::parse("not_a_key = 1").unwrap_err());
        let (_, expected) = error.split_once("expected one of ").unwrap_or_else(|| panic!("{error}"));
        let fields: Vec<&str> = expected.split(", ").map(|field| field.trim().trim_matches('`')).collect();
        assert_eq!(fields, TOP_LEVEL_KEYS, "{error}");
    }

    #[test]
    fn top_level_key_in_a_section_is_named() {
        let key_line = "log_format = \"json\"\n";
        let example = EXAMPLE.replace(key_line, "");
        let cases = [
            ("[rate_limits]\n", "rate_limits"),
            ("[environments.staging]\n", "environments.staging"),
            ("[environments.production.ca]\n", "environments.production.ca"),
        ];
        for (header, section) in cases {
            assert!(example.contains(header), "{header}");
            let text = example.replacen(header, &format!("{header}{key_line}"), 1);
            let error = format!("{:#}", Config::parse(&text).unwrap_err());
            assert!(error.starts_with(&format!("{section}.log_format: ")), "{section}: {error}");
            assert!(
                error.contains("the key log_format is a top-level key; move it above the first [section]"),
                "{section}: {error}"
            );
            assert!(error.contains(&format!("here [{section}]")), "{section}: {error}");
        }

        let environments_table = format!("{example}\n[environments]\n{key_line}");
        let error = format!("{:#}", Config::parse(&environments_table).unwrap_err());
        assert!(error.starts_with("environments.log_format: the key log_format is a top-level key"), "{error}");
    }

    #[test]
    fn environment_named_listen_is_valid() {
        let text = EXAMPLE.replace("[environments.staging", "[environments.listen");
        let config = Config::parse(&text).unwrap();
        assert!(config.environments.contains_key("listen"));
    }

    #[test]
    fn trusted_proxies_are_checked() {
        let text = format!("trusted_proxies = [\"130.211.0.0/22\", \"2001:db8::/32\", \"127.0.0.1\"]\n{EXAMPLE}");
        let proxies: Vec<String> =
            Config::parse(&text).unwrap().trusted_proxies().iter().map(ToString::to_string).collect();
        assert_eq!(proxies, ["130.211.0.0/22", "2001:db8::/32", "127.0.0.1/32"]);
        assert!(Config::parse(EXAMPLE).unwrap().trusted_proxies().is_empty());

        let text = format!("trusted_proxies = [\"10.0.0.0/8\", \"load-balancer\"]\n{EXAMPLE}");
        let error = format!("{:#}", Config::parse(&text).unwrap_err());
        assert!(
            error.contains(r#"trusted_proxies: expected networks or addresses such as "10.0.0.0/8" or "2001:db8::1", found "load-balancer""#),
            "{error}"
        );
    }

    #[test]
    fn client_read_timeout_is_checked() {
        assert_eq!(Config::parse(EXAMPLE).unwrap().client_read_timeout_seconds, 30);
        assert_eq!(Config::builtin().client_read_timeout_seconds, 30);

        let text = format!("client_read_timeout_seconds = 5\n{EXAMPLE}").replace("client_read_timeout_seconds = 30\n", "");
        assert_eq!(Config::parse(&text).unwrap().client_read_timeout_seconds, 5);

        let text = EXAMPLE.replace("client_read_timeout_seconds = 30", "client_read_timeout_seconds = 0");
        let error = format!("{:#}", Config::parse(&text).unwrap_err());
        assert!(error.contains("client_read_timeout_seconds: expected 1 to 600, found 0"), "{error}");
    }

    #[test]
    fn bad_lifetime_is_named() {
        let text = EXAMPLE.replace("certificate_lifetime_days = 365", "certificate_lifetime_days = 9000");
        let error = format!("{:#}", Config::parse(&text).unwrap_err());
        assert!(error.contains("certificate_lifetime_days: expected 1 to 825"), "{error}");
    }

    #[test]
    fn shared_subject_is_rejected() {
        let text = EXAMPLE.replace("\"connect.zorgverband.nl\"", "\"zorgverband.nl\"");
        let error = format!("{:#}", Config::parse(&text).unwrap_err());
        assert!(error.contains("same subject"), "{error}");
    }

    #[test]
    fn production_needs_invitations() {
        let text = EXAMPLE.replace(
            "[environments.production.ca]",
            "allow_uploads_without_invitation = true\n\n[environments.production.ca]",
        );
        let error = format!("{:#}", Config::parse(&text).unwrap_err());
        assert!(error.contains("environments.production.allow_uploads_without_invitation: expected false"), "{error}");
    }

    const CAS_SECTION: &str = r#"
[environments.production.ca]
backend = "google-cas"
project = "ozo-pki"
location = "europe-west4"
ca_pool = "ozo-clients-production"
root_certificate = "ROOT"
credentials = "anonymous"
endpoint = "http://127.0.0.1:9"
"#;

    fn with_cas(section: &str) -> String {
        let start = EXAMPLE.find("[environments.production.ca]").unwrap();
        let end = start + EXAMPLE[start..].find("\n[").unwrap_or(EXAMPLE.len() - start);
        format!("{}{}{}", &EXAMPLE[..start], section, &EXAMPLE[end..])
    }

    #[test]
    fn google_cas_section_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root.pem");
        let ca = ozo_ca::LocalCa::open_or_create(&dir.path().join("ca"), "test root", "OZOverbindzorg").unwrap();
        std::fs::write(&root, ozo_ca::Signer::ca_certificate_pem(&ca)).unwrap();
        let config = Config::parse(&with_cas(&CAS_SECTION.replace("ROOT", root.to_str().unwrap()))).unwrap();
        let CaConfig::GoogleCas(cas) = &config.environments["production"].ca else {
            panic!("expected the google-cas backend");
        };
        let settings = cas.settings("production").unwrap();
        assert_eq!(settings.pool_name(), "projects/ozo-pki/locations/europe-west4/caPools/ozo-clients-production");
        assert_eq!(settings.credentials, ozo_ca::CasCredentials::Anonymous);
        assert_eq!(settings.requests_per_second.get(), 5);
        assert_eq!(settings.timeout, std::time::Duration::from_secs(30));
    }

    #[test]
    fn google_cas_errors_name_the_key() {
        let missing_credentials = with_cas(&CAS_SECTION.replace("credentials = \"anonymous\"\n", ""));
        let config = Config::parse(&missing_credentials).unwrap();
        let CaConfig::GoogleCas(cas) = &config.environments["production"].ca else { panic!() };
        let error = format!("{:#}", cas.settings("production").unwrap_err());
        assert!(
            error.contains("environments.production.ca.credentials: missing; expected \"application-default\""),
            "{error}"
        );

        let config =
            Config::parse(&with_cas(&CAS_SECTION.replace("ca_pool = \"ozo-clients-production\"", "ca_pool = \"a/b\"")))
                .unwrap();
        let CaConfig::GoogleCas(cas) = &config.environments["production"].ca else { panic!() };
        let error = format!("{:#}", cas.settings("production").unwrap_err());
        assert!(error.contains("environments.production.ca.ca_pool: expected a pool id"), "{error}");

        let config = Config::parse(&with_cas(&CAS_SECTION.replace("europe-west4", "europe west4"))).unwrap();
        let CaConfig::GoogleCas(cas) = &config.environments["production"].ca else { panic!() };
        let error = format!("{:#}", cas.settings("production").unwrap_err());
        assert!(error.contains("environments.production.ca.location: expected a location"), "{error}");

        let config = Config::parse(&with_cas(CAS_SECTION)).unwrap();
        let CaConfig::GoogleCas(cas) = &config.environments["production"].ca else { panic!() };
        let error = format!("{:#}", cas.settings("production").unwrap_err());
        assert!(error.contains("environments.production.ca.root_certificate: ROOT cannot be read"), "{error}");

        let key_without_file = with_cas(&CAS_SECTION.replace("\"anonymous\"", "\"service-account-key\""));
        let config = Config::parse(&key_without_file).unwrap();
        let CaConfig::GoogleCas(cas) = &config.environments["production"].ca else { panic!() };
        let error = format!("{:#}", cas.settings("production").unwrap_err());
        assert!(error.contains("environments.production.ca.service_account_key: expected the path"), "{error}");
    }

    #[test]
    fn root_certificate_problems_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ozo_ca::LocalCa::open_or_create(&dir.path().join("ca"), "test root", "OZOverbindzorg").unwrap();
        let root = ozo_ca::Signer::ca_certificate_pem(&ca).to_owned();
        let cases = [
            ("text", "just some text\n".to_owned(), "contains no -----BEGIN CERTIFICATE----- block"),
            ("two", format!("{root}{root}"), "contains 2 certificates; expected only the root"),
            (
                "key",
                std::fs::read_to_string(dir.path().join("ca/ca-key.pem")).unwrap(),
                "contains no -----BEGIN CERTIFICATE----- block",
            ),
            ("der", String::new(), "is not PEM text"),
        ];
        for (name, contents, expected) in cases {
            let path = dir.path().join(name);
            if name == "der" {
                std::fs::write(&path, [0x30, 0x82, 0xff, 0xfe]).unwrap();
            } else {
                std::fs::write(&path, contents).unwrap();
            }
            let config = Config::parse(&with_cas(&CAS_SECTION.replace("ROOT", path.to_str().unwrap()))).unwrap();
            let CaConfig::GoogleCas(cas) = &config.environments["production"].ca else { panic!() };
            let error = format!("{:#}", cas.settings("production").unwrap_err());
            assert!(error.starts_with("environments.production.ca.root_certificate: "), "{name}: {error}");
            assert!(error.contains(expected), "{name}: {error}");
        }
    }

    #[test]
    fn shared_cas_pool_is_rejected() {
        let staging_section = CAS_SECTION.replace("[environments.production.ca]\n", "");
        let text = with_cas(CAS_SECTION).replacen("backend = \"local\"", staging_section.trim(), 1);
        let error = format!("{:#}", Config::parse(&text).unwrap_err());
        assert!(error.contains("is also the pool of environments."), "{error}");
    }

    #[test]
    fn unknown_backend_is_named() {
        let text = EXAMPLE.replacen("backend = \"local\"", "backend = \"vault\"", 1);
        let error = format!("{:#}", Config::parse(&text).unwrap_err());
        assert!(error.contains("vault"), "{error}");
    }
}
