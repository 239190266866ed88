//! The client's side of intake, black box: invitations and their limits, rate limits,
//! unverified uploads, the upload form and the status page.

use std::process::Command;

use ozo_system_tests::*;

/// The built-in environments, with tight limits and unverified staging uploads.
const CONFIG: &str = r#"
data_dir = "data"

[rate_limits]
uploads_per_address_per_10_minutes = 50
uploads_per_invitation_per_10_minutes = 3
status_pages_per_address_per_minute = 50

[environments.staging]
common_name = "connect.zorgverband.nl"
organization = "OZOverbindzorg"
test_url = "https://nuts-node-ozo-int.staging.ozo.headease.nl/status"
allow_uploads_without_invitation = true
[environments.staging.ca]
backend = "local"

[environments.production]
common_name = "zorgverband.nl"
organization = "OZOverbindzorg"
test_url = "https://nuts-node-ozo-int.ozo.headease.nl/status"
[environments.production.ca]
backend = "local"
"#;

fn upload(server: &TestServer, csr: &std::path::Path, query: &str) -> CurlResponse {
    curl(&["-X", "POST", "--data-binary", &format!("@{}", csr.display()), &server.url(&format!("/api/v1/requests?{query}"))])
}

#[tokio::test(flavor = "multi_thread")]
async fn invitation_codes_are_checked() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    let token = server.operator_token("ivo", "operator");
    let code = server.invitation(&server.inviter(), "Wijkzorg Zuid", &["staging"]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (_, staging_csr) = make_csr(dir, "a", STAGING_SUBJECT);
    let (_, second_csr) = make_csr(dir, "b", STAGING_SUBJECT);
    let (_, production_csr) = make_csr(dir, "c", PRODUCTION_SUBJECT);

    let unknown = upload(&server, &staging_csr, "environment=staging&invitation=AAAA-BBBB-CCCC-DDDD-EEEE");
    assert_eq!(unknown.status, 403);
    assert!(unknown.json()["detail"].as_str().unwrap().contains("invitation code is unknown"), "{}", unknown.body);

    let other_environment = upload(&server, &production_csr, &format!("environment=production&invitation={code}"));
    assert_eq!(other_environment.status, 403);
    assert!(other_environment.json()["detail"].as_str().unwrap().contains("not for production; it is for: staging"), "{}", other_environment.body);

    // A rejected CSR does not use the invitation up; an accepted one does. The code
    // works in lower case and without dashes too.
    let rejected = upload(&server, &production_csr, &format!("environment=staging&invitation={code}"));
    assert_eq!(rejected.status, 422);
    let relaxed_code = code.replace('-', "").to_lowercase();
    let accepted = upload(&server, &staging_csr, &format!("environment=staging&invitation={relaxed_code}"));
    assert_eq!(accepted.status, 201, "{}", accepted.body);
    assert_eq!(accepted.json()["organisation"], "Wijkzorg Zuid");
    assert_eq!(accepted.json()["contact"], "it@wijkzorg-zuid.example");

    let used = upload(&server, &second_csr, &format!("environment=staging&invitation={code}"));
    assert_eq!(used.status, 403);
    assert!(used.json()["detail"].as_str().unwrap().contains("already used for a staging request"), "{}", used.body);

    // Withdrawn and expired codes get their own messages.
    let withdrawn_code = server.invitation(&server.inviter(), "Wijkzorg Noord", &["staging"]);
    let listed = curl(&["-H", &format!("Authorization: Bearer {token}"), &server.url("/api/v1/invitations")]);
    let invitations = listed.json()["invitations"].as_array().unwrap().clone();
    assert_eq!(invitations.len(), 2);
    assert!(invitations.iter().all(|i| i.get("code").is_none()), "codes are not stored, so not listed");
    let id = invitations.iter().find(|i| i["organisation"] == "Wijkzorg Noord").unwrap()["id"].as_str().unwrap().to_owned();
    let withdraw = curl(&["-X", "POST", "-H", &format!("Authorization: Bearer {token}"), &server.url(&format!("/api/v1/invitations/{id}/withdraw"))]);
    assert_eq!(withdraw.status, 200, "{}", withdraw.body);
    let withdrawn = upload(&server, &second_csr, &format!("environment=staging&invitation={withdrawn_code}"));
    assert_eq!(withdrawn.status, 403);
    assert!(withdrawn.json()["detail"].as_str().unwrap().contains("withdrawn"), "{}", withdrawn.body);

    let expired_code = server.invitation(&server.inviter(), "Wijkzorg West", &["staging"]);
    let pool = db.pool().await;
    sqlx::query("UPDATE invitations SET expires_at = '2026-01-31 12:00:00+00' WHERE organisation = 'Wijkzorg West'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let expired = upload(&server, &second_csr, &format!("environment=staging&invitation={expired_code}"));
    assert_eq!(expired.status, 403);
    assert!(expired.json()["detail"].as_str().unwrap().contains("expired on 2026-01-31"), "{}", expired.body);

    // The command line manages invitations too.
    let created = server.command(&["invitation", "create", "--organisation", "Apotheek Oost", "--contact", "it@oost.example", "--environment", "production"], "");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let created = String::from_utf8(created.stdout).unwrap();
    let cli_code = created.lines().find_map(|line| line.strip_prefix("code: ")).unwrap().to_owned();
    let by_cli = upload(&server, &production_csr, &format!("environment=production&invitation={cli_code}"));
    assert_eq!(by_cli.status, 201, "{}", by_cli.body);
    let list = server.command(&["invitation", "list"], "");
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(list.contains("Apotheek Oost\tproduction\tused: production"), "{list}");

    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_are_rate_limited_per_invitation() {
    let db = TestDb::create().await;
    let server = TestServer::start_with_config(&db.url, Some(CONFIG));
    server.operator_token("rita", "operator");
    let code = server.invitation(&server.inviter(), "Snelle Zorg", &["staging"]);
    let work = tempfile::tempdir().unwrap();
    let (_, production_csr) = make_csr(work.path(), "p", PRODUCTION_SUBJECT);

    // Three rejected uploads fill the window of this invitation.
    for _ in 0..3 {
        assert_eq!(upload(&server, &production_csr, &format!("environment=staging&invitation={code}")).status, 422);
    }
    let output = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "-X", "POST", "--data-binary"])
        .arg(format!("@{}", production_csr.display()))
        .arg(server.url(&format!("/api/v1/requests?environment=staging&invitation={code}")))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&output.stdout).to_ascii_lowercase();
    assert!(headers.starts_with("http/1.1 429"), "{headers}");
    let retry_after: u64 = headers
        .lines()
        .find_map(|line| line.strip_prefix("retry-after: "))
        .expect("a Retry-After header")
        .trim()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry_after), "{retry_after}");

    // Another invitation from the same address is not limited.
    let other = server.invitation(&server.inviter(), "Andere Zorg", &["staging"]);
    assert_eq!(upload(&server, &production_csr, &format!("environment=staging&invitation={other}")).status, 422);

    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_client_counted_only_behind_trusted_proxy() {
    let db = TestDb::create().await;
    let limited = CONFIG.replace("uploads_per_address_per_10_minutes = 50", "uploads_per_address_per_10_minutes = 2");
    let behind_proxy = format!("trusted_proxies = [\"127.0.0.1\", \"::1\"]\n{limited}");
    let work = tempfile::tempdir().unwrap();
    let (_, production_csr) = make_csr(work.path(), "p", PRODUCTION_SUBJECT);
    let status_from = |server: &TestServer, forwarded_for: &str| {
        let header = format!("X-Forwarded-For: {forwarded_for}");
        let url = server.url("/api/v1/requests?environment=staging&organisation=Zorg&contact=it%40zorg.example");
        curl(&["-X", "POST", "-H", &header, "--data-binary", &format!("@{}", production_csr.display()), &url]).status
    };

    // Behind a trusted proxy each forwarded client has its own limit of 2. An address the
    // client wrote in front of the proxy's entry changes nothing.
    let server = TestServer::start_with_config(&db.url, Some(&behind_proxy));
    let statuses: Vec<u16> = ["192.0.2.10", "192.0.2.10", "192.0.2.11, 192.0.2.10", "192.0.2.11", "192.0.2.11"]
        .iter()
        .map(|forwarded_for| status_from(&server, forwarded_for))
        .collect();
    assert_eq!(statuses, [422, 422, 429, 422, 422]);
    drop(server);

    // Without trusted proxies the header is ignored, and the peer 127.0.0.1 has the limit.
    let server = TestServer::start_with_config(&db.url, Some(&limited));
    let statuses: Vec<u16> =
        ["192.0.2.20", "192.0.2.21", "192.0.2.22"].iter().map(|forwarded_for| status_from(&server, forwarded_for)).collect();
    assert_eq!(statuses, [422, 422, 429]);

    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unverified_upload_where_allowed() {
    let db = TestDb::create().await;
    let server = TestServer::start_with_config(&db.url, Some(CONFIG));
    let work = tempfile::tempdir().unwrap();
    let (_, staging_csr) = make_csr(work.path(), "s", STAGING_SUBJECT);
    let (_, production_csr) = make_csr(work.path(), "p", PRODUCTION_SUBJECT);

    let staging = upload(&server, &staging_csr, "environment=staging&organisation=Proef%20BV&contact=test%40proef.example");
    assert_eq!(staging.status, 201, "{}", staging.body);
    assert_eq!(staging.json()["unverified"], true);
    assert_eq!(staging.json()["organisation"], "Proef BV");
    assert!(staging.json()["invitation_id"].is_null());

    let production = upload(&server, &production_csr, "environment=production&organisation=Proef%20BV&contact=test%40proef.example");
    assert_eq!(production.status, 403, "production always needs an invitation: {}", production.body);

    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_page_follows_request() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    let token = server.operator_token("stan", "operator");
    let second = server.operator_token("tess", "operator");
    let code = server.invitation(&server.inviter(), "Revalidatie Centrum", &["production"]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (_, csr) = make_csr(dir, "client", PRODUCTION_SUBJECT);

    let uploaded = upload(&server, &csr, &format!("environment=production&invitation={code}"));
    assert_eq!(uploaded.status, 201);
    let status_path = uploaded.json()["status_page_url"].as_str().unwrap().to_owned();
    let id = uploaded.json()["id"].as_str().unwrap().to_owned();

    let pending = curl(&[&server.url(&status_path)]);
    assert_eq!(pending.status, 200);
    assert!(pending.body.contains("Waiting for an OZO operator"), "{}", pending.body);
    assert!(pending.body.contains("Revalidatie Centrum"));
    assert!(!pending.body.contains("client-cert.pem"), "no download before issuance");

    assert_eq!(server.approve(&[&token, &second], &id).json()["status"], "issued");

    let issued = curl(&["-H", "Accept-Language: nl", &server.url(&status_path)]);
    assert!(issued.body.contains("Het certificaat is klaar."), "{}", issued.body);
    assert!(issued.body.contains("curl --cert client-cert.pem --key client-key.pem https://nuts-node-ozo-int.ozo.headease.nl/status"), "{}", issued.body);
    for file in ["client-cert.pem", "chain.pem", "ca-cert.pem"] {
        let download = curl(&["-o", &dir.join(file).display().to_string(), &server.url(&format!("{status_path}/{file}"))]);
        assert_eq!(download.status, 200, "{file}");
    }
    let verified = openssl(dir, &["verify", "-CAfile", "ca-cert.pem", "client-cert.pem"]);
    assert!(String::from_utf8_lossy(&verified.stdout).contains("client-cert.pem: OK"));
    assert_eq!(std::fs::read(dir.join("chain.pem")).unwrap(), std::fs::read(dir.join("ca-cert.pem")).unwrap());

    // Another token shows nothing, and the request id is no status token.
    let guessed = curl(&["-H", "Accept-Language: nl", &server.url("/status/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]);
    assert_eq!(guessed.status, 404);
    assert!(!guessed.body.contains("Revalidatie"));
    assert!(guessed.body.starts_with("<!doctype html>"), "a browser gets an error page: {}", guessed.body);
    assert!(guessed.body.contains("Geen aanvraag heeft deze statuspagina"), "{}", guessed.body);
    let by_id = curl(&[&server.url(&format!("/status/{id}"))]);
    assert_eq!(by_id.status, 404);

    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_form_keeps_input_and_lists_findings() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    server.operator_token("uma", "operator");
    let code = server.invitation(&server.inviter(), "Huisarts Centrum", &["staging"]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (_, good) = make_csr(dir, "good", STAGING_SUBJECT);
    let (_, wrong) = make_csr(dir, "wrong", PRODUCTION_SUBJECT);
    let (leaked_key, _) = make_csr(dir, "leaked", STAGING_SUBJECT);

    let form = curl(&[&server.url(&format!("/upload?invitation={code}"))]);
    assert_eq!(form.status, 200);
    assert!(form.body.contains("Huisarts Centrum"), "the form names the invited organisation");
    assert!(form.body.contains("Never send your private key"));
    let switch = format!("href=\"/upload?invitation={code}&#38;lang=nl\"");
    assert!(form.body.contains(&switch) || form.body.contains(&switch.replace("&#38;", "&amp;")), "the language link keeps the invitation");
    assert!(form.body.contains("-subj &quot;/CN=connect.zorgverband.nl/O=OZOverbindzorg&quot;") || form.body.contains("-subj &#34;/CN=connect.zorgverband.nl/O=OZOverbindzorg&#34;"), "{}", form.body);

    let wrong_text = std::fs::read_to_string(&wrong).unwrap();
    let rejected = curl(&[
        "-F", &format!("invitation={code}"), "-F", "environment=staging", "-F", &format!("csr={wrong_text}"),
        &server.url("/upload"),
    ]);
    assert_eq!(rejected.status, 422);
    assert!(rejected.body.contains("wrong-environment"), "{}", rejected.body);
    let first_line = wrong_text.lines().nth(1).unwrap();
    assert!(rejected.body.contains(first_line), "the pasted CSR is kept");
    assert!(rejected.body.contains(&format!("value=\"{code}\"")), "the invitation code is kept");

    // A private key is never sent back.
    let key_text = std::fs::read_to_string(&leaked_key).unwrap();
    let leaked = curl(&["-F", &format!("invitation={code}"), "-F", "environment=staging", "-F", &format!("csr={key_text}"), &server.url("/upload")]);
    assert_eq!(leaked.status, 422);
    assert!(leaked.body.contains("removed from this form"), "{}", leaked.body);
    for line in key_text.lines().filter(|line| !line.starts_with("-----")) {
        assert!(!leaked.body.contains(line), "the page repeats the private key");
    }

    let accepted = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-F"])
        .arg(format!("invitation={code}"))
        .args(["-F", "environment=staging", "-F"])
        .arg(format!("csr_file=@{}", good.display()))
        .arg(server.url("/upload"))
        .output()
        .unwrap();
    let answer = String::from_utf8(accepted.stdout).unwrap();
    assert!(answer.starts_with("303 "), "{answer}");
    assert!(answer.contains("/status/"), "{answer}");

    drop(server);
    db.drop_database().await;
}
