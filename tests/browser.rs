//! The whole journey in headless Chromium: an operator invites an organisation, its
//! client uploads a bad CSR (findings shown, input kept) and then a good one, follows the
//! status page, the operator approves, and the client downloads the certificate.
//! Screenshots of each step go to `target/browser-artifacts/`.
//!
//! Needs Debian's `chromium` and `chromium-driver`, which `.ci/run` installs.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use ozo_system_tests::*;

struct ChromeDriver {
    child: Child,
    url: String,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_chromedriver() -> ChromeDriver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver runs: install Debian's chromium-driver package");
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return ChromeDriver { child, url: format!("http://127.0.0.1:{port}") };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("chromedriver did not listen on port {port}");
}

/// Opens a headless Chromium session that sends traffic only to the pages it is sent
/// to: background networking, updates, sync and the like are off.
async fn browser(driver: &ChromeDriver, profile: &std::path::Path) -> Client {
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-quic",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--no-pings",
        "--metrics-recording-only",
        "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
        "--window-size=1280,1000",
    ];
    let mut args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let mut capabilities = serde_json::Map::new();
    capabilities
        .insert("goog:chromeOptions".to_owned(), serde_json::json!({ "binary": "/usr/bin/chromium", "args": args }));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("chromedriver starts a Chromium session")
}

fn artifacts_dir() -> PathBuf {
    let dir = binary().parent().and_then(|p| p.parent()).unwrap().join("browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    std::fs::write(artifacts_dir().join(format!("{name}.png")), png).unwrap();
}

/// Finds an element, waiting for it: a click on a submit button returns before the
/// next page has loaded, so every step waits for an element of the page it expects.
async fn element(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

/// Waits until the browser is on a page whose path starts with `prefix`, and returns
/// its URL. Under load the URL can lag behind the elements of the new page.
async fn wait_for_path(client: &Client, prefix: &str) -> url::Url {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let url = client.current_url().await.unwrap();
        if url.path().starts_with(prefix) {
            return url;
        }
        assert!(std::time::Instant::now() < deadline, "still on {url}, expected {prefix}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Signs in on the login page and waits for the queue.
async fn sign_in(client: &Client, server: &TestServer, name: &str) {
    client.goto(&server.url("/login")).await.unwrap();
    element(client, "#name").await.send_keys(name).await.unwrap();
    element(client, "#password").await.send_keys("a long enough password").await.unwrap();
    element(client, "form button[type=submit]").await.click().await.unwrap();
    wait_for_path(client, "/operator/requests").await;
}

async fn text_of(client: &Client, css: &str) -> String {
    element(client, css).await.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn invitation_to_download_in_chromium() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    for name in ["olivia", "pieter"] {
        let added = server.command(&["user", "add", name, "--role", "operator"], "a long enough password\n");
        assert!(added.status.success());
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (_, good) = make_csr(dir, "client", STAGING_SUBJECT);
    let (_, bad) = make_csr(dir, "other", PRODUCTION_SUBJECT);
    let good_text = std::fs::read_to_string(&good).unwrap();
    let bad_text = std::fs::read_to_string(&bad).unwrap();

    let driver = start_chromedriver();
    let operator = browser(&driver, &dir.join("operator-profile")).await;
    let client = browser(&driver, &dir.join("client-profile")).await;

    // The operator signs in and invites the organisation for staging.
    sign_in(&operator, &server, "olivia").await;
    // Only a signed-in operator's pages link to the invitations.
    element(&operator, "nav a[href='/operator/invitations']").await;

    operator.goto(&server.url("/operator/invitations")).await.unwrap();
    element(&operator, "#organisation").await.send_keys("Zorggroep Rivierenland").await.unwrap();
    element(&operator, "#contact").await.send_keys("ict@rivierenland.example").await.unwrap();
    element(&operator, "#environment-staging").await.click().await.unwrap();
    element(&operator, "#invitation-form button[type=submit]").await.click().await.unwrap();
    let link = element(&operator, "#invitation-link").await.attr("href").await.unwrap().unwrap();
    assert!(link.contains("/upload?invitation="), "{link}");
    screenshot(&operator, "1-operator-invitation").await;

    // The client follows the link and uploads a CSR made for production.
    client.goto(&link).await.unwrap();
    assert_eq!(text_of(&client, "#invited-organisation").await, "Zorggroep Rivierenland");
    screenshot(&client, "2-client-upload-form").await;
    element(&client, "#csr").await.send_keys(&bad_text).await.unwrap();
    element(&client, "#submit").await.click().await.unwrap();
    let findings = text_of(&client, "#findings").await;
    assert!(findings.contains("wrong-environment"), "{findings}");
    assert!(findings.contains("This CSR is for production"), "{findings}");
    let kept = element(&client, "#csr").await.prop("value").await.unwrap().unwrap();
    assert_eq!(kept.trim(), bad_text.trim(), "the pasted CSR is kept");
    let kept_code = element(&client, "#invitation").await.prop("value").await.unwrap().unwrap();
    assert!(link.ends_with(&kept_code), "the invitation code is kept");
    screenshot(&client, "3-client-findings").await;

    // The corrected CSR is accepted and the client lands on its status page.
    let textarea = element(&client, "#csr").await;
    textarea.clear().await.unwrap();
    textarea.send_keys(&good_text).await.unwrap();
    element(&client, "#submit").await.click().await.unwrap();
    // Only the status page has a #status element.
    element(&client, "#status").await;
    let status_url = wait_for_path(&client, "/status/").await;
    assert_eq!(text_of(&client, "#status").await, "pending");
    screenshot(&client, "4-client-status-pending").await;

    // Olivia invited the organisation, so the page offers her no approval.
    operator.goto(&server.url("/operator/requests")).await.unwrap();
    element(&operator, "tbody tr td a").await.click().await.unwrap();
    let blocked = text_of(&operator, "#approval-blocked").await;
    assert!(blocked.contains("another operator must approve it"), "{blocked}");
    assert!(operator.find(Locator::Css("form[action$='/approve']")).await.is_err(), "no approve form for the inviter");
    let page = operator.source().await.unwrap();
    assert!(page.contains("Zorggroep Rivierenland"));
    let request_path = wait_for_path(&operator, "/operator/requests/").await.path().to_owned();
    assert!(text_of(&operator, "#approvals").await.starts_with("0 / 1"));

    // Pieter, a second operator, approves it from the queue.
    let approver = browser(&driver, &dir.join("approver-profile")).await;
    sign_in(&approver, &server, "pieter").await;
    approver.goto(&server.url(&request_path)).await.unwrap();
    element(&approver, "input[name=confirm]").await.click().await.unwrap();
    element(&approver, "form[action$='/approve'] button[type=submit]").await.click().await.unwrap();
    approver
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("span.status-issued"))
        .await
        .unwrap_or_else(|e| panic!("the request page shows the issued status: {e}"));
    assert!(text_of(&approver, "#approvals").await.starts_with("1 / 1: pieter"));
    operator.goto(&server.url(&request_path)).await.unwrap();
    element(&operator, "span.status-issued").await;
    screenshot(&operator, "5-operator-request-issued").await;

    // The client reloads the status page and downloads the certificate.
    client.refresh().await.unwrap();
    assert_eq!(text_of(&client, "#status").await, "issued");
    let curl_command = text_of(&client, "#curl-command").await;
    assert_eq!(
        curl_command,
        "curl --cert client-cert.pem --key client-key.pem https://nuts-node-ozo-int.staging.ozo.headease.nl/status"
    );
    screenshot(&client, "6-client-status-issued").await;
    for file in ["client-cert.pem", "ca-cert.pem"] {
        let href =
            element(&client, &format!("#downloads a[href$='/{file}']")).await.attr("href").await.unwrap().unwrap();
        let url = status_url.join(&href).unwrap();
        let download = curl(&["-o", &dir.join(file).display().to_string(), url.as_str()]);
        assert_eq!(download.status, 200, "{file}");
    }
    let verified = openssl(dir, &["verify", "-CAfile", "ca-cert.pem", "client-cert.pem"]);
    assert!(String::from_utf8_lossy(&verified.stdout).contains("client-cert.pem: OK"));

    approver.close().await.unwrap();
    operator.close().await.unwrap();
    client.close().await.unwrap();
    drop(server);
    db.drop_database().await;
}

/// Invites the organisation for production and uploads a CSR on that invitation through
/// the API, as its client would; returns the request id.
fn upload_production(server: &TestServer, dir: &std::path::Path, name: &str) -> String {
    let code = server.invitation(&server.inviter(), "Ziekenhuis Oost", &["production"]);
    let (_, csr) = make_csr(dir, name, PRODUCTION_SUBJECT);
    let url = server.url(&format!("/api/v1/requests?environment=production&invitation={code}"));
    let upload = curl(&["-X", "POST", "--data-binary", &format!("@{}", csr.display()), &url]);
    assert_eq!(upload.status, 201, "{}", upload.body);
    upload.json()["id"].as_str().unwrap().to_owned()
}

/// Ticks the confirmation and submits the approve form of the open request page.
async fn approve_on_page(client: &Client) {
    element(client, "input[name=confirm]").await.click().await.unwrap();
    element(client, "form[action$='/approve'] button[type=submit]").await.click().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn four_eyes_in_chromium() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    for (name, role) in [("anna", "operator"), ("bart", "operator"), ("carla", "auditor")] {
        let added = server.command(&["user", "add", name, "--role", role], "a long enough password\n");
        assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let approved_id = upload_production(&server, dir, "first");
    let denied_id = upload_production(&server, dir, "second");
    let approved_path = format!("/operator/requests/{approved_id}");
    let denied_path = format!("/operator/requests/{denied_id}");

    let driver = start_chromedriver();
    let anna = browser(&driver, &dir.join("anna-profile")).await;
    let bart = browser(&driver, &dir.join("bart-profile")).await;
    let carla = browser(&driver, &dir.join("carla-profile")).await;

    // Anna approves the first request from the queue: one of the two approvals.
    sign_in(&anna, &server, "anna").await;
    let queue = text_of(&anna, "main").await;
    assert!(queue.contains("Ziekenhuis Oost"), "{queue}");
    assert!(queue.contains("0 / 2"), "the queue shows the approvals so far: {queue}");
    screenshot(&anna, "7-operator-queue").await;
    anna.goto(&server.url(&approved_path)).await.unwrap();
    let page = text_of(&anna, "main").await;
    assert!(page.contains("CN=zorgverband.nl, O=OZOverbindzorg"), "the decoded subject: {page}");
    assert!(page.contains("ecdsa-with-SHA256"), "the signature algorithm: {page}");
    let related = text_of(&anna, "#related").await;
    assert!(
        related.contains("production") && related.contains("pending"),
        "the organisation's other request: {related}"
    );
    approve_on_page(&anna).await;
    let notice = text_of(&anna, "p.notice").await;
    assert!(notice.contains("Your approval is recorded"), "{notice}");
    assert!(text_of(&anna, "#approvals").await.starts_with("1 / 2: anna"));
    assert_eq!(text_of(&anna, "span.status").await, "pending");

    // Anna cannot approve twice: the page explains this instead of offering the form.
    let blocked = text_of(&anna, "#approval-blocked").await;
    assert!(blocked.contains("You approved this request"), "{blocked}");
    assert!(anna.find(Locator::Css("form[action$='/approve']")).await.is_err());
    screenshot(&anna, "8-operator-request-one-approval").await;

    // Carla, an auditor, reads the request but has no form to approve it.
    sign_in(&carla, &server, "carla").await;
    carla.goto(&server.url(&approved_path)).await.unwrap();
    assert!(text_of(&carla, "#approvals").await.starts_with("1 / 2: anna"));
    assert!(carla.find(Locator::Css("form[action$='/approve']")).await.is_err(), "an auditor sees no approve form");
    assert!(carla.find(Locator::Css("form[action$='/deny']")).await.is_err(), "an auditor sees no deny form");
    assert!(
        carla.find(Locator::Css("nav a[href='/operator/invitations']")).await.is_err(),
        "an auditor's navigation has no invitations link"
    );
    screenshot(&carla, "9-auditor-request").await;

    // Bart gives the second approval, and the certificate is issued.
    sign_in(&bart, &server, "bart").await;
    bart.goto(&server.url(&approved_path)).await.unwrap();
    approve_on_page(&bart).await;
    bart.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("span.status-issued"))
        .await
        .unwrap_or_else(|e| panic!("the request page shows the issued status: {e}"));
    let approvals = text_of(&bart, "#approvals").await;
    assert!(approvals.starts_with("2 / 2: anna"), "{approvals}");
    assert!(approvals.contains("bart"), "{approvals}");
    screenshot(&bart, "10-operator-request-issued-by-two").await;

    // Bart denies the second request with a reason, which the page then shows.
    bart.goto(&server.url(&denied_path)).await.unwrap();
    element(&bart, "#reason").await.send_keys("The organisation asked for one certificate only.").await.unwrap();
    element(&bart, "form[action$='/deny'] button[type=submit]").await.click().await.unwrap();
    bart.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("span.status-denied"))
        .await
        .unwrap_or_else(|e| panic!("the request page shows the denied status: {e}"));
    assert!(text_of(&bart, "main").await.contains("The organisation asked for one certificate only."));
    screenshot(&bart, "11-operator-request-denied").await;

    let request = curl(&[&server.url(&format!("/api/v1/requests/{approved_id}"))]).json();
    assert_eq!(request["status"], "issued");
    assert_eq!(request["approvals"], 2);

    for client in [anna, bart, carla] {
        client.close().await.unwrap();
    }
    drop(server);
    db.drop_database().await;
}
