//! The digest of what an operator approves. Signing re-computes it right before the call
//! to the CA, so a request whose CSR, key, environment, CA, lifetime or validation policy
//! changed after approval is not signed.

use sha2::{Digest, Sha256};

use crate::VerifiedCsr;

/// Everything an approval covers.
#[derive(Clone, Copy, Debug)]
pub struct ApprovalSubject<'a> {
    pub csr: &'a VerifiedCsr,
    pub environment: &'a str,
    /// The CA that will sign, as the backend describes it (for CAS, the pool's name).
    pub ca: &'a str,
    pub lifetime_seconds: i64,
    pub policy_version: &'a str,
}

impl ApprovalSubject<'_> {
    /// Computes the SHA-256 of the covered values, each on its own line of a versioned text, so
    /// that no two different subjects share an encoding.
    pub fn digest(&self) -> [u8; 32] {
        let text = format!(
            "ozo-signer approval v1\ncsr-sha256 {}\nspki-sha256 {}\nenvironment {}\nca {}\nlifetime-seconds {}\npolicy {}\n",
            hex::encode(Sha256::digest(self.csr.der())),
            self.csr.spki_sha256_hex(),
            self.environment.escape_default(),
            self.ca.escape_default(),
            self.lifetime_seconds,
            self.policy_version.escape_default(),
        );
        Sha256::digest(text.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{validate, Environment, Verdict};

    fn csr(file: &str) -> VerifiedCsr {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/csr").join(file);
        let environments = Environment::builtin();
        match validate(&std::fs::read(path).unwrap(), &environments[0], &environments) {
            Verdict::Accepted(csr) => csr,
            Verdict::Rejected(rejected) => panic!("{file}: {:?}", rejected.findings),
        }
    }

    #[test]
    fn digest_changes_with_every_covered_value() {
        let first = csr("staging-valid.csr");
        let other_key = csr("sha384-signature.csr");
        let base = ApprovalSubject {
            csr: &first,
            environment: "staging",
            ca: "Google CAS pool projects/p/locations/l/caPools/staging",
            lifetime_seconds: 365 * 86400,
            policy_version: "1",
        };
        let digest = base.digest();

        assert_eq!(digest, base.digest(), "the digest is deterministic");
        assert_ne!(digest, ApprovalSubject { csr: &other_key, ..base }.digest());
        assert_ne!(digest, ApprovalSubject { environment: "production", ..base }.digest());
        assert_ne!(digest, ApprovalSubject { ca: "local CA in /var/lib/ozo-signer/ca/staging", ..base }.digest());
        assert_ne!(digest, ApprovalSubject { lifetime_seconds: 30 * 86400, ..base }.digest());
        assert_ne!(digest, ApprovalSubject { policy_version: "2", ..base }.digest());
    }

    #[test]
    fn line_breaks_in_values_cannot_forge_another_subject() {
        let first = csr("staging-valid.csr");
        let plain = ApprovalSubject {
            csr: &first,
            environment: "staging",
            ca: "a\nlifetime-seconds 1",
            lifetime_seconds: 2,
            policy_version: "1",
        };
        let shifted = ApprovalSubject { ca: "a", lifetime_seconds: 1, ..plain };
        assert_ne!(plain.digest(), shifted.digest());
    }
}
