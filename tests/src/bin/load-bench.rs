//! The service under load, on 127.0.0.1, with wrk as the client:
//!
//! 1. start-up: the time from starting `serve` to the first 200 from `/readyz`, and the idle RSS;
//! 2. uploads of distinct valid CSRs at 1, 8 and 32 connections, next to what `pgbench`
//!    reaches for a single-row insert at the same concurrency on the same database, and
//!    next to the ceiling that the bare parts of an upload allow (see [`Ceiling`]);
//! 3. local-CA issuance (approvals that sign) next to `cfssl serve` signing the same CSRs;
//! 4. a long run of uploads at 80 % of the highest measured rate, with the RSS sampled.
//!
//! ```sh
//! cargo build --release -p ozo-signer -p ozo-system-tests --bins
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres target/release/load-bench [SECONDS] [LONG_SECONDS]
//! ```
//!
//! SECONDS is the length of each short run (20), LONG_SECONDS that of the long run (600;
//! 0 skips it). It needs wrk, pgbench and psql, and cfssl for step 3 (Debian: wrk,
//! postgresql-client, golang-cfssl).

use std::io::{BufRead, BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use der::Encode;
use p256::ecdsa::{DerSignature, SigningKey};
use rand::rngs::OsRng;
use x509_cert::builder::{Builder, RequestBuilder};
use x509_cert::name::Name;

const CONCURRENCY: [u32; 3] = [1, 8, 32];
/// CSRs made per second of a short run, above the highest rate any run here has uploaded
/// (9,192/s). A run that uses them all up repeats them, and repeats are rejected.
const CSRS_PER_SECOND: u64 = 16_000;

/// Numbers wrk's threads from 1, so that each reads its own file of bodies.
const THREAD_IDS: &str = r#"
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
"#;

const UPLOAD_SCRIPT: &str = r#"function init(args)
  bodies = {}
  for line in io.lines(args[1] .. "-" .. id .. ".txt") do
    bodies[#bodies + 1] = (line:gsub("|", "\n"))
  end
  pause = tonumber(args[2] or "0")
  next_body = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = args[3] or "application/pkcs10"
  if args[4] then wrk.headers["Authorization"] = "Bearer " .. args[4] end
end
function request()
  next_body = next_body + 1
  if next_body > #bodies then
    -- Out of bodies: a repeated CSR is refused, so the run reports errors.
    next_body = 1
  end
  return wrk.format(nil, nil, nil, bodies[next_body])
end
function delay()
  return pause
end
"#;

const APPROVE_SCRIPT: &str = r#"function init(args)
  ids = {}
  for line in io.lines(args[1] .. "-" .. id .. ".txt") do ids[#ids + 1] = line end
  next_id = 0
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. args[2]
end
function request()
  next_id = next_id + 1
  if next_id > #ids then next_id = 1 end
  return wrk.format(nil, "/api/v1/requests/" .. ids[next_id] .. "/approve")
end
"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).map_or(20, |value| value.parse().expect("SECONDS is a number"));
    let long_seconds: u64 = args.get(2).map_or(600, |value| value.parse().expect("LONG_SECONDS is a number"));
    let admin_url = std::env::var("DATABASE_URL").expect("set DATABASE_URL to a PostgreSQL server for a new database");
    for tool in ["wrk", "pgbench", "psql"] {
        assert!(Command::new("sh").args(["-c", &format!("command -v {tool}")]).status().unwrap().success(), "{tool} is missing");
    }
    let binary = std::env::current_exe().unwrap().parent().unwrap().join("ozo-signer");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    let name = format!("ozo_load_{}", uuid::Uuid::new_v4().simple());
    psql(&admin_url, &format!("CREATE DATABASE {name}"));
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&name);
    let url = url.to_string();
    let migrated = Command::new(&binary).arg("migrate").env("DATABASE_URL", &url).output().unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    // For what-if runs: SQL applied to the new database before the service starts.
    if let Ok(sql) = std::env::var("LOAD_BENCH_SETUP_SQL") {
        psql(&url, &sql);
        println!("setup SQL: {sql}");
    }
    println!("database {name}; {seconds} s per run; long run {long_seconds} s");

    let port = free_port();
    let config = dir.join("config.toml");
    std::fs::write(&config, config_text(port)).unwrap();

    // 1. Start-up and idle memory.
    let mut starts = Vec::new();
    let mut idle_rss_kib = 0;
    for round in 0..5 {
        let started = Instant::now();
        let mut server = serve(&binary, &config, &url, dir);
        wait_ready(port, Duration::from_secs(30));
        starts.push(started.elapsed());
        if round == 0 {
            std::thread::sleep(Duration::from_secs(2));
            idle_rss_kib = rss_kib(server.id());
        }
        stop(&mut server);
    }
    starts.sort();
    println!(
        "start to /readyz 200: median {:.0} ms (min {:.0}, max {:.0}) over 5 starts; idle RSS {:.1} MB",
        ms(starts[2]),
        ms(starts[0]),
        ms(starts[4]),
        idle_rss_kib as f64 / 1024.0
    );

    // 2. Uploads next to pgbench.
    let mut server = serve(&binary, &config, &url, dir);
    wait_ready(port, Duration::from_secs(30));
    let upload_url = format!("http://127.0.0.1:{port}/api/v1/requests?environment=staging&organisation=Load%20test&contact=load%40example.nl");
    let upload_lua = dir.join("upload.lua");
    std::fs::write(&upload_lua, format!("{THREAD_IDS}{UPLOAD_SCRIPT}")).unwrap();
    psql(&url, "CREATE TABLE bench_rows (id bigserial PRIMARY KEY, payload bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())");
    let insert_sql = dir.join("insert.sql");
    std::fs::write(&insert_sql, "INSERT INTO bench_rows (payload) VALUES (decode(md5(random()::text), 'hex'));\n").unwrap();
    let statements_sql = dir.join("upload-statements.sql");
    std::fs::write(&statements_sql, upload_statements()).unwrap();
    let mut best_rate: f64 = 0.0;
    let mut best_latency_ms: f64 = 0.0;
    let mut best_connections = 1;
    for connections in CONCURRENCY {
        let threads = connections.min(2);
        let prefix = dir.join(format!("upload-{connections}"));
        write_csr_files(&prefix, threads, CSRS_PER_SECOND * seconds, |pem| pem.replace('\n', "|"));
        let peak = RssSampler::start(server.id());
        let cpu_before = (cpu_ticks(server.id()), postgres_cpu_ticks());
        let result = wrk(&upload_lua, &upload_url, connections, threads, seconds, &[prefix.to_str().unwrap(), "0"]);
        let cpu_after = (cpu_ticks(server.id()), postgres_cpu_ticks());
        let peak_kib = peak.stop();
        let per_upload_us = |before: u64, after: u64| (after - before) as f64 * 10_000.0 / result.requests.max(1) as f64;
        let tps = pgbench(&url, &insert_sql, connections, seconds, false);
        let statements_tps = pgbench(&url, &statements_sql, connections, seconds, true);
        let ceiling = Ceiling::measure(&prefix, port, connections, tps);
        println!(
            "uploads at {connections:>2} connections: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, errors {}; pgbench insert {:.0}/s; ratio {:.2}; pgbench upload statement {:.0}/s; ratio {:.2}; peak RSS {:.1} MB; CPU per upload: service {:.0} µs, PostgreSQL {:.0} µs",
            result.rate,
            result.p50_ms,
            result.p99_ms,
            result.errors,
            tps,
            result.rate / tps,
            statements_tps,
            result.rate / statements_tps,
            peak_kib as f64 / 1024.0,
            per_upload_us(cpu_before.0, cpu_after.0),
            per_upload_us(cpu_before.1, cpu_after.1),
        );
        println!(
            "  ceiling at {connections:>2} connections: {:.0}/s, ratio {:.2} (GET /healthz {:.0}/s; CSR intake {:.0}/s on one core, on {} cores here)",
            ceiling.rate,
            ceiling.rate / tps,
            ceiling.http_rate,
            ceiling.intake_rate,
            ceiling.cores,
        );
        if result.rate > best_rate {
            best_rate = result.rate;
            best_latency_ms = result.p50_ms;
            best_connections = connections;
        }
    }

    // 3. Issuance at the local CA next to cfssl, on the pending requests of step 2.
    let added = run(&binary, &url, &["user", "add", "bench-operator", "--role", "operator"], "a long enough password\n");
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let token = String::from_utf8(run(&binary, &url, &["token", "create", "bench-operator"], "").stdout).unwrap().trim().to_owned();
    let ids =
        psql_rows(&url, "SELECT id FROM requests WHERE status = 'pending' AND organisation = 'Load test' ORDER BY created_at");
    let issue_connections = 8;
    let id_prefix = dir.join("approve");
    for thread in 1..=2 {
        let mut file = BufWriter::new(std::fs::File::create(format!("{}-{thread}.txt", id_prefix.display())).unwrap());
        for id in ids.iter().skip(thread - 1).step_by(2) {
            writeln!(file, "{id}").unwrap();
        }
    }
    let approve_lua = dir.join("approve.lua");
    std::fs::write(&approve_lua, format!("{THREAD_IDS}{APPROVE_SCRIPT}")).unwrap();
    let issued = wrk(
        &approve_lua,
        &format!("http://127.0.0.1:{port}"),
        issue_connections,
        2,
        seconds,
        &[id_prefix.to_str().unwrap(), &token],
    );
    let issued_count = psql_rows(&url, "SELECT count(*) FROM certificates")[0].clone();
    println!(
        "local-CA issuance at {issue_connections} connections: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, errors {} ({issued_count} certificates of {} pending requests)",
        issued.rate,
        issued.p50_ms,
        issued.p99_ms,
        issued.errors,
        ids.len()
    );
    if Command::new("sh").args(["-c", "command -v cfssl"]).status().unwrap().success() {
        let cfssl = cfssl_rate(dir, issue_connections, seconds);
        println!(
            "cfssl serve sign at {issue_connections} connections: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, errors {}; ozo-signer/cfssl ratio {:.2}",
            cfssl.rate,
            cfssl.p50_ms,
            cfssl.p99_ms,
            cfssl.errors,
            issued.rate / cfssl.rate
        );
    } else {
        println!("cfssl is missing (Debian: golang-cfssl); no issuance comparison");
    }

    // 4. A long run at 80 % of the highest upload rate.
    if long_seconds > 0 {
        let target = best_rate * 0.8;
        let connections = best_connections.max(2);
        let threads = connections.min(2);
        // Each connection waits this long after each response, so that the connections
        // together send about `target` uploads a second. Responses come faster below the
        // maximum, so a first guess from the latency at full load is corrected once by a
        // 10-second run.
        let mut pause_ms = ((connections as f64 * 1000.0 / target) - best_latency_ms).max(0.0);
        let calibration = dir.join("calibration");
        write_csr_files(&calibration, threads, (best_rate * 12.0) as u64, |pem| pem.replace('\n', "|"));
        let pause = format!("{pause_ms:.0}");
        let trial = wrk(&upload_lua, &upload_url, connections, threads, 10, &[calibration.to_str().unwrap(), &pause]);
        pause_ms = (pause_ms + connections as f64 * 1000.0 * (1.0 / target - 1.0 / trial.rate)).max(0.0);
        println!("calibration: {:.0}/s with a pause of {pause} ms; the long run pauses {pause_ms:.0} ms", trial.rate);
        let prefix = dir.join("long");
        write_csr_files(&prefix, threads, (target * long_seconds as f64 * 1.3) as u64, |pem| pem.replace('\n', "|"));
        let samples = RssSampler::start_every(server.id(), Duration::from_secs(10));
        let pause = format!("{pause_ms:.0}");
        let result = wrk(&upload_lua, &upload_url, connections, threads, long_seconds, &[prefix.to_str().unwrap(), &pause]);
        let series = samples.stop_series();
        let mb = |kib: u64| kib as f64 / 1024.0;
        let first = series.get(3).or(series.first()).copied().unwrap_or_default();
        let last = series.last().copied().unwrap_or_default();
        let max = series.iter().copied().max().unwrap_or_default();
        println!(
            "long run: {long_seconds} s at {:.0}/s (target {target:.0}/s, {connections} connections, pause {pause} ms): p50 {:.2} ms, p99 {:.2} ms, errors {}; RSS at 30 s {:.1} MB, at the end {:.1} MB, max {:.1} MB",
            result.rate,
            result.p50_ms,
            result.p99_ms,
            result.errors,
            mb(first),
            mb(last),
            mb(max)
        );
        println!("RSS every 10 s (MB): {}", series.iter().map(|kib| format!("{:.1}", mb(*kib))).collect::<Vec<_>>().join(" "));
    }

    stop(&mut server);
    psql(&admin_url, &format!("DROP DATABASE {name} WITH (FORCE)"));
}

fn config_text(port: u16) -> String {
    format!(
        r#"listen = "127.0.0.1:{port}"
log_format = "json"

[rate_limits]
uploads_per_address_per_10_minutes = 100000000
uploads_per_invitation_per_10_minutes = 100000000
status_pages_per_address_per_minute = 100000000

[environments.staging]
common_name = "connect.zorgverband.nl"
organization = "OZOverbindzorg"
allow_uploads_without_invitation = true
[environments.staging.ca]
backend = "local"
"#
    )
}

fn serve(binary: &Path, config: &Path, url: &str, dir: &Path) -> Child {
    Command::new(binary)
        .args(["--config", config.to_str().unwrap(), "serve"])
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

/// Polls `/readyz` with a bare HTTP/1.0 request until it returns 200.
fn wait_ready(port: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.write_all(b"GET /readyz HTTP/1.0\r\n\r\n");
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            if response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("/readyz did not answer 200 within {limit:?}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_default()
}

/// Returns the CPU time a process has used, user and system, in clock ticks of 10 ms (Linux's
/// USER_HZ of 100).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat_fields(&stat).map_or(0, |fields| fields.utime + fields.stime)
}

/// Returns the CPU time PostgreSQL has used, in clock ticks: that of every `postgres`
/// process, with the time of the postmaster's exited children, such as closed connections.
fn postgres_cpu_ticks() -> u64 {
    let mut processes = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(fields) = stat_fields(&stat) else { continue };
        if fields.command == "postgres" {
            processes.insert(pid, fields.into_ticks());
        }
    }
    let mut ticks = 0;
    for (own, children, parent) in processes.values() {
        ticks += own;
        // The postmaster, the only one whose parent is not PostgreSQL, also counts the
        // time of its exited children.
        if !processes.contains_key(parent) {
            ticks += children;
        }
    }
    ticks
}

struct StatFields<'a> {
    command: &'a str,
    parent: u32,
    utime: u64,
    stime: u64,
    children_utime: u64,
    children_stime: u64,
}

impl StatFields<'_> {
    /// Returns the process's own ticks, those of its exited children, and its parent.
    fn into_ticks(self) -> (u64, u64, u32) {
        (self.utime + self.stime, self.children_utime + self.children_stime, self.parent)
    }
}

/// Reads the fields of `/proc/PID/stat` that the CPU accounting needs (proc(5)).
fn stat_fields(stat: &str) -> Option<StatFields<'_>> {
    let command = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?;
    let rest: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    // After the command: state (field 3), parent (4) ... utime (14), stime (15), cutime (16), cstime (17).
    let field = |number: usize| rest.get(number - 3)?.parse::<u64>().ok();
    Some(StatFields {
        command,
        parent: u32::try_from(field(4)?).ok()?,
        utime: field(14)?,
        stime: field(15)?,
        children_utime: field(16)?,
        children_stime: field(17)?,
    })
}

/// Samples a process's RSS on a thread until stopped.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u64>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        RssSampler::start_every(pid, Duration::from_millis(250))
    }

    fn start_every(pid: u32, every: Duration) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            let mut next = Instant::now();
            while !flag.load(Ordering::SeqCst) {
                if Instant::now() >= next {
                    samples.push(rss_kib(pid));
                    next += every;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            samples
        });
        RssSampler { stop, thread }
    }

    fn stop_series(self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }

    fn stop(self) -> u64 {
        self.stop_series().into_iter().max().unwrap_or_default()
    }
}

/// Writes `count` distinct CSRs of the staging subject as PEM, one per line after
/// `line`, spread over `threads` files `PREFIX-1.txt`, `PREFIX-2.txt` …
fn write_csr_files(prefix: &Path, threads: u32, count: u64, line: impl Fn(&str) -> String + Sync) {
    let subject = Name::from_str("O=OZOverbindzorg,CN=connect.zorgverband.nl").unwrap();
    std::thread::scope(|scope| {
        for thread in 1..=threads {
            let subject = subject.clone();
            let line = &line;
            scope.spawn(move || {
                let path = PathBuf::from(format!("{}-{thread}.txt", prefix.display()));
                let mut file = BufWriter::new(std::fs::File::create(path).unwrap());
                for _ in 0..count.div_ceil(threads as u64) {
                    let key = SigningKey::random(&mut OsRng);
                    let request = RequestBuilder::new(subject.clone(), &key).unwrap().build::<DerSignature>().unwrap();
                    let der = request.to_der().unwrap();
                    writeln!(file, "{}", line(&pem(&der))).unwrap();
                }
            });
        }
    });
}

fn pem(der: &[u8]) -> String {
    let base64 = Base64::encode_string(der);
    let mut text = String::from("-----BEGIN CERTIFICATE REQUEST-----\n");
    for chunk in base64.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(chunk).unwrap());
        text.push('\n');
    }
    text.push_str("-----END CERTIFICATE REQUEST-----\n");
    text
}

struct WrkResult {
    /// Responses received, whatever their status.
    requests: u64,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Responses other than 2xx and 3xx, and socket errors.
    errors: u64,
}

fn wrk(script: &Path, url: &str, connections: u32, threads: u32, seconds: u64, args: &[&str]) -> WrkResult {
    let output = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &connections.to_string(), "-d", &format!("{seconds}s"), "--timeout", "10s"])
        .args(["--latency", "-s", script.to_str().unwrap(), url, "--"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    let number_after = |label: &str| -> Option<String> {
        text.lines().find_map(|line| line.trim().strip_prefix(label).map(|rest| rest.trim().to_owned()))
    };
    let requests = text
        .lines()
        .find_map(|line| line.trim().split_once(" requests in ").and_then(|(count, _)| count.parse().ok()))
        .unwrap_or_else(|| panic!("{text}"));
    let rate = number_after("Requests/sec:").and_then(|value| value.parse().ok()).unwrap_or_else(|| panic!("{text}"));
    let latency = |label: &str| number_after(label).map(|value| duration_ms(&value)).unwrap_or_else(|| panic!("{text}"));
    let non_2xx: u64 = number_after("Non-2xx or 3xx responses:").and_then(|value| value.parse().ok()).unwrap_or(0);
    let socket: u64 = number_after("Socket errors:")
        .map(|value| value.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    WrkResult { requests, rate, p50_ms: latency("50%"), p99_ms: latency("99%"), errors: non_2xx + socket }
}

/// Reads wrk's durations such as `812.00us`, `1.25ms` or `2.01s` as milliseconds.
fn duration_ms(value: &str) -> f64 {
    let split = value.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => f64::NAN,
    }
}

/// The highest upload rate that the bare parts of an upload allow on this machine, as an
/// estimate. Every upload is at least an HTTP exchange with the service, the intake of its
/// CSR (PEM, DER, policy and the signature check) and a committed insert. Each part's
/// rate is measured alone: wrk's `GET /healthz` at the same concurrency, `validate` on one
/// thread, and pgbench's bare insert. If the parts ran one after another with nothing
/// else, their times per upload would add up:
///
/// `1 / ceiling = 1 / http + 1 / (intake × cores used) + 1 / insert`
///
/// At one connection the parts of an upload wait for each other, so the intake uses one
/// core. From two connections on, the sum assumes that every core is busy, and each of the
/// three parts alone keeps them busy at 8 and 32 connections.
// NOTE: A service could overlap the intake with the insert's round trip, which this sum
// leaves out, so the ceiling is an estimate and not a proof.
struct Ceiling {
    rate: f64,
    http_rate: f64,
    intake_rate: f64,
    cores: usize,
}

impl Ceiling {
    /// Measures the HTTP exchange and the intake of the CSRs in the files at `prefix`,
    /// and combines them with pgbench's `insert_rate`.
    fn measure(prefix: &Path, port: u16, connections: u32, insert_rate: f64) -> Ceiling {
        let threads = connections.min(2);
        let healthz = format!("http://127.0.0.1:{port}/healthz");
        let http = wrk_get(&healthz, connections, threads, 5);
        let intake_rate = intake_rate(&PathBuf::from(format!("{}-1.txt", prefix.display())));
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get()).min(connections as usize);
        let seconds_per_upload = 1.0 / http.rate + 1.0 / (intake_rate * cores as f64) + 1.0 / insert_rate;
        Ceiling { rate: 1.0 / seconds_per_upload, http_rate: http.rate, intake_rate, cores }
    }
}

/// Runs wrk's plain `GET` of `url`, without a script.
fn wrk_get(url: &str, connections: u32, threads: u32, seconds: u64) -> WrkResult {
    let script = std::env::temp_dir().join(format!("load-bench-get-{}.lua", std::process::id()));
    std::fs::write(&script, "").unwrap();
    let result = wrk(&script, url, connections, threads, seconds, &[]);
    let _ = std::fs::remove_file(&script);
    result
}

/// Returns how many of the CSRs in `path` (one PEM per line, line breaks as `|`) one
/// thread validates per second, over 2 seconds.
fn intake_rate(path: &Path) -> f64 {
    let environments = ozo_domain::Environment::builtin();
    let staging = environments.iter().find(|environment| environment.name.as_str() == "staging").unwrap();
    let lines = std::io::BufReader::new(std::fs::File::open(path).unwrap()).lines().take(4096);
    let csrs: Vec<Vec<u8>> = lines.map(|line| line.unwrap().replace('|', "\n").into_bytes()).collect();
    let started = Instant::now();
    let mut count = 0_u64;
    while started.elapsed() < Duration::from_secs(2) {
        let csr = &csrs[count as usize % csrs.len()];
        let verdict = ozo_domain::validate(std::hint::black_box(csr), staging, &environments);
        assert!(matches!(verdict, ozo_domain::Verdict::Accepted(_)), "a CSR of the run was not accepted");
        count += 1;
    }
    count as f64 / started.elapsed().as_secs_f64()
}

/// Runs `script` for `seconds` and returns pgbench's transactions per second; `prepared`
/// uses prepared statements with one generic plan each, as the service's upload writers do.
fn pgbench(url: &str, script: &Path, connections: u32, seconds: u64, prepared: bool) -> f64 {
    let plans = if prepared { "-c plan_cache_mode=force_generic_plan" } else { "" };
    let output = Command::new("pgbench")
        .env("PGOPTIONS", plans)
        .args(["-n", "-c", &connections.to_string(), "-j", &connections.min(2).to_string()])
        .args(["-M", if prepared { "prepared" } else { "simple" }])
        .args(["-T", &seconds.to_string(), "-f", script.to_str().unwrap(), url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "pgbench failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    text.lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{text}"))
}

/// Builds a pgbench script of the database work of one upload, without the service. It
/// runs the statement that records a lone upload, read from the query cache in `.sqlx`,
/// with new values for each run. The rate limit is left out, because the service takes its
/// hits 64 at a time. Its requests name the organisation "pgbench", so that step 3 leaves
/// them alone.
fn upload_statements() -> String {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.sqlx");
    let find = |marker: &str| -> String {
        for entry in std::fs::read_dir(&cache).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let query: serde_json::Value = serde_json::from_str(&text).unwrap();
            let sql = query["query"].as_str().unwrap();
            if sql.contains(marker) {
                // One line for pgbench: drop the comment lines, then the line breaks.
                let lines = sql.lines().filter(|line| !line.trim_start().starts_with("--"));
                return lines.flat_map(str::split_whitespace).collect::<Vec<_>>().join(" ");
            }
        }
        panic!("no query in {} contains {marker:?}", cache.display())
    };
    let values = |sql: String, values: &[&str]| {
        values.iter().enumerate().rev().fold(sql, |sql, (index, value)| sql.replace(&format!("${}", index + 1), value))
    };
    // A lone upload has a statement of its own, without the arrays of a batch.
    let upload = values(
        find("CROSS JOIN reused LEFT JOIN inserted"),
        &[
            "gen_random_uuid()",
            "'staging'",
            "'pgbench'",
            "'load@example.nl'",
            "'pending'",
            "decode(repeat('30', 300), 'hex')",
            "sha256(:key::text::bytea)",
            "'[]'::jsonb",
            "NULL::uuid",
            "true",
            "sha256((:key || 'token')::bytea)",
            r#"'{"warnings": [], "invitation": null, "unverified": true}'::jsonb"#,
        ],
    );
    format!("\\set key random(1, 9000000000000000)\n{upload};\n")
}

fn psql(url: &str, sql: &str) {
    let output = Command::new("psql").args(["-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql]).output().unwrap();
    assert!(output.status.success(), "psql: {}", String::from_utf8_lossy(&output.stderr));
}

fn psql_rows(url: &str, sql: &str) -> Vec<String> {
    let output = Command::new("psql").args(["-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql]).output().unwrap();
    assert!(output.status.success(), "psql: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect()
}

fn run(binary: &Path, url: &str, args: &[&str], stdin: &str) -> std::process::Output {
    ozo_system_tests::run_with_stdin(Command::new(binary).args(args).env("DATABASE_URL", url), stdin)
}

/// Starts `cfssl serve` on 127.0.0.1 with a new P-256 CA and measures its sign endpoint
/// on distinct CSRs of the same subject.
fn cfssl_rate(dir: &Path, connections: u32, seconds: u64) -> WrkResult {
    let ca = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30"])
        .args(["-keyout", "cfssl-ca-key.pem", "-out", "cfssl-ca.pem", "-subj", "/CN=cfssl bench CA/O=OZOverbindzorg"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(ca.status.success(), "{}", String::from_utf8_lossy(&ca.stderr));
    let signing = r#"{"signing": {"default": {"expiry": "8760h", "usages": ["digital signature", "client auth"]}}}"#;
    std::fs::write(dir.join("cfssl.json"), signing).unwrap();

    let port = free_port();
    let mut cfssl = Command::new("cfssl")
        .args(["serve", "-address", "127.0.0.1", "-port", &port.to_string()])
        .args(["-ca", "cfssl-ca.pem", "-ca-key", "cfssl-ca-key.pem", "-config", "cfssl.json", "-loglevel", "4"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "cfssl serve did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let prefix = dir.join("cfssl");
    let json_line = |pem: &str| serde_json::json!({ "certificate_request": pem }).to_string();
    write_csr_files(&prefix, 2, CSRS_PER_SECOND * seconds / 4, json_line);
    let script = dir.join("cfssl.lua");
    // The bodies are JSON lines here; the upload script sends each line as it is.
    std::fs::write(&script, format!("{THREAD_IDS}{UPLOAD_SCRIPT}")).unwrap();
    let result = wrk(
        &script,
        &format!("http://127.0.0.1:{port}/api/v1/cfssl/sign"),
        connections,
        2,
        seconds,
        &[prefix.to_str().unwrap(), "0", "application/json"],
    );

    let _ = cfssl.kill();
    let _ = cfssl.wait();
    result
}
