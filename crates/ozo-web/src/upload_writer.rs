//! Records accepted uploads in batches: uploads that arrive while a batch is being
//! written wait for the next one, and each batch is one statement and one commit. Under
//! load this spreads the cost of a commit over many uploads. A lone upload is written at
//! once, on its own.
//!
//! A handler responds to its client only after the batch with its upload has committed,
//! so nothing accepted is lost. An upload whose handler went away meanwhile is still
//! written.

use std::future::Future;
use std::sync::Arc;

use ozo_domain::{Finding, RequestStatus};
use ozo_store::requests::{self, NewRequest, Recorded};
use ozo_store::StoreError;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

/// The maximum number of uploads written in one statement.
const MAX_BATCH: usize = 64;

/// Batches written at the same time, each on its own connection. One writer makes the
/// batches largest: under the load benchmark it used 123 to 144 µs of PostgreSQL CPU time
/// per upload at 32 connections against 195 to 235 µs with four writers, and did more
/// uploads per second (docs/benchmarks.md). Its cost: a batch that waits for a row lock,
/// say of an invitation another transaction is changing, holds up every upload behind it
/// until that transaction ends.
const WRITERS: usize = 1;

/// The number of uploads that may wait for a writer. A handler waits for room beyond it.
const QUEUE_LENGTH: usize = 1024;

/// An accepted upload to record as a pending request.
pub struct AcceptedUpload {
    pub id: Uuid,
    pub environment: String,
    pub organisation: String,
    pub contact: String,
    pub csr_der: Vec<u8>,
    pub spki_sha256: Vec<u8>,
    /// The validation's warnings; an accepted CSR has no error.
    pub warnings: Vec<Finding>,
    pub invitation_id: Option<Uuid>,
    pub unverified: bool,
    pub status_token_sha256: Vec<u8>,
    /// The detail of the `request.received` event.
    pub event_detail: serde_json::Value,
}

impl AcceptedUpload {
    fn request(&self) -> NewRequest<'_> {
        NewRequest {
            id: self.id,
            environment: &self.environment,
            organisation: &self.organisation,
            contact: &self.contact,
            status: RequestStatus::Pending,
            csr_der: Some(&self.csr_der),
            spki_sha256: Some(&self.spki_sha256),
            findings: &self.warnings,
            invitation_id: self.invitation_id,
            unverified: self.unverified,
            status_token_sha256: Some(&self.status_token_sha256),
        }
    }
}

/// The error that kept an upload from being recorded.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the upload writer stopped before it recorded the upload")]
    Stopped,
}

struct Job {
    upload: AcceptedUpload,
    reply: oneshot::Sender<Result<Recorded, StoreError>>,
}

/// The handle that handlers send accepted uploads to.
pub struct UploadWriter {
    sender: mpsc::Sender<Job>,
}

impl UploadWriter {
    /// Starts the writers on the current Tokio runtime. They stop once the handle is dropped
    /// and the uploads sent before are written.
    pub fn start(pool: &PgPool) -> Self {
        // The writers' own connections keep one plan of each statement. PostgreSQL would
        // otherwise plan every batch again, because its arrays differ each time. Under the
        // load benchmark, planning then took a fifth of PostgreSQL's time. That one plan
        // may be made on an empty database, where reading a whole table looks cheapest, so
        // these connections never scan a table: every lookup of the statement has its index.
        let options = (*pool.connect_options())
            .clone()
            .options([("plan_cache_mode", "force_generic_plan"), ("enable_seqscan", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(WRITERS as u32)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .test_before_acquire(false)
            .connect_lazy_with(options);
        let (sender, receiver) = mpsc::channel(QUEUE_LENGTH);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..WRITERS {
            let pool = pool.clone();
            tokio::spawn(write_batches(Arc::clone(&receiver), move |batch| {
                let pool = pool.clone();
                async move { write(&pool, batch).await }
            }));
        }
        UploadWriter { sender }
    }

    /// Records `upload` and returns its outcome, once its batch has committed.
    pub async fn record(&self, upload: AcceptedUpload) -> Result<Recorded, WriteError> {
        let (reply, outcome) = oneshot::channel();
        self.sender.send(Job { upload, reply }).await.map_err(|_| WriteError::Stopped)?;
        Ok(outcome.await.map_err(|_| WriteError::Stopped)??)
    }
}

/// Takes the uploads waiting, up to [`MAX_BATCH`], has `write` write them, and starts
/// over.
async fn write_batches<W, F>(receiver: Arc<Mutex<mpsc::Receiver<Job>>>, write: W)
where
    W: Fn(Vec<Job>) -> F,
    F: Future<Output = ()>,
{
    // Uploads put off to the next batch, because their invitation is in this one.
    let mut later: Vec<Job> = Vec::new();
    loop {
        let mut batch = Vec::new();
        for job in std::mem::take(&mut later) {
            add_or_put_off(&mut batch, &mut later, job);
        }

        // A writer with put-off uploads does not wait for the receiver, because an idle
        // writer keeps it locked while it waits for the next upload, which may never come.
        let receiver = if batch.is_empty() { Some(receiver.lock().await) } else { receiver.try_lock().ok() };
        if let Some(mut receiver) = receiver {
            if batch.is_empty() {
                match receiver.recv().await {
                    Some(job) => batch.push(job),
                    None => return,
                }
            }
            while batch.len() < MAX_BATCH {
                let Ok(job) = receiver.try_recv() else { break };
                add_or_put_off(&mut batch, &mut later, job);
            }
        }

        write(batch).await;
    }
}

/// Adds `job` to `batch`, or to `later` when the batch already names its invitation.
fn add_or_put_off(batch: &mut Vec<Job>, later: &mut Vec<Job>, job: Job) {
    let invitation = job.upload.invitation_id;
    if invitation.is_some() && batch.iter().any(|queued| queued.upload.invitation_id == invitation) {
        later.push(job);
        return;
    }
    batch.push(job);
}

/// Writes one batch and sends each upload's outcome to its handler.
async fn write(pool: &PgPool, mut batch: Vec<Job>) {
    metrics::histogram!("ozo_upload_batch_size").record(batch.len() as f64);

    let error = match record(pool, &batch).await {
        Ok(outcomes) => {
            for (job, outcome) in batch.into_iter().zip(outcomes) {
                // A handler that went away does not need the outcome.
                let _ = job.reply.send(Ok(outcome));
            }
            return;
        }
        Err(error) => error,
    };

    if batch.len() == 1 {
        if let Some(job) = batch.pop() {
            let _ = job.reply.send(Err(error));
        }
        return;
    }

    // One upload can fail a whole batch, for example two of the same key. Each then gets
    // its own statement and its own outcome.
    tracing::warn!(error = %error, uploads = batch.len(), "a batch of uploads failed to commit, so each is recorded on its own");
    for job in batch {
        let outcome = record(pool, std::slice::from_ref(&job)).await.and_then(|mut outcomes| {
            outcomes.pop().ok_or_else(|| StoreError::Corrupt("an upload was recorded without an outcome".to_owned()))
        });
        let _ = job.reply.send(outcome);
    }
}

/// Records the uploads of `jobs` in one statement.
async fn record(pool: &PgPool, jobs: &[Job]) -> Result<Vec<Recorded>, StoreError> {
    let requests: Vec<_> = jobs.iter().map(|job| (job.upload.request(), job.upload.event_detail.clone())).collect();
    let mut conn = pool.acquire().await?;
    requests::record_uploads(&mut conn, &requests).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(invitation_id: Option<Uuid>) -> Job {
        let upload = AcceptedUpload {
            id: Uuid::new_v4(),
            environment: "staging".to_owned(),
            organisation: "Zorggroep Noord".to_owned(),
            contact: "it@noord.example".to_owned(),
            csr_der: Vec::new(),
            spki_sha256: Vec::new(),
            warnings: Vec::new(),
            invitation_id,
            unverified: invitation_id.is_none(),
            status_token_sha256: Vec::new(),
            event_detail: serde_json::Value::Null,
        };
        Job { upload, reply: oneshot::channel().0 }
    }

    /// Two uploads of one invitation arrive together while every writer is idle. The
    /// first writer puts the second upload off and, after its batch, writes it although
    /// another writer keeps the receiver locked, waiting for an upload that never comes.
    // The runtime has one thread, so the writers only run when the test waits, and always
    // in the same order.
    #[tokio::test(flavor = "current_thread")]
    async fn put_off_upload_written_while_others_wait() {
        let (sender, receiver) = mpsc::channel(QUEUE_LENGTH);
        let receiver = Arc::new(Mutex::new(receiver));
        let written = Arc::new(std::sync::Mutex::new(Vec::<Vec<Uuid>>::new()));
        // The hang needs a second writer, so the test starts four whatever WRITERS is.
        for _ in 0..4 {
            let written = Arc::clone(&written);
            tokio::spawn(write_batches(Arc::clone(&receiver), move |batch: Vec<Job>| {
                let written = Arc::clone(&written);
                async move {
                    // Writing takes a while, in which the other writers run.
                    tokio::task::yield_now().await;
                    let ids = batch.iter().map(|job| job.upload.id).collect();
                    written.lock().unwrap().push(ids);
                }
            }));
        }

        let invitation = Some(Uuid::new_v4());
        let jobs = [job(invitation), job(invitation), job(None)];
        let ids: Vec<Uuid> = jobs.iter().map(|job| job.upload.id).collect();
        for job in jobs {
            sender.send(job).await.unwrap();
        }

        let all_written = async {
            while written.lock().unwrap().concat().len() < ids.len() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(5), all_written).await;
        let batches = written.lock().unwrap().clone();
        assert!(outcome.is_ok(), "not every upload was written within 5 s; batches: {batches:?}");
        // The first batch contains the first upload of the invitation and the upload without
        // one; the put-off upload comes after it in a batch of its own.
        assert_eq!(batches, [vec![ids[0], ids[2]], vec![ids[1]]]);
    }
}
