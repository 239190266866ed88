//! A private PostgreSQL cluster made from the machine's PostgreSQL binaries, for
//! `ozo-signer dev` and for tests when `DATABASE_URL` is not set.
//!
//! The cluster lives in the temporary directory, listens only on a Unix socket inside
//! its own directory, trusts local connections, and keeps running after the process
//! that started it ends, so later runs reuse it. Delete the directory to start afresh.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[derive(Debug, thiserror::Error)]
pub enum DevDbError {
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl) were found in $PG_BIN, `pg_config --bindir` \
         or /usr/lib/postgresql/*/bin. Install them (Debian: apt-get install postgresql) or set \
         DATABASE_URL to an existing PostgreSQL server"
    )]
    NoBinaries,
    #[error("failed to {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{command} failed ({status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
}

/// A running private cluster.
#[derive(Clone, Debug)]
pub struct DevCluster {
    pub directory: PathBuf,
}

impl DevCluster {
    /// The URL of a database in the cluster, over the Unix socket.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@localhost/{database}?host={}", self.directory.display())
    }
}

/// The default location: one cluster per user in the temporary directory.
pub fn default_directory() -> PathBuf {
    let uid = fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap_or(0);
    std::env::temp_dir().join(format!("ozo-signer-postgres-{uid}"))
}

/// Starts the cluster in `directory`, creating it first when needed, and returns once it
/// accepts connections. Concurrent callers wait for each other.
pub fn ensure_running(directory: &Path) -> Result<DevCluster, DevDbError> {
    let bin = find_binaries()?;
    let parent = directory.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(parent).map_err(|source| io("create", parent, source))?;

    let lock_path = directory.with_extension("lock");
    let lock = File::create(&lock_path).map_err(|source| io("create", &lock_path, source))?;
    lock.lock().map_err(|source| io("lock", &lock_path, source))?;

    // PostgreSQL refuses to run as root, so root runs it as the postgres user.
    let run_as = if is_root() { system_user("postgres") } else { None };

    if !directory.join("PG_VERSION").exists() {
        let _ = fs::remove_dir_all(directory);
        fs::create_dir_all(directory).map_err(|source| io("create", directory, source))?;
        fs::set_permissions(directory, fs::Permissions::from_mode(0o700))
            .map_err(|source| io("set permissions of", directory, source))?;
        if let Some((uid, gid)) = run_as {
            chown(directory, uid, gid)?;
        }
        run(
            Command::new(bin.join("initdb"))
                .args(["--auth=trust", "--username=postgres", "--encoding=UTF8", "--no-instructions", "-D"])
                .arg(directory),
            run_as,
        )?;
    }

    let status = command_output(Command::new(bin.join("pg_ctl")).arg("status").arg("-D").arg(directory), run_as)?;
    if !status.status.success() {
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c fsync=off -c synchronous_commit=off -c max_connections=200",
            directory.display()
        );
        run(
            Command::new(bin.join("pg_ctl"))
                .args(["start", "-w", "-t", "60", "-D"])
                .arg(directory)
                .arg("-l")
                .arg(directory.join("server.log"))
                .arg("-o")
                .arg(options),
            run_as,
        )?;
    }

    Ok(DevCluster { directory: directory.to_owned() })
}

fn find_binaries() -> Result<PathBuf, DevDbError> {
    let has_binaries = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();

    if let Some(dir) = std::env::var_os("PG_BIN").map(PathBuf::from) {
        if has_binaries(&dir) {
            return Ok(dir);
        }
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && has_binaries(&dir) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_binaries(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir).ok_or(DevDbError::NoBinaries)
}

fn is_root() -> bool {
    fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

/// The uid and gid of a system user, read from /etc/passwd.
fn system_user(name: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() != Some(&name) || fields.len() < 4 {
            return None;
        }
        Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
    })
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), DevDbError> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|source| io("change the owner of", path, source))
}

fn command_output(command: &mut Command, run_as: Option<(u32, u32)>) -> Result<Output, DevDbError> {
    if let Some((uid, gid)) = run_as {
        command.uid(uid).gid(gid).current_dir("/");
    }
    let program = command.get_program().to_string_lossy().into_owned();
    command.output().map_err(|source| io("run", Path::new(&program), source))
}

fn run(command: &mut Command, run_as: Option<(u32, u32)>) -> Result<(), DevDbError> {
    let output = command_output(command, run_as)?;
    if output.status.success() {
        return Ok(());
    }
    Err(DevDbError::Command {
        command: command.get_program().to_string_lossy().into_owned(),
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> DevDbError {
    DevDbError::Io { action, path: path.to_owned(), source }
}
