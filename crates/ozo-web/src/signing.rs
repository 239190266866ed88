//! The signing queue's worker: claims a job, has the environment's CA sign the request,
//! verifies the certificate and records it, all in the transaction that locked the job.

use std::time::Duration;

use ozo_ca::{check_issued, RevocationRequest, SignError, SigningRequest};
use ozo_domain::RequestStatus;
use ozo_store::approvals;
use ozo_store::certificates::{self, NewCertificate, RemoteRecord};
use ozo_store::events::{self, Actor};
use ozo_store::jobs::{self, ClaimedJob, JobAction};
use ozo_store::requests::{self, Transition};
use ozo_store::{PgConnection, StoreError};
use rand::Rng;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ApiError, AppState};

/// Failed attempts after which a retryable error fails the request for an operator.
const MAX_ATTEMPTS: i32 = 12;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(300);
/// How often the worker looks for due jobs when it finds none.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The outcome of one attempt at a job.
enum Outcome {
    /// The CA did what the job asked, and it is recorded.
    Issued,
    /// The CA could not be reached or failed; try again later.
    Retry(String),
    /// The request cannot be signed as it is; an operator must act.
    Failed(String),
    /// The request left the approved state while its job waited.
    Gone,
}

/// Runs one due job, the one of `request_id` when given. Returns whether there was one.
pub async fn run_job(state: &AppState, request_id: Option<Uuid>) -> Result<bool, ApiError> {
    let mut tx = state.pool().begin().await?;
    let Some(job) = jobs::claim(&mut tx, request_id).await? else {
        return Ok(false);
    };

    match job.action {
        JobAction::Issue => {
            let outcome = attempt(state, &mut tx, job).await?;
            count_attempt(job.action, &outcome);
            finish_issue(&mut tx, job, outcome).await?;
        }
        JobAction::Revoke => {
            let outcome = attempt_revocation(state, &mut tx, job).await?;
            count_attempt(job.action, &outcome);
            finish_revocation(&mut tx, job, outcome).await?;
        }
    }

    tx.commit().await?;
    Ok(true)
}

impl Outcome {
    /// Returns the `outcome` label of `ozo_signing_attempts_total`.
    fn label(&self) -> &'static str {
        match self {
            Outcome::Issued => "done",
            Outcome::Retry(_) => "retry",
            Outcome::Failed(_) => "failed",
            Outcome::Gone => "gone",
        }
    }
}

/// Every value of [`Outcome::label`], so that each series can start at zero.
pub(crate) const OUTCOME_LABELS: [&str; 4] = ["done", "retry", "failed", "gone"];

/// Counts a job's attempt at the CA by what it asked and how it ended.
fn count_attempt(action: JobAction, outcome: &Outcome) {
    metrics::counter!("ozo_signing_attempts_total", "action" => action.as_str(), "outcome" => outcome.label())
        .increment(1);
}

async fn finish_issue(conn: &mut PgConnection, job: ClaimedJob, outcome: Outcome) -> Result<(), StoreError> {
    match outcome {
        Outcome::Issued | Outcome::Gone => jobs::complete(conn, job.request_id).await?,
        Outcome::Retry(error) if job.attempts + 1 < MAX_ATTEMPTS => {
            let delay = backoff(job.attempts);
            tracing::warn!(request.id = %job.request_id, attempt = job.attempts + 1, retry_in_ms = delay.as_millis() as u64, error, "signing failed; will retry");
            jobs::postpone(conn, job.request_id, delay.as_millis() as i64, &error).await?;
        }
        Outcome::Retry(error) | Outcome::Failed(error) => {
            tracing::error!(request.id = %job.request_id, attempts = job.attempts + 1, error, "signing failed");
            if requests::transition(conn, job.request_id, RequestStatus::Approved, RequestStatus::Failed, Some(&error))
                .await?
                == Transition::Done
            {
                events::append(conn, &Actor::Signer, Some(job.request_id), "signing.failed", json!({ "error": error }))
                    .await?;
            }
            jobs::complete(conn, job.request_id).await?;
        }
    }
    Ok(())
}

/// A revocation is already decided and recorded, so its job never gives up. An
/// unavailable CA is retried with backoff. A CA that rejects the call is called again at
/// the longest interval, with the error logged and shown on the request page.
async fn finish_revocation(conn: &mut PgConnection, job: ClaimedJob, outcome: Outcome) -> Result<(), StoreError> {
    match outcome {
        Outcome::Issued | Outcome::Gone => jobs::complete(conn, job.request_id).await?,
        Outcome::Retry(error) => {
            let delay = backoff(job.attempts);
            tracing::warn!(request.id = %job.request_id, attempt = job.attempts + 1, retry_in_ms = delay.as_millis() as u64, error, "revocation at the CA failed; will retry");
            jobs::postpone(conn, job.request_id, delay.as_millis() as i64, &error).await?;
        }
        Outcome::Failed(error) => {
            tracing::error!(request.id = %job.request_id, attempt = job.attempts + 1, error, "the CA rejected a revocation; will ask again");
            jobs::postpone(conn, job.request_id, LONGEST_RETRY.as_millis() as i64, &error).await?;
        }
    }
    Ok(())
}

/// Asks the CA to revoke the certificate of a revoked request, and records its
/// confirmation.
async fn attempt_revocation(state: &AppState, conn: &mut PgConnection, job: ClaimedJob) -> Result<Outcome, StoreError> {
    let id = job.request_id;
    let Some(row) = requests::get(conn, id).await? else {
        return Ok(Outcome::Gone);
    };
    let Some(certificate) = certificates::for_request(conn, id).await? else {
        return Ok(Outcome::Gone);
    };
    if certificate.ca_revoked_at.is_some() {
        return Ok(Outcome::Gone);
    }
    let Some(environment) = state.environment(&row.environment) else {
        return Ok(Outcome::Failed(format!("the environment {} is no longer configured", row.environment)));
    };
    let reason_name = certificate.revocation_reason.as_deref().unwrap_or("unspecified");
    let Ok(reason) = reason_name.parse::<ozo_domain::RevocationReason>() else {
        return Ok(Outcome::Failed(format!("the stored revocation reason {reason_name:?} is not an RFC 5280 reason")));
    };

    let request = RevocationRequest {
        request_id: id,
        serial_hex: &certificate.serial_hex,
        certificate_name: certificate.ca_certificate_name.as_deref(),
        reason,
    };
    match environment.signer.revoke(request).await {
        Ok(()) => {}
        Err(SignError::Unavailable(error)) => return Ok(Outcome::Retry(error)),
        Err(SignError::Rejected(error)) => return Ok(Outcome::Failed(error)),
    }

    certificates::confirm_revocation(conn, id).await?;
    let detail = json!({ "serial": certificate.serial_hex, "reason": reason.as_str(), "attempts": job.attempts + 1 });
    events::append(conn, &Actor::Signer, Some(id), "certificate.revocation_confirmed", detail).await?;
    tracing::info!(request.id = %id, certificate.serial = %certificate.serial_hex, reason = %reason, "the CA revoked a certificate");
    Ok(Outcome::Issued)
}

/// Exponential backoff with ±25% jitter, so that retries of many jobs spread out.
fn backoff(attempts: i32) -> Duration {
    let exponential = FIRST_RETRY.saturating_mul(1 << attempts.clamp(0, 16));
    let capped = exponential.min(LONGEST_RETRY);
    capped.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
}

/// Signs the job's request and records the certificate in `conn`'s transaction.
async fn attempt(state: &AppState, conn: &mut PgConnection, job: ClaimedJob) -> Result<Outcome, StoreError> {
    let id = job.request_id;
    let Some(row) = requests::get(conn, id).await? else {
        return Ok(Outcome::Gone);
    };
    if row.status != RequestStatus::Approved {
        return Ok(Outcome::Gone);
    }
    let Some(environment) = state.environment(&row.environment) else {
        return Ok(Outcome::Failed(format!("the environment {} is no longer configured", row.environment)));
    };

    // The approvals' digest is computed again from the stored CSR as validated today, so
    // only what every operator approved is signed, whatever happened to the row since.
    let (csr, digest) = match crate::issuance::approval_digest(state, &row) {
        Ok(computed) => computed,
        Err(reason) => return Ok(Outcome::Failed(reason)),
    };
    let approvals = approvals::for_request(conn, id).await?;
    if approvals.len() < environment.approvals_required {
        return Ok(Outcome::Failed(format!(
            "the request has {} of the {} approvals it needs",
            approvals.len(),
            environment.approvals_required
        )));
    }
    if let Some(stale) = approvals.iter().find(|approval| approval.digest != digest) {
        return Ok(Outcome::Failed(format!(
            "the approval by {} covers other values than the request has now (CSR, key, environment, CA, lifetime or policy version)",
            stale.account
        )));
    }

    let round = requests::signing_round(conn, id).await?;
    let request = SigningRequest { request_id: id, csr: &csr, lifetime: environment.lifetime, round };
    let issued = match environment.signer.sign(request).await {
        Ok(issued) => issued,
        Err(SignError::Unavailable(error)) => return Ok(Outcome::Retry(error)),
        Err(SignError::Rejected(error)) => return Ok(Outcome::Failed(error)),
    };

    let root = environment.signer.ca_certificate_pem();
    if let Err(mismatch) = check_issued(&issued, &csr, environment.lifetime, root, OffsetDateTime::now_utc()) {
        let ca_name = issued.ca_record.as_ref().map(|record| record.name.as_str());
        tracing::error!(
            request.id = %id,
            certificate.serial = %issued.serial_hex,
            certificate.ca_name = ca_name,
            error = %mismatch,
            "the CA returned a certificate that fails our checks; it is not recorded"
        );

        // The certificate is never handed out, so it is revoked where the CA keeps it. A
        // failure is logged and recorded in the event for the operator.
        let revoked_at_ca = match ca_name {
            None => false,
            Some(name) => {
                let revocation = RevocationRequest {
                    request_id: id,
                    serial_hex: &issued.serial_hex,
                    certificate_name: Some(name),
                    reason: ozo_domain::RevocationReason::Superseded,
                };
                match environment.signer.revoke(revocation).await {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::error!(request.id = %id, certificate.ca_name = name, error = %error, "failed to revoke the rejected certificate at the CA");
                        false
                    }
                }
            }
        };

        // The next attempt requests a new certificate from the CA instead of this one.
        requests::next_signing_round(conn, id).await?;
        let detail = json!({
            "serial": issued.serial_hex,
            "ca_name": ca_name,
            "round": round,
            "error": mismatch.to_string(),
            "revoked_at_ca": revoked_at_ca,
        });
        events::append(conn, &Actor::Signer, Some(id), "certificate.rejected", detail).await?;
        let hint = match mismatch {
            ozo_ca::CertificateMismatch::Chain(_) => {
                " Check that root_certificate in the environment's CA settings is the pool's root; it is read when the service starts."
            }
            _ => "",
        };
        return Ok(Outcome::Failed(format!("the CA returned a certificate that fails our checks: {mismatch}.{hint}")));
    }
    let Ok(sha256) = hex::decode(&issued.sha256_hex) else {
        return Ok(Outcome::Failed("the CA returned an invalid certificate fingerprint".to_owned()));
    };

    if requests::transition(conn, id, RequestStatus::Approved, RequestStatus::Issued, None).await? != Transition::Done {
        return Ok(Outcome::Gone);
    }
    certificates::insert(
        conn,
        &NewCertificate {
            request_id: id,
            serial_hex: &issued.serial_hex,
            issuer: &issued.issuer,
            pem: &issued.pem,
            chain_pem: &issued.chain_pem,
            not_before: issued.not_before,
            not_after: issued.not_after,
            sha256: &sha256,
            spki_sha256: &csr.spki_sha256(),
            remote: issued.ca_record.as_ref().map(|record| RemoteRecord {
                name: &record.name,
                certificate_id: &record.certificate_id,
                request_id: record.request_id,
                issuing_ca: &record.issuing_ca,
            }),
        },
    )
    .await?;
    let ca_name = issued.ca_record.as_ref().map(|record| record.name.as_str());
    let detail = json!({ "serial": issued.serial_hex, "issuer": issued.issuer, "ca_name": ca_name, "not_after": issued.not_after.unix_timestamp(), "attempts": job.attempts + 1 });
    events::append(conn, &Actor::Signer, Some(id), "certificate.issued", detail).await?;

    tracing::info!(request.id = %id, environment = %row.environment, certificate.serial = %issued.serial_hex, "issued a certificate");
    Ok(Outcome::Issued)
}

/// Works the signing queue until `shutdown` resolves: runs due jobs one after another,
/// and looks again every few seconds when none is due.
pub async fn worker(state: AppState, shutdown: impl std::future::Future<Output = ()>) {
    use futures_util::FutureExt;

    tokio::pin!(shutdown);
    loop {
        // A busy queue never leaves the worker idle, so the signal is checked between jobs too.
        if (&mut shutdown).now_or_never().is_some() {
            break;
        }
        let idle = match run_job(&state, None).await {
            Ok(ran) => !ran,
            Err(error) => {
                tracing::error!(error = %error, "the signing worker failed to run a job");
                true
            }
        };
        if idle {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }
    tracing::info!("signing worker stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let first = backoff(0);
        assert!(first >= Duration::from_millis(750), "{first:?}");
        assert!(first <= Duration::from_millis(1250), "{first:?}");
        let fourth = backoff(3);
        assert!(fourth >= Duration::from_secs(6), "{fourth:?}");
        assert!(fourth <= Duration::from_secs(10), "{fourth:?}");
        let late = backoff(30);
        assert!(late <= LONGEST_RETRY.mul_f64(1.25), "{late:?}");
        assert!(late >= LONGEST_RETRY.mul_f64(0.75), "{late:?}");
    }

    #[test]
    fn outcome_labels_are_listed() {
        let outcomes = [Outcome::Issued, Outcome::Retry(String::new()), Outcome::Failed(String::new()), Outcome::Gone];
        let labels: Vec<&str> = outcomes.iter().map(Outcome::label).collect();
        assert_eq!(labels, OUTCOME_LABELS);
    }
}
