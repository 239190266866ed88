//! Runs the fake CAS of the system tests as a process, for trying the google-cas backend
//! by hand: it serves on 127.0.0.1, writes each pool's root certificate, and prints the
//! config lines to use.
//!
//! `cargo run -p ozo-system-tests --bin fake-cas -- --port 8091 --dir /tmp/fake-cas`

use std::path::PathBuf;

use ozo_system_tests::fake_cas::FakeCas;

const PROJECT: &str = "ozo-dev";
const LOCATION: &str = "europe-west4";
const ENVIRONMENTS: [(&str, &str); 2] = [("staging", "connect.zorgverband.nl"), ("production", "zorgverband.nl")];

fn main() -> std::process::ExitCode {
    let mut port = 8091u16;
    let mut dir = std::env::temp_dir().join("ozo-fake-cas");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            println!("usage: fake-cas [--port PORT] [--dir DIRECTORY]\n\nServes a fake Google CA Service on 127.0.0.1:PORT (default 8091), writes each pool's root to DIRECTORY, and prints the config to use.");
            return std::process::ExitCode::SUCCESS;
        }
        let value = args.next();
        match (arg.as_str(), value) {
            ("--port", Some(value)) => match value.parse() {
                Ok(parsed) => port = parsed,
                Err(_) => return usage(&format!("--port expects a port number, found {value:?}")),
            },
            ("--dir", Some(value)) => dir = PathBuf::from(value),
            _ => return usage(&format!("unknown or incomplete argument {arg:?}")),
        }
    }

    let fake = match FakeCas::start_on(port) {
        Ok(fake) => fake,
        Err(error) => return usage(&format!("failed to bind 127.0.0.1:{port}: {error}")),
    };
    if let Err(error) = std::fs::create_dir_all(&dir) {
        return usage(&format!("failed to create {}: {error}", dir.display()));
    }

    println!("fake CAS serving on {}\n\n# Environment sections for an ozo-signer config file:", fake.endpoint());
    for (environment, common_name) in ENVIRONMENTS {
        let pool = format!("projects/{PROJECT}/locations/{LOCATION}/caPools/ozo-clients-{environment}");
        let root = dir.join(format!("{environment}-root.pem"));
        if let Err(error) = std::fs::write(&root, fake.root_pem(&pool)) {
            return usage(&format!("failed to write {}: {error}", root.display()));
        }
        println!(
            "\n[environments.{environment}]\ncommon_name = \"{common_name}\"\norganization = \"OZOverbindzorg\"\n\n[environments.{environment}.ca]\nbackend = \"google-cas\"\nproject = \"{PROJECT}\"\nlocation = \"{LOCATION}\"\n\
             ca_pool = \"ozo-clients-{environment}\"\nroot_certificate = \"{}\"\ncredentials = \"anonymous\"\nendpoint = \"{}\"",
            root.display(),
            fake.endpoint()
        );
    }
    println!("\nThe roots change on every start. Stop with Ctrl-C.");

    loop {
        std::thread::park();
    }
}

fn usage(error: &str) -> std::process::ExitCode {
    eprintln!("fake-cas: {error}\nusage: fake-cas [--port PORT] [--dir DIRECTORY]");
    std::process::ExitCode::from(2)
}
