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
pub mod requests;

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
        // The searches take optional filters as `($1 IS NULL OR column = $1)`, and only a
        // plan made for the actual values can drop the unused ones and use an index.
        // NOTE: in the benchmark of docs/benchmarks.md this setting changed no figure.
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(&mut *conn, "SET plan_cache_mode = force_custom_plan").await?;
                Ok(())
            })
        })
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
