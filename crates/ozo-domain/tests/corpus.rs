//! Table test over the OpenSSL CSR corpus in `tests/data/csr`: every file gets the
//! verdict and reason that `manifest.tsv` gives for it.

use std::fs;
use std::path::PathBuf;

use ozo_domain::{validate, Environment, FindingCode, Severity, Verdict};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/csr")
}

struct Case {
    file: String,
    environment: String,
    expect: String,
    reason: String,
}

fn manifest() -> Vec<Case> {
    let text = fs::read_to_string(corpus_dir().join("manifest.tsv")).expect("manifest.tsv is readable");
    text.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let columns: Vec<&str> = line.split('\t').collect();
            assert_eq!(columns.len(), 4, "manifest line {line:?} has 4 columns");
            Case {
                file: columns[0].to_owned(),
                environment: columns[1].to_owned(),
                expect: columns[2].to_owned(),
                reason: columns[3].to_owned(),
            }
        })
        .collect()
}

#[test]
fn corpus_verdicts_match_manifest() {
    let environments = Environment::builtin();
    let cases = manifest();
    assert!(cases.len() >= 37, "manifest has {} rows", cases.len());

    let mut failures = Vec::new();
    for case in &cases {
        let environment = environments
            .iter()
            .find(|env| env.name.as_str() == case.environment)
            .unwrap_or_else(|| panic!("{}: unknown environment {}", case.file, case.environment));
        let bytes = fs::read(corpus_dir().join(&case.file)).expect("corpus file is readable");
        let verdict = validate(&bytes, environment, &environments);

        let codes: Vec<String> = verdict
            .findings()
            .iter()
            .map(|f| format!("{}:{}", f.severity.as_str(), f.code))
            .collect();
        let outcome = match (&verdict, case.expect.as_str(), case.reason.as_str()) {
            (Verdict::Accepted(csr), "accept", "-") => csr.warnings().is_empty(),
            (Verdict::Accepted(csr), "accept", "warning") => {
                !csr.warnings().is_empty() && csr.warnings().iter().all(|w| w.severity == Severity::Warning)
            }
            (Verdict::Rejected(rejected), "reject", reason) => {
                rejected.reason() == FindingCode::parse(reason)
            }
            _ => false,
        };
        if !outcome {
            failures.push(format!(
                "{} for {}: expected {} {}, got {} {:?}",
                case.file,
                case.environment,
                case.expect,
                case.reason,
                if verdict.is_accepted() { "accept" } else { "reject" },
                codes
            ));
        }
    }
    assert!(failures.is_empty(), "corpus mismatches:\n{}", failures.join("\n"));
}

#[test]
fn private_key_rejection_keeps_nothing() {
    let environments = Environment::builtin();
    for file in ["with-private-key.txt", "private-key-only.key"] {
        let bytes = fs::read(corpus_dir().join(file)).unwrap();
        let Verdict::Rejected(rejected) = validate(&bytes, &environments[0], &environments) else {
            panic!("{file} was accepted");
        };
        assert!(rejected.der.is_none(), "{file}: DER kept");
        assert!(rejected.findings[0].en.contains("compromised"), "{file}: {}", rejected.findings[0].en);
    }
}

#[test]
fn exposed_key_is_fingerprinted() {
    // Both files hold the private key of staging-valid.csr, so the rejection names the
    // fingerprint of that CSR's public key and the key can be refused later.
    let environments = Environment::builtin();
    let valid = fs::read(corpus_dir().join("staging-valid.csr")).unwrap();
    let Verdict::Accepted(csr) = validate(&valid, &environments[0], &environments) else {
        panic!("staging-valid.csr rejected");
    };
    for file in ["with-private-key.txt", "private-key-only.key"] {
        let bytes = fs::read(corpus_dir().join(file)).unwrap();
        let Verdict::Rejected(rejected) = validate(&bytes, &environments[0], &environments) else {
            panic!("{file} was accepted");
        };
        assert_eq!(rejected.spki_sha256, Some(csr.spki_sha256()), "{file}");
    }
}

#[test]
fn rejection_lists_every_finding() {
    // An RSA CSR for the other environment's subject breaks two rules at once. Its
    // RSA signature algorithm follows from the key type and is no separate finding.
    let environments = Environment::builtin();
    let bytes = fs::read(corpus_dir().join("rsa-2048.csr")).unwrap();
    let Verdict::Rejected(rejected) = validate(&bytes, &environments[1], &environments) else {
        panic!("RSA CSR accepted");
    };
    let codes: Vec<FindingCode> = rejected.findings.iter().map(|f| f.code).collect();
    assert_eq!(
        codes,
        [FindingCode::KeyType, FindingCode::WrongEnvironment]
    );
}

#[test]
fn accepted_csr_exposes_key_and_subject() {
    let environments = Environment::builtin();
    let bytes = fs::read(corpus_dir().join("staging-valid.der")).unwrap();
    let Verdict::Accepted(csr) = validate(&bytes, &environments[0], &environments) else {
        panic!("staging-valid.der rejected");
    };
    assert_eq!(csr.der(), bytes.as_slice());
    assert_eq!(csr.subject().common_name, "connect.zorgverband.nl");
    assert_eq!(csr.signature_algorithm(), "ecdsa-with-SHA256");
    assert_eq!(csr.spki_der().len(), 91);
    assert_eq!(csr.spki_sha256_hex().len(), 64);

    // The PEM forms of the same request give the same DER and fingerprint.
    for file in ["staging-valid.csr", "staging-crlf.csr", "staging-bom.csr", "staging-new-header.csr", "staging-with-text.csr"] {
        let pem = fs::read(corpus_dir().join(file)).unwrap();
        let Verdict::Accepted(same) = validate(&pem, &environments[0], &environments) else {
            panic!("{file} rejected");
        };
        assert_eq!(same.der(), csr.der(), "{file}");
        assert_eq!(same.spki_sha256(), csr.spki_sha256(), "{file}");
    }
}

#[test]
fn messages_exist_in_both_languages() {
    let environments = Environment::builtin();
    for case in manifest() {
        let bytes = fs::read(corpus_dir().join(&case.file)).unwrap();
        let env = environments.iter().find(|e| e.name.as_str() == case.environment).unwrap();
        for finding in validate(&bytes, env, &environments).findings() {
            assert!(!finding.en.is_empty(), "{}: no English message", case.file);
            assert!(!finding.nl.is_empty(), "{}: no Dutch message", case.file);
            assert_ne!(finding.en, finding.nl, "{}: untranslated", case.file);
        }
    }
}
