//! Properties of the intake over malformed and hostile inputs: arbitrary bytes,
//! mutations of a valid CSR and deeply nested DER never panic and never hang.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ozo_domain::{validate, Environment, Verdict};
use proptest::prelude::*;

/// A guard against hangs, far above the tens of microseconds an intake takes; speed
/// itself is measured by the intake benchmark.
const HANG_GUARD: Duration = Duration::from_millis(500);

fn valid_der() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/csr/staging-valid.der");
    fs::read(path).unwrap()
}

/// Validates for both environments and checks that the verdict agrees with the findings.
fn check(input: &[u8]) -> Vec<Verdict> {
    let environments = Environment::builtin();
    environments
        .iter()
        .map(|environment| {
            let start = Instant::now();
            let verdict = validate(input, environment, &environments);
            assert!(start.elapsed() < HANG_GUARD, "validation took {:?}", start.elapsed());
            match &verdict {
                Verdict::Accepted(csr) => assert!(csr.warnings().iter().all(|f| !f.is_error())),
                Verdict::Rejected(rejected) => assert!(rejected.findings.iter().any(|f| f.is_error())),
            }
            verdict
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Insert { at: usize, byte: u8 },
    Remove { at: usize },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Remove { at }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match *mutation {
        Mutation::Flip { at, mask } => {
            let at = at % bytes.len();
            bytes[at] ^= mask;
        }
        Mutation::Insert { at, byte } => bytes.insert(at % (bytes.len() + 1), byte),
        Mutation::Remove { at } => {
            bytes.remove(at % bytes.len());
        }
        Mutation::Truncate { at } => bytes.truncate(at % bytes.len()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..20_000)) {
        check(&input);
    }

    #[test]
    fn arbitrary_pem_never_panics(body in "[A-Za-z0-9+/=\r\n -]{0,2000}") {
        check(format!("-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n").as_bytes());
    }

    /// Every byte of a CSR is covered by its DER structure or its signature, so a
    /// mutated CSR is either rejected or, when the mutation changed nothing that
    /// matters, accepted as exactly the original.
    #[test]
    fn mutated_csr_is_rejected_or_unchanged(mutations in proptest::collection::vec(mutation(), 1..4)) {
        let original = valid_der();
        let mut mutated = original.clone();
        for mutation in &mutations {
            apply(&mut mutated, mutation);
        }
        let verdicts = check(&mutated);
        if let Verdict::Accepted(csr) = &verdicts[0] {
            prop_assert_eq!(csr.der(), original.as_slice());
        }
        prop_assert!(!verdicts[1].is_accepted(), "a staging CSR is never accepted for production");
    }
}

#[test]
fn deeply_nested_der_is_malformed() {
    // 5,000 nested SEQUENCEs with definite lengths, then the same with indefinite ones.
    let depth = 5_000usize;
    let mut nested = Vec::new();
    for _ in 0..depth {
        let inner = std::mem::take(&mut nested);
        let length = inner.len();
        nested.push(0x30);
        if length < 0x80 {
            nested.push(length as u8);
        } else {
            let bytes = (length as u32).to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            nested.push(0x80 | (4 - skip) as u8);
            nested.extend(&bytes[skip..]);
        }
        nested.extend(inner);
    }
    for verdict in check(&nested) {
        assert!(!verdict.is_accepted());
    }

    let indefinite: Vec<u8> = std::iter::repeat_n([0x30u8, 0x80], depth).flatten().collect();
    for verdict in check(&indefinite) {
        assert!(!verdict.is_accepted());
    }
}

#[test]
fn many_pem_boundaries_are_malformed() {
    let input = "-----BEGIN CERTIFICATE REQUEST-----\n".repeat(400);
    for verdict in check(input.as_bytes()) {
        assert!(!verdict.is_accepted());
    }
}
