//! `ozo-signer csr check`: exit codes, text and JSON output, with no configuration.

use std::path::PathBuf;
use std::process::Command;

fn corpus(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/csr").join(file)
}

fn check(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ozo-signer")).args(["csr", "check"]).args(args).output().unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn accepted_csr_exits_zero() {
    let (code, stdout, _) = check(&["--environment", "staging", corpus("staging-valid.csr").to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("accepted (staging)"), "{stdout}");
    assert!(stdout.contains("public key SHA-256: "), "{stdout}");
}

#[test]
fn rejected_csr_exits_one_with_json() {
    let (code, stdout, _) = check(&["--environment", "production", "--json", corpus("staging-valid.csr").to_str().unwrap()]);
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["accepted"], false);
    assert_eq!(json["findings"][0]["code"], "wrong-environment");
    assert_eq!(json["findings"][0]["severity"], "error");
    assert!(json["findings"][0]["message"].as_str().unwrap().contains("staging"));
}

#[test]
fn warning_is_listed_in_dutch() {
    let (code, stdout, _) = check(&["-e", "staging", "--lang", "nl", corpus("san-extension.csr").to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(stdout.contains("geaccepteerd"), "{stdout}");
    assert!(stdout.contains("warning extension: De CSR vraagt subjectAltName aan"), "{stdout}");
}

#[test]
fn private_key_file_advice_fits_offline_use() {
    let (code, stdout, _) = check(&["-e", "staging", corpus("with-private-key.txt").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stdout.contains("error private-key: The file contains a private key"), "{stdout}");
    assert!(stdout.contains("If this file was sent or uploaded anywhere"), "{stdout}");
    assert!(!stdout.contains("It was not stored"), "{stdout}");
}

#[test]
fn usage_errors_exit_two() {
    let (code, _, stderr) = check(&["--environment", "acceptance", corpus("staging-valid.csr").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown environment \"acceptance\"; expected one of: production, staging"), "{stderr}");

    let (code, _, stderr) = check(&["--environment", "staging", "/nonexistent/client.csr"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("failed to read /nonexistent/client.csr"), "{stderr}");

    let (code, _, _) = check(&["staging-valid.csr"]);
    assert_eq!(code, 2, "a missing --environment is a usage error");
}

#[test]
fn bad_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[environments.staging]\ncommon_name = \"x\"\norganization = \"y\"\ncertificate_lifetime_days = 0\n[environments.staging.ca]\nbackend = \"local\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ozo-signer"))
        .args(["--config", path.to_str().unwrap(), "csr", "check", "-e", "staging", "x.csr"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("environments.staging.certificate_lifetime_days: expected 1 to 825, found 0"), "{stderr}");
}
