//! Who may do what: every operator route, through the API with a token and through the
//! pages with a session, for each role and for a visitor without either. Also the
//! slowing and locking of repeated failed sign-ins, and the idle timeout of sessions.

use ozo_system_tests::*;

/// The status each kind of caller gets from a route.
struct Expected {
    anonymous: u16,
    operator: u16,
    auditor: u16,
    admin: u16,
}

const OPERATOR_ONLY_API: Expected = Expected { anonymous: 401, operator: 200, auditor: 403, admin: 403 };
const OPERATOR_ONLY_PAGE: Expected = Expected { anonymous: 303, operator: 200, auditor: 403, admin: 403 };
const READER_PAGE: Expected = Expected { anonymous: 303, operator: 200, auditor: 200, admin: 403 };
const ADMIN_PAGE: Expected = Expected { anonymous: 303, operator: 403, auditor: 403, admin: 200 };
const AUDITOR_ONLY_API: Expected = Expected { anonymous: 401, operator: 403, auditor: 200, admin: 403 };
const AUDITOR_PAGE: Expected = Expected { anonymous: 303, operator: 403, auditor: 200, admin: 403 };
const PUBLIC: Expected = Expected { anonymous: 200, operator: 200, auditor: 200, admin: 200 };

fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page has a CSRF field")
        .to_owned()
}

/// Signs `name` in with curl and returns the cookie jar's path.
fn sign_in(server: &TestServer, work: &std::path::Path, name: &str) -> String {
    let jar = work.join(format!("{name}-cookies.txt")).display().to_string();
    let login = curl(&[
        "-c",
        &jar,
        "--data-urlencode",
        &format!("name={name}"),
        "--data-urlencode",
        "password=a long enough password",
        &server.url("/login"),
    ]);
    assert_eq!(login.status, 303, "{name} signs in: {}", login.body);
    jar
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_with_every_role() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    let tokens = [
        ("operator", server.operator_token("otto", "operator")),
        ("auditor", server.operator_token("aida", "auditor")),
        ("admin", server.operator_token("adam", "admin")),
    ];
    let code = server.invitation(&server.inviter(), "Rollen BV", &["staging"]);
    let work = tempfile::tempdir().unwrap();
    let (_, csr) = make_csr(work.path(), "client", STAGING_SUBJECT);
    let upload = curl(&[
        "-X",
        "POST",
        "--data-binary",
        &format!("@{}", csr.display()),
        &server.url(&format!("/api/v1/requests?environment=staging&invitation={code}")),
    ]);
    let id = upload.json()["id"].as_str().unwrap().to_owned();

    // Reading routes of the API, and the write routes with a body they reject for another
    // reason than the role (400 or 409), so that nothing changes.
    let api: Vec<(&str, String, &str, Expected)> = vec![
        ("GET", "/api/v1/requests?status=pending".to_owned(), "", OPERATOR_ONLY_API),
        ("GET", format!("/api/v1/requests/{id}/preview"), "", OPERATOR_ONLY_API),
        ("GET", "/api/v1/invitations".to_owned(), "", OPERATOR_ONLY_API),
        (
            "POST",
            format!("/api/v1/requests/{id}/deny"),
            r#"{"reason": " "}"#,
            Expected { operator: 400, ..OPERATOR_ONLY_API },
        ),
        ("POST", format!("/api/v1/requests/{id}/retry"), "", Expected { operator: 409, ..OPERATOR_ONLY_API }),
        (
            "POST",
            format!("/api/v1/requests/{id}/revoke"),
            r#"{"reason": "superseded"}"#,
            Expected { operator: 409, ..OPERATOR_ONLY_API },
        ),
        ("POST", "/api/v1/invitations".to_owned(), "{}", Expected { operator: 400, ..OPERATOR_ONLY_API }),
        ("GET", "/api/v1/events".to_owned(), "", AUDITOR_ONLY_API),
        ("GET", "/api/v1/events/export?format=jsonl".to_owned(), "", AUDITOR_ONLY_API),
        ("GET", "/api/v1/audit/requests".to_owned(), "", AUDITOR_ONLY_API),
        ("GET", "/api/v1/audit/requests/export?format=csv".to_owned(), "", AUDITOR_ONLY_API),
        ("GET", format!("/api/v1/requests/{id}"), "", PUBLIC),
        ("GET", "/api/v1/environments/staging/ca.pem".to_owned(), "", PUBLIC),
    ];
    for (method, path, body, expected) in &api {
        let mut callers = vec![("anonymous", None, expected.anonymous)];
        for (role, token) in &tokens {
            let status = match *role {
                "operator" => expected.operator,
                "auditor" => expected.auditor,
                _ => expected.admin,
            };
            callers.push((role, Some(token), status));
        }
        for (caller, token, status) in callers {
            let mut args = vec!["-X", method, "-H", "Content-Type: application/json"];
            let auth = token.map(|token| format!("Authorization: Bearer {token}"));
            if let Some(auth) = &auth {
                args.extend(["-H", auth.as_str()]);
            }
            if !body.is_empty() {
                args.extend(["--data", body]);
            }
            let url = server.url(path);
            args.push(&url);
            let response = curl(&args);
            assert_eq!(response.status, status, "{caller} {method} {path}: {}", response.body);
        }
    }

    // The pages, with a session per role. Forms are posted with the session's CSRF token
    // but without their confirmation, reason or fields, which the allowed role gets back
    // as the page with a notice (200).
    for name in ["otto", "aida", "adam"] {
        let added = server.command(
            &[
                "user",
                "add",
                &format!("{name}-pages"),
                "--role",
                match name {
                    "otto" => "operator",
                    "aida" => "auditor",
                    _ => "admin",
                },
            ],
            "a long enough password\n",
        );
        assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    }
    let operator_jar = sign_in(&server, work.path(), "otto-pages");
    let auditor_jar = sign_in(&server, work.path(), "aida-pages");
    let admin_jar = sign_in(&server, work.path(), "adam-pages");
    let admin_csrf = csrf_of(&curl(&["-b", &admin_jar, &server.url("/admin/accounts")]).body);

    let operator_csrf = csrf_of(&curl(&["-b", &operator_jar, &server.url(&format!("/operator/requests/{id}"))]).body);
    let auditor_page = curl(&["-b", &auditor_jar, &server.url(&format!("/operator/requests/{id}"))]);
    assert!(!auditor_page.body.contains("/approve"), "an auditor sees no approve form");
    let auditor_csrf = csrf_of(&auditor_page.body);

    let pages: Vec<(&str, String, Expected)> = vec![
        ("GET", "/operator/requests".to_owned(), READER_PAGE),
        ("GET", format!("/operator/requests/{id}"), READER_PAGE),
        ("GET", "/operator/invitations".to_owned(), OPERATOR_ONLY_PAGE),
        ("GET", format!("/operator/requests/{id}/preview"), OPERATOR_ONLY_PAGE),
        ("POST", format!("/operator/requests/{id}/approve"), OPERATOR_ONLY_PAGE),
        ("POST", format!("/operator/requests/{id}/deny"), OPERATOR_ONLY_PAGE),
        ("POST", format!("/operator/requests/{id}/retry"), OPERATOR_ONLY_PAGE),
        ("POST", format!("/operator/requests/{id}/revoke"), OPERATOR_ONLY_PAGE),
        ("GET", "/audit".to_owned(), AUDITOR_PAGE),
        ("GET", "/audit/requests".to_owned(), AUDITOR_PAGE),
        ("GET", "/audit/export?format=csv".to_owned(), AUDITOR_PAGE),
        ("GET", "/admin/accounts".to_owned(), ADMIN_PAGE),
        ("POST", "/admin/accounts".to_owned(), ADMIN_PAGE),
        ("POST", "/admin/accounts/nobody/roles".to_owned(), ADMIN_PAGE),
        ("POST", "/admin/accounts/nobody/tokens".to_owned(), ADMIN_PAGE),
        ("POST", format!("/admin/tokens/{}/revoke", uuid::Uuid::nil()), ADMIN_PAGE),
    ];
    for (method, path, expected) in &pages {
        let url = server.url(path);
        for (caller, jar, csrf, status) in [
            ("anonymous", None, "", expected.anonymous),
            ("operator", Some(&operator_jar), operator_csrf.as_str(), expected.operator),
            ("auditor", Some(&auditor_jar), auditor_csrf.as_str(), expected.auditor),
            ("admin", Some(&admin_jar), admin_csrf.as_str(), expected.admin),
        ] {
            let mut args = vec![];
            if let Some(jar) = jar {
                args.extend(["-b", jar.as_str()]);
            }
            let form = format!("csrf={csrf}");
            if *method == "POST" {
                args.extend(["--data", form.as_str()]);
            }
            args.push(&url);
            let response = curl(&args);
            assert_eq!(response.status, status, "{caller} {method} {path}: {}", response.body);
        }
    }

    // Nothing above changed the request.
    let request = curl(&[&server.url(&format!("/api/v1/requests/{id}"))]).json();
    assert_eq!(request["status"], "pending", "{request}");
    assert_eq!(request["approvals"], 0);

    // Every page carries the security headers.
    let headers = curl(&["-D", "-", "-o", "/dev/null", &server.url("/login")]).body.to_lowercase();
    for header in [
        "content-security-policy: default-src 'none'",
        "frame-ancestors 'none'",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
        "cache-control: no-store",
    ] {
        assert!(headers.contains(header), "{header} missing in {headers}");
    }
    assert!(!headers.contains("strict-transport-security"), "no HSTS over plain HTTP");

    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_failed_sign_ins_lock_the_account() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    server.operator_token("lotte", "operator");
    let login_url = server.url("/login");
    let sign_in = |password: &str| {
        curl(&["--data-urlencode", "name=lotte", "--data-urlencode", &format!("password={password}"), &login_url])
    };

    // Twenty guesses at once: attempts for one name take turns, so exactly ten are
    // checked and the rest find the account locked.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let guesses: Vec<_> = (0..20).map(|_| scope.spawn(|| sign_in("not the password").status)).collect();
        guesses.into_iter().map(|guess| guess.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|&&status| status == 401).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&status| status == 429).count(), 10, "{statuses:?}");
    let locked = sign_in("a long enough password");
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert!(locked.body.contains("Too many failed sign-ins"), "{}", locked.body);
    let log = log_until(&server, "sign-in locked after repeated failures").await;
    assert!(log.contains("sign-in locked after repeated failures"), "{log}");
    assert!(!log.contains("not the password"), "the log holds no password");

    // An admin lifts the lock from the command line.
    let unlocked = server.command(&["user", "unlock", "lotte"], "");
    assert!(unlocked.status.success(), "{}", String::from_utf8_lossy(&unlocked.stderr));
    assert_eq!(sign_in("a long enough password").status, 303);

    // The lock is per account: another operator signs in from the same address.
    server.operator_token("mees", "operator");
    let other = curl(&[
        "--data-urlencode",
        "name=mees",
        "--data-urlencode",
        "password=a long enough password",
        &server.url("/login"),
    ]);
    assert_eq!(other.status, 303, "{}", other.body);

    // A password typed into the name field is neither logged nor kept in an event.
    let typo = curl(&["--data-urlencode", "name=Geheim-Wachtwoord-2026", "--data-urlencode", "password=x", &server.url("/login")]);
    assert_ne!(typo.status, 303);
    let log = log_until(&server, "unknown account ").await;
    assert!(log.contains("unknown account "), "{log}");
    assert!(!log.contains("Geheim-Wachtwoord-2026"), "{log}");
    let pool = db.pool().await;
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE detail::text LIKE '%Geheim%'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, 0);
    pool.close().await;

    drop(server);
    db.drop_database().await;
}

/// Collects the server's log until it contains `text`, for at most 10 seconds. The log
/// reaches the test through a pipe, so a line may arrive a moment after its response.
async fn log_until(server: &TestServer, text: &str) -> String {
    let mut log = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !log.contains(text) && std::time::Instant::now() < deadline {
        log.push_str(&server.log_lines().join("\n"));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_session_ends() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    server.operator_token("ida", "operator");
    let work = tempfile::tempdir().unwrap();
    let jar = sign_in(&server, work.path(), "ida");
    assert_eq!(curl(&["-b", &jar, &server.url("/operator/requests")]).status, 200);

    let pool = db.pool().await;
    sqlx::query("UPDATE sessions SET last_seen_at = now() - interval '31 minutes'").execute(&pool).await.unwrap();
    pool.close().await;
    let idle = curl(&["-b", &jar, "-D", "-", &server.url("/operator/requests?status=all")]);
    assert_eq!(idle.status, 303, "a session idle for 31 minutes has ended");
    assert!(idle.body.contains("location: /login?next=/operator/requests%3Fstatus%3Dall"), "{}", idle.body);

    // Signing in again returns to that page; an address elsewhere is ignored.
    let form = |next: &str| {
        curl(&[
            "-D",
            "-",
            "--data-urlencode",
            "name=ida",
            "--data-urlencode",
            "password=a long enough password",
            "--data-urlencode",
            &format!("next={next}"),
            &server.url("/login"),
        ])
    };
    assert!(form("/operator/requests?status=all").body.contains("location: /operator/requests?status=all"));
    assert!(form("//evil.example/").body.contains("location: /operator/requests\r\n"));

    drop(server);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_manages_accounts_and_tokens() {
    let db = TestDb::create().await;
    let server = TestServer::start(&db.url);
    server.operator_token("root", "admin");
    let work = tempfile::tempdir().unwrap();
    let jar = sign_in(&server, work.path(), "root");
    let page = curl(&["-b", &jar, &server.url("/admin/accounts")]);
    assert_eq!(page.status, 200);
    let csrf = csrf_of(&page.body);
    let post = |path: &str, form: &str| curl(&["-b", &jar, "--data", form, &server.url(path)]);

    // A new operator account, made in the page.
    let created =
        post("/admin/accounts", &format!("csrf={csrf}&name=nora&password=a+long+enough+password&role=operator"));
    assert_eq!(created.status, 200, "{}", created.body);
    assert!(created.body.contains("Account nora created."), "{}", created.body);
    let again =
        post("/admin/accounts", &format!("csrf={csrf}&name=nora&password=a+long+enough+password&role=operator"));
    assert!(again.body.contains("already exists"), "{}", again.body);
    let short = post("/admin/accounts", &format!("csrf={csrf}&name=olaf&password=short&role=operator"));
    assert!(short.body.contains("at least 12 characters"), "{}", short.body);

    // A token for nora, shown once, works for the API with her roles.
    let token_page = post("/admin/accounts/nora/tokens", &format!("csrf={csrf}"));
    let token =
        token_page.body.split("<code id=\"token-value\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    assert!(token.starts_with("ozo_"), "{token}");
    let listed =
        curl(&["-H", &format!("Authorization: Bearer {token}"), &server.url("/api/v1/requests?status=pending")]);
    assert_eq!(listed.status, 200, "{}", listed.body);

    // As an auditor only, nora may no longer list requests through the API.
    let roles = post("/admin/accounts/nora/roles", &format!("csrf={csrf}&role=auditor"));
    assert!(roles.body.contains("The roles of nora are saved."), "{}", roles.body);
    let as_auditor =
        curl(&["-H", &format!("Authorization: Bearer {token}"), &server.url("/api/v1/requests?status=pending")]);
    assert_eq!(as_auditor.status, 403, "{}", as_auditor.body);

    // The command line lists the token; revoking it in the page ends it at once.
    let list = server.command(&["token", "list", "nora"], "");
    let listing = String::from_utf8_lossy(&list.stdout).to_string();
    let token_id = listing.split('\t').next().unwrap().to_owned();
    assert!(listing.contains("\tnora\t"), "{listing}");
    assert!(listing.contains("active"), "{listing}");
    let revoked = post(&format!("/admin/tokens/{token_id}/revoke"), &format!("csrf={csrf}"));
    assert!(revoked.body.contains("is revoked"), "{}", revoked.body);
    let after =
        curl(&["-H", &format!("Authorization: Bearer {token}"), &server.url("/api/v1/requests?status=pending")]);
    assert_eq!(after.status, 401);
    let listing = String::from_utf8_lossy(&server.command(&["token", "list", "nora"], "").stdout).to_string();
    assert!(listing.contains("revoked"), "{listing}");

    // An admin cannot lock themself out.
    let own = post("/admin/accounts/root/roles", &format!("csrf={csrf}&role=operator"));
    assert!(own.body.contains("cannot remove your own admin role"), "{}", own.body);

    // Every change is an event, and the token itself is nowhere in the database.
    let pool = db.pool().await;
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM events WHERE kind IN ('account.created', 'account.roles_changed', 'token.created', 'token.revoked') ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(kinds, ["account.created", "token.created", "account.roles_changed", "token.revoked"]);
    let sign_ins: Vec<String> =
        sqlx::query_scalar("SELECT actor FROM events WHERE kind = 'account.signed_in'").fetch_all(&pool).await.unwrap();
    assert_eq!(sign_ins, ["account:root"]);
    pool.close().await;
    let dump = std::process::Command::new("pg_dump").args(["--data-only", &db.url]).output().unwrap();
    assert!(dump.status.success());
    assert!(!String::from_utf8_lossy(&dump.stdout).contains(&token), "the token is stored only as a hash");

    drop(server);
    db.drop_database().await;
}
