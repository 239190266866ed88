//! Compares the whole CSR intake (PEM decoding, strict DER parsing, policy and the
//! proof-of-possession signature) with OpenSSL's P-256 verification rate, on one core
//! in the same run.
//!
//! Both sides run in alternating rounds, so that both see the same state of the machine
//! (clock speed, other load), and the medians of the rounds are compared.
//!
//! Run: `cargo bench -p ozo-domain --bench intake` (optionally `-- SECONDS` per round,
//! default 2, and `ROUNDS`, default 5).

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use ozo_domain::{validate, Environment, Verdict};

const CSR_COUNT: usize = 64;

/// Counts heap allocations, to report how many one intake makes.
struct CountingAllocator;

static ALLOCATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the layout comes from the caller, as System::alloc requires.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: ptr was allocated by System with this layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn main() {
    let numbers: Vec<u64> = std::env::args().skip(1).filter_map(|arg| arg.parse().ok()).collect();
    let seconds = numbers.first().copied().unwrap_or(2);
    let rounds = numbers.get(1).copied().unwrap_or(5);

    let csrs = make_csrs();
    let environments = Environment::builtin();
    let before = ALLOCATIONS.load(std::sync::atomic::Ordering::Relaxed);
    black_box(validate(&csrs[0], &environments[0], &environments));
    let allocations = ALLOCATIONS.load(std::sync::atomic::Ordering::Relaxed) - before;
    let signed: Vec<SignedCsr> = csrs.iter().map(|pem| SignedCsr::from_pem(pem)).collect();
    let mut openssl_rates = Vec::new();
    let mut intake_rates = Vec::new();
    let mut verify_rates = Vec::new();
    let mut p256_rates = Vec::new();
    let mut durations = Vec::new();
    for round in 1..=rounds {
        let openssl_rate = openssl_verify_rate(seconds);
        let (intake_rate, round_durations) = intake_rate(&csrs, Duration::from_secs(seconds));
        let verify_rate = verify_only_rate(&signed, Duration::from_secs(seconds));
        p256_rates.push(p256_verify_rate(&signed, Duration::from_secs(seconds)));
        println!(
            "round {round}: openssl {openssl_rate:.0} /s, intake {intake_rate:.0} /s, aws-lc-rs verify alone {verify_rate:.0} /s, ratio {:.2}",
            intake_rate / openssl_rate
        );
        openssl_rates.push(openssl_rate);
        intake_rates.push(intake_rate);
        verify_rates.push(verify_rate);
        durations.extend(round_durations);
    }
    durations.sort_unstable();
    let percentile = |p: f64| durations[((durations.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    let openssl_rate = median(&mut openssl_rates);
    let intake_rate = median(&mut intake_rates);

    println!("openssl version:                {}", openssl_version());
    println!("openssl speed ecdsap256 verify: {openssl_rate:>10.0} /s (median of {rounds} rounds of {seconds} s, one core)");
    println!("ozo-signer CSR intake:          {intake_rate:>10.0} /s (median of {rounds} rounds of {seconds} s, one core, {CSR_COUNT} distinct PEM CSRs)");
    println!("aws-lc-rs verify alone:         {:>10.0} /s (same CSRs, parsed beforehand)", median(&mut verify_rates));
    println!("p256 crate verify alone:        {:>10.0} /s (same CSRs, parsed beforehand)", median(&mut p256_rates));
    println!("heap allocations in one intake: {allocations:>10}");
    println!("one intake p50 / p99 / max:     {:.1} / {:.1} / {:.1} µs", percentile(0.5), percentile(0.99), percentile(1.0));
    println!("ratio intake / openssl verify:  {:>10.2}", intake_rate / openssl_rate);
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Makes distinct CSRs with the OZO guide's command, in PEM as clients upload them.
fn make_csrs() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    (0..CSR_COUNT)
        .map(|i| {
            let csr = dir.path().join(format!("{i}.csr"));
            let status = Command::new("openssl")
                .args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
                .arg("-keyout")
                .arg(dir.path().join(format!("{i}.key")))
                .arg("-out")
                .arg(&csr)
                .args(["-subj", "/CN=connect.zorgverband.nl/O=OZOverbindzorg"])
                .stderr(std::process::Stdio::null())
                .status()
                .expect("openssl runs");
            assert!(status.success(), "openssl req failed");
            std::fs::read(csr).expect("the CSR was written")
        })
        .collect()
}

fn openssl_version() -> String {
    let output = Command::new("openssl").arg("version").output().expect("openssl runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Runs `openssl speed -elapsed -seconds N ecdsap256` and reads the verify/s column of
/// the nistp256 line.
fn openssl_verify_rate(seconds: u64) -> f64 {
    let output = Command::new("openssl")
        .args(["speed", "-elapsed", "-seconds", &seconds.to_string(), "ecdsap256"])
        .output()
        .expect("openssl speed runs");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|line| line.contains("(nistp256)"))
        .and_then(|line| line.split_whitespace().last())
        .and_then(|rate| rate.parse().ok())
        .unwrap_or_else(|| panic!("no nistp256 verify rate in openssl speed output:\n{text}"))
}

/// Validates the CSRs round robin for `duration` and returns the rate, then times
/// single validations in a separate pass, so that reading the clock does not slow the
/// rate.
fn intake_rate(csrs: &[Vec<u8>], duration: Duration) -> (f64, Vec<Duration>) {
    let environments = Environment::builtin();
    let staging = &environments[0];

    for csr in csrs {
        assert!(
            matches!(validate(csr, staging, &environments), Verdict::Accepted(_)),
            "a CSR made with the guide's command is accepted"
        );
    }

    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < duration {
        for csr in csrs {
            black_box(validate(black_box(csr), staging, &environments));
        }
        count += csrs.len() as u64;
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();

    let mut durations = Vec::with_capacity(csrs.len() * 50);
    for _ in 0..50 {
        for csr in csrs {
            let one = Instant::now();
            black_box(validate(black_box(csr), staging, &environments));
            durations.push(one.elapsed());
        }
    }
    (rate, durations)
}

/// The signed part, signature and public key of a CSR, extracted before timing.
struct SignedCsr {
    tbs: Vec<u8>,
    signature: Vec<u8>,
    point: Vec<u8>,
}

impl SignedCsr {
    fn from_pem(pem: &[u8]) -> Self {
        use der::{DecodePem, Encode};
        let csr = x509_cert::request::CertReq::from_pem(pem).expect("a PEM CSR");
        SignedCsr {
            tbs: csr.info.to_der().unwrap(),
            signature: csr.signature.raw_bytes().to_vec(),
            point: csr.info.public_key.subject_public_key.raw_bytes().to_vec(),
        }
    }
}

/// Measures aws-lc-rs's ECDSA verification alone, the ceiling of the intake.
fn verify_only_rate(csrs: &[SignedCsr], duration: Duration) -> f64 {
    use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < duration {
        for csr in csrs {
            let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, black_box(&csr.point));
            assert!(key.verify(black_box(&csr.tbs), black_box(&csr.signature)).is_ok());
        }
        count += csrs.len() as u64;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// Measures the `p256` crate's ECDSA verification alone, for comparison.
fn p256_verify_rate(csrs: &[SignedCsr], duration: Duration) -> f64 {
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::{DerSignature, VerifyingKey};
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < duration {
        for csr in csrs {
            let key = VerifyingKey::from_sec1_bytes(black_box(&csr.point)).unwrap();
            let signature = DerSignature::try_from(black_box(csr.signature.as_slice())).unwrap();
            assert!(key.verify(black_box(&csr.tbs), &signature).is_ok());
        }
        count += csrs.len() as u64;
    }
    count as f64 / start.elapsed().as_secs_f64()
}
