//! The operator pages, driven with curl and a cookie jar: sign in, find the request in
//! the queue, approve it with the form's CSRF token, sign out.

use ozo_system_tests::*;

fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page has a CSRF field")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_signs_in_and_approves() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    server.operator_token("erin", "operator");
    let code = server.invitation(&server.inviter(), "GGZ Oost", &["staging"]);
    let work = tempfile::tempdir().unwrap();
    let jar = work.path().join("cookies.txt").display().to_string();
    let (_key, csr) = make_csr(work.path(), "client", STAGING_SUBJECT);

    let upload = curl(&[
        "-X", "POST", "--data-binary", &format!("@{}", csr.display()),
        &server.url(&format!("/api/v1/requests?environment=staging&invitation={code}")),
    ]);
    assert_eq!(upload.status, 201, "{}", upload.body);
    let id = upload.json()["id"].as_str().unwrap().to_owned();

    // Without a session the queue sends the visitor to the login page.
    let anonymous = curl(&[&server.url("/operator/requests")]);
    assert_eq!(anonymous.status, 303);

    let wrong = curl(&["-c", &jar, "--data-urlencode", "name=erin", "--data-urlencode", "password=wrong password!", &server.url("/login")]);
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("password is wrong"), "{}", wrong.body);

    let login = curl(&["-c", &jar, "--data-urlencode", "name=erin", "--data-urlencode", "password=a long enough password", &server.url("/login")]);
    assert_eq!(login.status, 303, "{}", login.body);
    let cookies = std::fs::read_to_string(&jar).unwrap();
    assert!(cookies.contains("#HttpOnly_"), "the session cookie is HttpOnly: {cookies}");

    let queue = curl(&["-b", &jar, &server.url("/operator/requests")]);
    assert_eq!(queue.status, 200);
    assert!(queue.body.contains("GGZ Oost"), "{}", queue.body);
    assert!(queue.body.contains(&format!("/operator/requests/{id}")));

    let page = curl(&["-b", &jar, "-H", "Accept-Language: nl", &server.url(&format!("/operator/requests/{id}"))]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Goedkeuren en ondertekenen"), "Dutch page: {}", page.body);
    let csrf = csrf_of(&page.body);

    let forged = curl(&["-b", &jar, "--data", "csrf=forged&confirm=yes", &server.url(&format!("/operator/requests/{id}/approve"))]);
    assert_eq!(forged.status, 403);
    assert!(forged.body.contains("reload the page"), "{}", forged.body);
    let missing = curl(&["-b", &jar, "--data", "confirm=yes", &server.url(&format!("/operator/requests/{id}/approve"))]);
    assert_eq!(missing.status, 403, "{}", missing.body);

    // The confirmation box must be ticked, which browsers send as confirm=yes.
    for confirm in ["confirm=no", "confirm=", "confirm=off"] {
        let unconfirmed = curl(&["-b", &jar, "--data", &format!("csrf={csrf}&{confirm}"), &server.url(&format!("/operator/requests/{id}/approve"))]);
        assert_eq!(unconfirmed.status, 200, "{confirm}");
        assert!(unconfirmed.body.contains("Tick the confirmation box"), "{confirm}: {}", unconfirmed.body);
    }
    let status = curl(&[&server.url(&format!("/api/v1/requests/{id}"))]);
    assert_eq!(status.json()["status"], "pending", "forged and unconfirmed forms changed nothing");

    let approved = curl(&["-b", &jar, "--data", &format!("csrf={csrf}&confirm=yes"), &server.url(&format!("/operator/requests/{id}/approve"))]);
    assert_eq!(approved.status, 303, "{}", approved.body);
    let page = curl(&["-b", &jar, &server.url(&format!("/operator/requests/{id}"))]);
    assert!(page.body.contains("status-issued"), "{}", page.body);
    assert!(page.body.contains("certificate.issued"), "history shows the issuance: {}", page.body);

    // A second approval shows the current state instead of an error page.
    let again = curl(&["-b", &jar, "--data", &format!("csrf={csrf}&confirm=yes"), &server.url(&format!("/operator/requests/{id}/approve"))]);
    assert_eq!(again.status, 200);
    assert!(again.body.contains("cannot be approved: it is issued"), "{}", again.body);

    let headers = std::process::Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "-b", &jar, &server.url("/operator/requests")])
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&headers.stdout).to_ascii_lowercase();
    assert!(headers.contains("content-security-policy: default-src 'none'"), "{headers}");
    assert!(headers.contains("frame-ancestors 'none'"), "{headers}");
    assert!(headers.contains("x-content-type-options: nosniff"), "{headers}");

    let logout = curl(&["-b", &jar, "-c", &jar, "--data", &format!("csrf={csrf}"), &server.url("/logout")]);
    assert_eq!(logout.status, 303);
    let after = curl(&["-b", &jar, &server.url("/operator/requests")]);
    assert_eq!(after.status, 303, "the session ended on the server");

    drop(server);
    db.drop_database().await;
}
