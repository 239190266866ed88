//! The harness of the system tests: a fresh database per test, the built `ozo-signer`
//! binary as a child process, and curl and OpenSSL as its clients.
//!
//! Tests use `DATABASE_URL` when it is set and otherwise the private PostgreSQL cluster
//! that `ozo-signer dev` uses. Every address is on 127.0.0.1.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tempfile::TempDir;

pub mod cas;
pub mod fake_cas;

/// The `ozo-signer` binary that `cargo test --workspace` built beside this test.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("tests run from target/<profile>/deps");
    let binary = profile_dir.join("ozo-signer");
    assert!(
        binary.is_file(),
        "{} is missing: run the tests with cargo test --workspace, which builds it",
        binary.display()
    );
    binary
}

/// A database made for one test and dropped by [`TestDb::drop_database`].
pub struct TestDb {
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDb {
    /// Creates a database and applies the migrations with `ozo-signer migrate`, as an
    /// operator does before the first start.
    pub async fn create() -> TestDb {
        let db = TestDb::create_empty().await;
        let migrated = Command::new(binary()).arg("migrate").env("DATABASE_URL", &db.url).output().unwrap();
        assert!(migrated.status.success(), "ozo-signer migrate failed: {}", String::from_utf8_lossy(&migrated.stderr));
        db
    }

    /// Creates a database without any schema.
    pub async fn create_empty() -> TestDb {
        let admin_url = match std::env::var("DATABASE_URL") {
            Ok(url) => url,
            Err(_) => {
                let cluster =
                    tokio::task::spawn_blocking(|| ozo_devdb::ensure_running(&ozo_devdb::default_directory()))
                        .await
                        .unwrap()
                        .expect("the private PostgreSQL cluster starts");
                cluster.url("postgres")
            }
        };
        let name = format!("ozo_test_{}", uuid::Uuid::new_v4().simple());
        let mut url = url::Url::parse(&admin_url).expect("DATABASE_URL is a URL");
        url.set_path(&name);

        let admin = sqlx::PgPool::connect(&admin_url).await.expect("the test PostgreSQL server accepts connections");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
        admin.close().await;
        TestDb { url: url.to_string(), admin_url, name }
    }

    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.url).await.unwrap()
    }

    pub async fn drop_database(self) {
        let admin = sqlx::PgPool::connect(&self.admin_url).await.unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&admin).await.unwrap();
        admin.close().await;
    }
}

/// Reads the address from the service's "serving" log line, a JSON object.
pub fn serving_address(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value["message"] != "serving" {
        return None;
    }
    value["listen"].as_str().map(str::to_owned)
}

/// A running `ozo-signer serve` on a free port of 127.0.0.1, killed when dropped.
pub struct TestServer {
    child: Child,
    pub base_url: String,
    /// The working directory, which contains the local CAs under `data/`.
    pub dir: TempDir,
    pub database_url: String,
    log: mpsc::Receiver<String>,
    inviter: std::sync::OnceLock<String>,
}

impl TestServer {
    pub fn start(database_url: &str) -> TestServer {
        TestServer::start_with_config(database_url, None)
    }

    /// Starts the server with a TOML config, written to `config.toml` in its working
    /// directory, or with the built-in environments when `config` is `None`.
    pub fn start_with_config(database_url: &str, config: Option<&str>) -> TestServer {
        TestServer::start_with_env(database_url, config, &[])
    }

    /// Starts the server like [`TestServer::start_with_config`], with extra environment
    /// variables.
    pub fn start_with_env(database_url: &str, config: Option<&str>, env: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        if let Some(config) = config {
            std::fs::write(dir.path().join("config.toml"), config).unwrap();
            args.splice(0..0, ["--config", "config.toml"]);
        }
        let mut child = Command::new(binary())
            .args(&args)
            .current_dir(dir.path())
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ozo-signer starts");

        // The server logs the address it bound; every log line is kept for the test.
        let stderr = child.stderr.take().unwrap();
        let (sender, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });

        let mut seen = Vec::new();
        let address = loop {
            let line = log
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("ozo-signer did not report its address; log so far:\n{}", seen.join("\n")));
            if let Some(address) = serving_address(&line) {
                break address;
            }
            seen.push(line);
        };

        TestServer {
            child,
            base_url: format!("http://{address}"),
            dir,
            database_url: database_url.to_owned(),
            log,
            inviter: std::sync::OnceLock::new(),
        }
    }

    /// Sends SIGTERM, as the platform does to stop an instance, and waits at most
    /// `limit` for the process to exit. Returns its exit status.
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(sent.success(), "kill -TERM failed");
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "ozo-signer did not stop within {limit:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Runs another `ozo-signer` command against the same database and working directory.
    pub fn command(&self, args: &[&str], stdin: &str) -> Output {
        run_with_stdin(
            Command::new(binary()).args(args).current_dir(self.dir.path()).env("DATABASE_URL", &self.database_url),
            stdin,
        )
    }

    /// Creates an account with the given role and returns an API token for it.
    pub fn operator_token(&self, name: &str, role: &str) -> String {
        let added = self.command(&["user", "add", name, "--role", role], "a long enough password\n");
        assert!(added.status.success(), "user add failed: {}", String::from_utf8_lossy(&added.stderr));
        let token = self.command(&["token", "create", name], "");
        assert!(token.status.success(), "token create failed: {}", String::from_utf8_lossy(&token.stderr));
        String::from_utf8(token.stdout).unwrap().trim().to_owned()
    }

    /// Returns an API token of an operator account `inviter`, made on first use. The operator who
    /// created an invitation may not approve what comes in on it, so tests invite with
    /// this account and approve with their own.
    pub fn inviter(&self) -> String {
        self.inviter.get_or_init(|| self.operator_token("inviter", "operator")).clone()
    }

    /// Approves request `id` with each token in turn and returns the last response.
    pub fn approve(&self, tokens: &[&str], id: &str) -> CurlResponse {
        let url = self.url(&format!("/api/v1/requests/{id}/approve"));
        let mut last = None;
        for token in tokens {
            let response = curl(&["-X", "POST", "-H", &format!("Authorization: Bearer {token}"), &url]);
            assert_eq!(response.status, 200, "approval of {id}: {}", response.body);
            last = Some(response);
        }
        last.expect("at least one token")
    }

    /// Creates an invitation through the API and returns its code.
    pub fn invitation(&self, token: &str, organisation: &str, environments: &[&str]) -> String {
        let body = serde_json::json!({
            "organisation": organisation,
            "contact": format!("it@{}.example", organisation.to_lowercase().replace(' ', "-")),
            "environments": environments,
        });
        let created = curl(&[
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            "Content-Type: application/json",
            "--data",
            &body.to_string(),
            &self.url("/api/v1/invitations"),
        ]);
        assert_eq!(created.status, 201, "invitation: {}", created.body);
        created.json()["code"].as_str().unwrap().to_owned()
    }

    /// Every log line the server wrote so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run_with_stdin(command: &mut Command, stdin: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to run {:?}: {e}", command.get_program()));
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// The status code and body of one curl call.
#[derive(Debug)]
pub struct CurlResponse {
    pub status: u16,
    pub body: String,
}

impl CurlResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Runs curl with `args` and returns the status code and body.
pub fn curl(args: &[&str]) -> CurlResponse {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(output.status.success(), "curl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    CurlResponse { status: status.parse().unwrap(), body: body.to_owned() }
}

/// Runs openssl and panics with its stderr when it fails.
pub fn openssl(dir: &Path, args: &[&str]) -> Output {
    let output = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(output.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// Makes a key and CSR with the OZO guide's command, in `dir`, as `<name>-key.pem` and
/// `<name>.csr`.
pub fn make_csr(dir: &Path, name: &str, subject: &str) -> (PathBuf, PathBuf) {
    let key = format!("{name}-key.pem");
    let csr = format!("{name}.csr");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            subject,
        ],
    );
    (dir.join(key), dir.join(csr))
}

pub const STAGING_SUBJECT: &str = "/CN=connect.zorgverband.nl/O=OZOverbindzorg";
pub const PRODUCTION_SUBJECT: &str = "/CN=zorgverband.nl/O=OZOverbindzorg";

/// A free TCP port on 127.0.0.1. Another process could take it before it is used,
/// which is unlikely on a test machine.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
