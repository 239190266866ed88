//! Two instances of the service on one PostgreSQL share what matters: a session made on
//! one works on the other, the upload limit counts uploads to both, and a request
//! approved on one is signed by the other after the first stops.

use std::time::Duration;

use ozo_system_tests::cas::*;
use ozo_system_tests::fake_cas::Fault;
use ozo_system_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_sessions_limits_and_jobs() {
    let db = TestDb::create().await;
    let cas = Cas::start(5, "anonymous");
    let config =
        cas.config.replace("uploads_per_address_per_10_minutes = 1000", "uploads_per_address_per_10_minutes = 12");
    let mut first = TestServer::start_with_config(&db.url, Some(&config));
    let second = TestServer::start_with_config(&db.url, Some(&config));
    let work = tempfile::tempdir().unwrap();

    // A session made on the first instance is valid on the second, and ends on both.
    let added = first.command(&["user", "add", "olle", "--role", "operator"], "a long enough password\n");
    assert!(added.status.success());
    let jar = work.path().join("cookies.txt").display().to_string();
    let login = curl(&[
        "-c",
        &jar,
        "--data-urlencode",
        "name=olle",
        "--data-urlencode",
        "password=a long enough password",
        &first.url("/login"),
    ]);
    assert_eq!(login.status, 303, "{}", login.body);
    let queue = curl(&["-b", &jar, &second.url("/operator/requests")]);
    assert_eq!(queue.status, 200, "{}", queue.body);
    assert!(queue.body.contains("olle"), "{}", queue.body);
    let csrf = queue.body.split("name=\"csrf\" value=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap();
    let logout = curl(&["-b", &jar, "--data-urlencode", &format!("csrf={csrf}"), &second.url("/logout")]);
    assert_eq!(logout.status, 303, "{}", logout.body);
    let after = curl(&["-b", &jar, &first.url("/operator/requests")]);
    assert_eq!(after.status, 303, "signed out on the second, so signed out on the first");

    // The CA is down while the first instance takes six approvals.
    let token = first.operator_token("otto", "operator");
    cas.fake.fail_always(Some(Fault::Unavailable));
    let ids: Vec<String> = (0..6)
        .map(|index| {
            let server = if index % 2 == 0 { &first } else { &second };
            upload(server, work.path(), &format!("client-{index}"))
        })
        .collect();
    for id in &ids {
        assert_eq!(approve(&first, &token, id)["status"], "approved");
    }

    // Six uploads so far, three to each; the limit of twelve from one address counts
    // those to both instances.
    let garbage = |server: &TestServer| {
        curl(&["-X", "POST", "--data-binary", "not a CSR", &server.url("/api/v1/requests?environment=staging")]).status
    };
    for index in 0..6 {
        let status = garbage(if index % 2 == 0 { &first } else { &second });
        assert_ne!(status, 429, "upload {} was limited too early", 7 + index);
    }
    assert_eq!(garbage(&first), 429);
    assert_eq!(garbage(&second), 429);
    let limited = curl(&[&second.url("/metrics")]).body;
    assert!(limited.contains("ozo_rate_limited_total{scope=\"upload-address\"} 1"), "{limited}");

    // The first instance stops gracefully; the second signs what it approved.
    let status = first.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    // The log reader may still hold the last lines of the exited process.
    let mut first_log = String::new();
    for _ in 0..50 {
        first_log.push_str(&first.log_lines().join("\n"));
        first_log.push('\n');
        if first_log.contains("\"message\":\"stopped\"") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(first_log.contains("\"message\":\"stopped\""), "{first_log}");
    cas.fake.fail_always(None);
    for id in &ids {
        wait_for(&second, id, &["issued"], Duration::from_secs(60)).await;
    }
    let second_log = second.log_lines().join("\n");
    for id in &ids {
        let signed_here = second_log
            .lines()
            .any(|line| line.contains("\"message\":\"issued a certificate\"") && line.contains(id.as_str()));
        assert!(signed_here, "the second instance did not sign {id}");
    }
    assert!(!first_log.contains("issued a certificate"), "the first instance signed while the CA was down");
    assert_eq!(cas.staging_certificates().len(), ids.len(), "one certificate per request at the CA");

    drop(second);
    drop(first);
    db.drop_database().await;
}
