//! The whole CSR intake, bytes in and verdict out: it must never panic, and its
//! verdict must agree with its findings.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use ozo_domain::{validate, Environment, Verdict};

static ENVIRONMENTS: LazyLock<Vec<Environment>> = LazyLock::new(Environment::builtin);

fuzz_target!(|data: &[u8]| {
    for environment in ENVIRONMENTS.iter() {
        match validate(data, environment, &ENVIRONMENTS) {
            Verdict::Accepted(csr) => {
                assert!(csr.warnings().iter().all(|finding| !finding.is_error()));
                assert_eq!(csr.subject(), &environment.subject);
                assert!(csr.der().len() <= data.len());
            }
            Verdict::Rejected(rejected) => {
                assert!(rejected.findings.iter().any(|finding| finding.is_error()));
            }
        }
    }
});
