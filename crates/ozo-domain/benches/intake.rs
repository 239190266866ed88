//! Compares the whole CSR intake (PEM decoding, strict DER parsing, policy and the
//! proof-of-possession signature) with OpenSSL's P-256 verification rate, on one core
//! in the same run.
//!
//! Run: `cargo bench -p ozo-domain --bench intake` (optionally `-- SECONDS`, default 5).

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use ozo_domain::{validate, Environment, Verdict};

const CSR_COUNT: usize = 64;

fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(5);

    let csrs = make_csrs();
    let openssl_rate = openssl_verify_rate(seconds);
    let (intake_rate, mut durations) = intake_rate(&csrs, Duration::from_secs(seconds));
    durations.sort_unstable();
    let percentile = |p: f64| durations[((durations.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;

    println!("openssl version:                {}", openssl_version());
    println!("openssl speed ecdsap256 verify: {openssl_rate:>10.0} /s (one core, {seconds} s)");
    println!("ozo-signer CSR intake:          {intake_rate:>10.0} /s (one core, {seconds} s, {CSR_COUNT} distinct PEM CSRs)");
    println!("one intake p50 / p99 / max:     {:.1} / {:.1} / {:.1} µs", percentile(0.5), percentile(0.99), percentile(1.0));
    println!("ratio intake / openssl verify:  {:>10.2}", intake_rate / openssl_rate);
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

/// Validates the CSRs round robin for `duration` and returns the rate and the duration
/// of each validation.
fn intake_rate(csrs: &[Vec<u8>], duration: Duration) -> (f64, Vec<Duration>) {
    let environments = Environment::builtin();
    let staging = &environments[0];

    for csr in csrs {
        assert!(
            matches!(validate(csr, staging, &environments), Verdict::Accepted(_)),
            "a CSR made with the guide's command is accepted"
        );
    }

    let mut durations = Vec::with_capacity(1 << 20);
    let start = Instant::now();
    while start.elapsed() < duration {
        for csr in csrs {
            let one = Instant::now();
            black_box(validate(black_box(csr), staging, &environments));
            durations.push(one.elapsed());
        }
    }
    (durations.len() as f64 / start.elapsed().as_secs_f64(), durations)
}
