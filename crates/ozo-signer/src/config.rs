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
    #[serde(default)]
    pub rate_limits: RateLimitConfig,
    pub environments: BTreeMap<String, EnvironmentConfig>,
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
    pub ca: CaConfig,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "backend", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CaConfig {
    /// A root CA kept in `directory`, by default `<data_dir>/ca/<environment>`.
    Local { directory: Option<PathBuf> },
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
            rate_limits: RateLimitConfig::default(),
            environments,
        }
    }

    /// Reads and checks a configuration file. Errors name the file and the key.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("failed to read the config file {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.environments.is_empty() {
            bail!("environments: expected at least one [environments.NAME] section");
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
                subject: ExpectedSubject { common_name: env.common_name.clone(), organization: env.organization.clone() },
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

    #[test]
    fn unknown_backend_is_named() {
        let text = EXAMPLE.replacen("backend = \"local\"", "backend = \"vault\"", 1);
        let error = format!("{:#}", Config::parse(&text).unwrap_err());
        assert!(error.contains("vault"), "{error}");
    }
}
