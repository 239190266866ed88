//! `ozo-signer csr check`: the service's validation, offline.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use ozo_domain::{validate, Finding, FindingCode, Lang, Verdict};

use crate::config::Config;

/// The message of a finding for a file checked on the client's own machine. A private
/// key in a file that was never sent is not compromised, so its message differs from
/// the service's.
fn offline_message(finding: &Finding, lang: Lang) -> &str {
    if finding.code != FindingCode::PrivateKey {
        return finding.message(lang);
    }
    match lang {
        Lang::En => "The file contains a private key. Upload only the CSR file (client.csr) and keep the private key (client-key.pem) on your own machine. If this file was sent or uploaded anywhere, treat the key as compromised and make a new key and CSR.",
        Lang::Nl => "Het bestand bevat een privésleutel. Upload alleen het CSR-bestand (client.csr) en houd de privésleutel (client-key.pem) op uw eigen systeem. Is dit bestand ergens naartoe gestuurd of geüpload, beschouw de sleutel dan als gelekt en maak een nieuwe sleutel en CSR.",
    }
}

pub fn run(config: &Config, environment: &str, json: bool, lang: &str, file: &Path) -> ExitCode {
    let lang = Lang::from_tag(lang).unwrap_or_default();
    let environments = config.domain_environments();
    let Some(target) = environments.iter().find(|env| env.name.as_str() == environment) else {
        let known: Vec<&str> = environments.iter().map(|env| env.name.as_str()).collect();
        eprintln!("error: unknown environment {environment:?}; expected one of: {}", known.join(", "));
        return ExitCode::from(2);
    };

    let bytes = if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin().take(1 << 20).read_to_end(&mut bytes).map(|_| bytes)
    } else {
        std::fs::read(file)
    };
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("error: failed to read {}: {error}", file.display());
            return ExitCode::from(2);
        }
    };

    let verdict = validate(&bytes, target, &environments);

    if json {
        let findings: Vec<_> = verdict
            .findings()
            .iter()
            .map(|f| serde_json::json!({ "code": f.code, "severity": f.severity, "message": offline_message(f, lang) }))
            .collect();
        let output = serde_json::json!({ "accepted": verdict.is_accepted(), "findings": findings });
        println!("{output}");
    } else {
        let outcome = match (verdict.is_accepted(), lang) {
            (true, Lang::En) => "accepted",
            (true, Lang::Nl) => "geaccepteerd",
            (false, Lang::En) => "rejected",
            (false, Lang::Nl) => "afgewezen",
        };
        println!("{}: {outcome} ({environment})", file.display());
        for finding in verdict.findings() {
            println!("  {} {}: {}", finding.severity.as_str(), finding.code, offline_message(finding, lang));
        }
        if let Verdict::Accepted(csr) = &verdict {
            println!("  public key SHA-256: {}", csr.spki_sha256_hex());
        }
    }

    if verdict.is_accepted() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
