//! Environments and the subject each one expects.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The name of an environment, such as `staging` or `production`: lowercase ASCII
/// letters, digits and `-`, at most 32 characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct EnvironmentName(String);

#[derive(Debug, thiserror::Error)]
#[error("invalid environment name {0:?}: expected 1 to 32 lowercase letters, digits or '-'")]
pub struct InvalidEnvironmentName(pub String);

impl EnvironmentName {
    pub fn parse(name: &str) -> Result<Self, InvalidEnvironmentName> {
        let valid = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(InvalidEnvironmentName(name.to_owned()));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for EnvironmentName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        EnvironmentName::parse(&name).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for EnvironmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The subject every CSR of an environment must carry: exactly `CN=…, O=…`, in that order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedSubject {
    pub common_name: String,
    pub organization: String,
}

impl ExpectedSubject {
    /// The `-subj` argument of `openssl req` that produces this subject.
    pub fn openssl_subj(&self) -> String {
        format!("/CN={}/O={}", self.common_name, self.organization)
    }
}

impl fmt::Display for ExpectedSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CN={}, O={}", self.common_name, self.organization)
    }
}

/// An environment as far as validation is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Environment {
    pub name: EnvironmentName,
    pub subject: ExpectedSubject,
}

impl Environment {
    /// The built-in environments of the OZO platform, used when no configuration is given.
    pub fn builtin() -> Vec<Environment> {
        let organization = "OZOverbindzorg".to_owned();
        vec![
            Environment {
                name: EnvironmentName("staging".to_owned()),
                subject: ExpectedSubject {
                    common_name: "connect.zorgverband.nl".to_owned(),
                    organization: organization.clone(),
                },
            },
            Environment {
                name: EnvironmentName("production".to_owned()),
                subject: ExpectedSubject {
                    common_name: "zorgverband.nl".to_owned(),
                    organization,
                },
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_name_rules() {
        assert!(EnvironmentName::parse("staging").is_ok());
        assert!(EnvironmentName::parse("acc-2").is_ok());
        assert!(EnvironmentName::parse("").is_err());
        assert!(EnvironmentName::parse("Staging").is_err());
        assert!(EnvironmentName::parse("a b").is_err());
        assert!(EnvironmentName::parse(&"x".repeat(33)).is_err());
    }

    #[test]
    fn builtin_subjects() {
        let envs = Environment::builtin();
        assert_eq!(envs[0].name.as_str(), "staging");
        assert_eq!(envs[0].subject.to_string(), "CN=connect.zorgverband.nl, O=OZOverbindzorg");
        assert_eq!(envs[1].name.as_str(), "production");
        assert_eq!(envs[1].subject.openssl_subj(), "/CN=zorgverband.nl/O=OZOverbindzorg");
    }
}
