//! The files of `deploy/`, checked without a registry or a cluster: every Kubernetes
//! manifest parses and holds what the service needs, every example config passes the
//! built binary's `config check`, and the container and systemd files run the binary as
//! a user other than root.

use std::path::{Path, PathBuf};
use std::process::Command;

use ozo_system_tests::cas::{PRODUCTION_POOL, STAGING_POOL};
use ozo_system_tests::fake_cas::FakeCas;
use ozo_system_tests::*;
use yaml_rust2::{Yaml, YamlLoader};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("deploy")
}

/// Reads every document of every manifest, with the name of its file.
fn manifests() -> Vec<(String, Yaml)> {
    let dir = deploy_dir().join("kubernetes");
    let mut documents = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|extension| extension != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let parsed = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"));
        documents.extend(parsed.into_iter().map(|document| (name.clone(), document)));
    }
    documents
}

fn find<'a>(documents: &'a [(String, Yaml)], kind: &str, name: &str) -> &'a Yaml {
    documents
        .iter()
        .map(|(_, document)| document)
        .find(|document| document["kind"].as_str() == Some(kind) && document["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} named {name} in deploy/kubernetes"))
}

/// Runs `config check` on `toml` with the CA roots it names under `/etc/ozo-signer/`
/// written as real ones to `work`, and the placeholders replaced by valid ids. Returns
/// what it printed.
fn config_check(toml: &str, work: &Path, roots: &FakeCas) -> String {
    let named_roots = toml.lines().filter_map(|line| line.trim().strip_prefix("root_certificate = \"/etc/ozo-signer/"));
    for (index, name) in named_roots.enumerate() {
        let pool = if index % 2 == 0 { STAGING_POOL } else { PRODUCTION_POOL };
        std::fs::write(work.join(name.trim_end_matches('"')), roots.root_pem(pool)).unwrap();
    }
    let toml = toml
        .replace("/etc/ozo-signer/", &format!("{}/", work.display()))
        .replace("\"PROJECT\"", "\"ozo-pki\"")
        .replace("\"REGION\"", "\"europe-west4\"");
    let path = work.join("config.toml");
    std::fs::write(&path, toml).unwrap();
    let output = Command::new(binary()).args(["--config", path.to_str().unwrap(), "config", "check"]).output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{}{printed}", String::from_utf8_lossy(&output.stderr));
    printed
}

#[test]
fn kubernetes_manifests_hold_what_the_service_needs() {
    let documents = manifests();
    assert!(documents.len() >= 7, "{} documents", documents.len());
    for (file, document) in &documents {
        for key in ["apiVersion", "kind"] {
            assert!(document[key].as_str().is_some(), "{file}: a document without {key}");
        }
        assert!(document["metadata"]["name"].as_str().is_some(), "{file}: a document without metadata.name");
    }

    let deployment = find(&documents, "Deployment", "ozo-signer");
    assert_eq!(deployment["spec"]["replicas"].as_i64(), Some(2));
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_ne!(pod["securityContext"]["runAsUser"].as_i64(), Some(0));
    let containers = pod["containers"].as_vec().unwrap();
    let server =
        containers.iter().find(|c| c["name"].as_str() == Some("ozo-signer")).expect("the ozo-signer container");
    let args: Vec<&str> = server["args"].as_vec().unwrap().iter().filter_map(Yaml::as_str).collect();
    assert_eq!(args, ["--config", "/etc/ozo-signer/config.toml", "serve"]);
    assert_eq!(server["readinessProbe"]["httpGet"]["path"].as_str(), Some("/readyz"));
    assert_eq!(server["livenessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
    for resource in ["cpu", "memory"] {
        assert!(!server["resources"]["limits"][resource].is_badvalue(), "no {resource} limit");
    }
    assert_eq!(server["securityContext"]["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(server["securityContext"]["allowPrivilegeEscalation"].as_bool(), Some(false));
    let database =
        &server["env"].as_vec().unwrap().iter().find(|e| e["name"].as_str() == Some("DATABASE_URL")).unwrap();
    assert!(!database["valueFrom"]["secretKeyRef"].is_badvalue(), "DATABASE_URL must come from a Secret");

    // The pod may take the grace period and more before it is killed.
    let config = find(&documents, "ConfigMap", "ozo-signer-config")["data"]["config.toml"].as_str().unwrap();
    let grace = config
        .lines()
        .find_map(|line| line.trim().strip_prefix("shutdown_grace_seconds = "))
        .and_then(|value| value.parse::<i64>().ok())
        .expect("the config sets shutdown_grace_seconds");
    assert!(pod["terminationGracePeriodSeconds"].as_i64().unwrap() > grace);

    // The metrics port of the config is the one the Prometheus annotation names, and the
    // Service sends clients to the service's port only.
    let metrics_port = config
        .lines()
        .find_map(|line| line.trim().strip_prefix("metrics_listen = \"0.0.0.0:"))
        .and_then(|rest| rest.trim_end_matches('"').parse::<i64>().ok())
        .expect("the config sets metrics_listen");
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some(metrics_port.to_string().as_str()));
    let service = find(&documents, "Service", "ozo-signer");
    let ports = service["spec"]["ports"].as_vec().unwrap();
    assert!(ports
        .iter()
        .all(|port| port["targetPort"].as_str() == Some("http") || port["targetPort"].as_i64() == Some(8080)));

    let job = find(&documents, "Job", "ozo-signer-migrate");
    let migrate = &job["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = migrate["args"].as_vec().unwrap().iter().filter_map(Yaml::as_str).collect();
    assert_eq!(args.last(), Some(&"migrate"));

    let account = find(&documents, "ServiceAccount", "ozo-signer");
    assert!(account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].as_str().is_some());
    assert_eq!(find(&documents, "PodDisruptionBudget", "ozo-signer")["spec"]["minAvailable"].as_i64(), Some(1));
}

#[test]
fn example_configs_pass_config_check() {
    let roots = FakeCas::start();
    let work = tempfile::tempdir().unwrap();
    let documents = manifests();
    let in_configmap = find(&documents, "ConfigMap", "ozo-signer-config")["data"]["config.toml"].as_str().unwrap();

    let printed = config_check(in_configmap, work.path(), &roots);
    assert!(
        printed.contains("environment production: CN=zorgverband.nl, O=OZOverbindzorg; 2 approval(s)"),
        "{printed}"
    );
    assert!(printed.contains("metrics: 0.0.0.0:9090"), "{printed}");
    for file in ["ozo-signer.production.toml", "ozo-signer.staging.toml", "ozo-signer.example.toml"] {
        let text = std::fs::read_to_string(deploy_dir().join(file)).unwrap();
        let printed = config_check(&text, work.path(), &roots);
        assert!(printed.contains("the configuration is valid"), "{file}: {printed}");
    }
}

#[test]
fn container_and_systemd_run_the_binary_as_a_user() {
    let containerfile = std::fs::read_to_string(deploy_dir().join("Containerfile")).unwrap();
    let stages: Vec<&str> = containerfile.split("\nFROM ").skip(1).collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let runtime = stages[1];
    let copies: Vec<&str> = runtime.lines().filter(|line| line.starts_with("COPY")).collect();
    assert_eq!(copies, ["COPY --from=builder /out/ozo-signer /usr/local/bin/ozo-signer"], "the binary only");
    let user = runtime.lines().find_map(|line| line.strip_prefix("USER ")).expect("a USER line");
    assert!(!user.starts_with('0'), "runs as {user}");
    assert!(!user.starts_with("root"), "runs as {user}");
    assert!(stages[0].contains("cargo build --release --locked -p ozo-signer"));

    let ignore = std::fs::read_to_string(deploy_dir().parent().unwrap().join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|line| line == "*"), ".dockerignore starts from nothing");

    let unit = std::fs::read_to_string(deploy_dir().join("systemd/ozo-signer.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/ozo-signer --config /etc/ozo-signer/config.toml serve"));
    assert!(unit.lines().any(|line| line.starts_with("User=") && line != "User=root"));
    assert!(unit.lines().any(|line| line == "NoNewPrivileges=yes" || line == "NoNewPrivileges=true"), "{unit}");
    let migrate = std::fs::read_to_string(deploy_dir().join("systemd/ozo-signer-migrate.service")).unwrap();
    assert!(migrate.contains("--config /etc/ozo-signer/config.toml migrate"));
}
