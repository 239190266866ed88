//! `ozo-signer csr check`: the service's validation, offline.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use ozo_domain::{validate, Lang, Verdict};

use crate::config::Config;

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
        let findings: Vec<_> = verdict.findings().iter().map(|f| f.to_json(lang)).collect();
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
            println!("  {} {}: {}", finding.severity.as_str(), finding.code, finding.message(lang));
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
