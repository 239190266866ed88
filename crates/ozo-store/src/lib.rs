//! PostgreSQL storage for ozo-signer.
//!
//! Each query is one instrumented function that takes a connection or a transaction, so
//! callers decide what commits together: a state change, its event and anything it
//! creates always share one transaction.

use sqlx::postgres::{PgPool, PgPoolOptions};

pub mod accounts;
pub mod approvals;
pub mod certificates;
pub mod events;
pub mod invitations;
pub mod jobs;
pub mod ratelimits;
pub mod requests;
pub mod stats;

pub use sqlx::{PgConnection, Postgres, Transaction};

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the public key is already on another request or certificate")]
    KeyReuse,
    #[error("an account named {0:?} already exists")]
    AccountExists(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

/// Connects to PostgreSQL.
pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(10))
        // A connection is not pinged before each use: that would add a round trip to
        // every query. A broken connection fails the query that uses it instead.
        .test_before_acquire(false)
        .connect(database_url)
        .await
}

/// Applies the migrations that the database lacks.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Whether an error is the violation of the named unique constraint or index.
fn is_unique_violation(error: &sqlx::Error, constraint: &str) -> bool {
    match error {
        sqlx::Error::Database(db) => db.is_unique_violation() && db.constraint() == Some(constraint),
        _ => false,
    }
}

/// The state of the database's schema against the migrations this binary carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaState {
    /// Every migration this binary carries is applied, and no other.
    Current { version: i64 },
    /// Migrations this binary carries are not applied yet (all of them on a new database).
    Behind { applied: Option<i64>, pending: Vec<i64> },
    /// The database has migrations this binary does not know: a newer release ran there.
    Ahead { known: i64, unknown: Vec<i64> },
    /// A migration failed halfway, or its text differs from the one this binary carries.
    Broken { version: i64, problem: &'static str },
}

impl std::fmt::Display for SchemaState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |versions: &[i64]| versions.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        match self {
            SchemaState::Current { version } => write!(f, "the database schema is current (migration {version})"),
            SchemaState::Behind { applied: None, pending } => write!(
                f,
                "the database has no ozo-signer schema yet; {} migrations are pending. Run `ozo-signer migrate` \
                 as the database owner first",
                pending.len()
            ),
            SchemaState::Behind { applied: Some(applied), pending } => write!(
                f,
                "the database schema (migration {applied}) is older than this binary's; migrations {} are pending. \
                 Run `ozo-signer migrate` as the database owner first",
                list(pending)
            ),
            SchemaState::Ahead { known, unknown } => write!(
                f,
                "the database schema is newer than this binary: migrations {} are unknown to it (it knows up to {known}). \
                 Run the release that applied them, or a newer one",
                list(unknown)
            ),
            SchemaState::Broken { version, problem } => {
                write!(f, "migration {version} {problem}; repair the database before running ozo-signer")
            }
        }
    }
}

/// Compares the applied migrations with [`MIGRATOR`]'s.
#[tracing::instrument(name = "db.schema_state", skip(pool))]
pub async fn schema_state(pool: &PgPool) -> Result<SchemaState, sqlx::Error> {
    // NOTE: `_sqlx_migrations` is sqlx's own table, which does not exist before the first
    // migration, so these two queries are checked at run time, not at compile time.
    let table_exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    let applied: Vec<(i64, bool, Vec<u8>)> = if table_exists {
        sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version").fetch_all(pool).await?
    } else {
        Vec::new()
    };
    Ok(compare_schema(&applied, MIGRATOR.iter().map(|migration| (migration.version, migration.checksum.as_ref()))))
}

/// Compares applied migrations (version, success, checksum) with known ones.
fn compare_schema<'a>(
    applied: &[(i64, bool, Vec<u8>)],
    known: impl Iterator<Item = (i64, &'a [u8])>,
) -> SchemaState {
    let known: std::collections::BTreeMap<i64, &[u8]> = known.collect();
    for (version, success, checksum) in applied {
        if !success {
            return SchemaState::Broken { version: *version, problem: "failed halfway" };
        }
        if known.get(version).is_some_and(|known| *known != checksum.as_slice()) {
            return SchemaState::Broken {
                version: *version,
                problem: "was applied with a different text than this binary carries",
            };
        }
    }
    let newest_known = known.keys().next_back().copied().unwrap_or_default();
    let unknown: Vec<i64> =
        applied.iter().map(|(version, _, _)| *version).filter(|version| !known.contains_key(version)).collect();
    if !unknown.is_empty() {
        return SchemaState::Ahead { known: newest_known, unknown };
    }
    let pending: Vec<i64> = known
        .keys()
        .copied()
        .filter(|version| !applied.iter().any(|(applied, _, _)| applied == version))
        .collect();
    if !pending.is_empty() {
        return SchemaState::Behind { applied: applied.last().map(|(version, _, _)| *version), pending };
    }
    SchemaState::Current { version: newest_known }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<(i64, &'static [u8])> {
        vec![(1, b"a".as_slice()), (2, b"b".as_slice()), (3, b"c".as_slice())]
    }

    #[test]
    fn schema_states() {
        let applied = |versions: &[(i64, &[u8])]| -> Vec<(i64, bool, Vec<u8>)> {
            versions.iter().map(|(version, checksum)| (*version, true, checksum.to_vec())).collect()
        };
        assert_eq!(compare_schema(&[], known().into_iter()), SchemaState::Behind { applied: None, pending: vec![1, 2, 3] });
        assert_eq!(
            compare_schema(&applied(&[(1, b"a")]), known().into_iter()),
            SchemaState::Behind { applied: Some(1), pending: vec![2, 3] }
        );
        assert_eq!(
            compare_schema(&applied(&[(1, b"a"), (2, b"b"), (3, b"c")]), known().into_iter()),
            SchemaState::Current { version: 3 }
        );
        assert_eq!(
            compare_schema(&applied(&[(1, b"a"), (2, b"b"), (3, b"c"), (4, b"d")]), known().into_iter()),
            SchemaState::Ahead { known: 3, unknown: vec![4] }
        );
        assert!(matches!(
            compare_schema(&applied(&[(1, b"a"), (2, b"x")]), known().into_iter()),
            SchemaState::Broken { version: 2, .. }
        ));
        let mut failed = applied(&[(1, b"a")]);
        failed[0].1 = false;
        assert!(matches!(compare_schema(&failed, known().into_iter()), SchemaState::Broken { version: 1, .. }));
    }
}
