//! The domain of ozo-signer: environments, CSR validation and request states.
//!
//! This crate performs no I/O. It turns uploaded bytes into either a [`VerifiedCsr`],
//! which only validation can create, or a [`RejectedCsr`] that lists every finding.

pub mod approval;
pub mod audit;
pub mod csr;
pub mod environment;
pub mod finding;
mod input;
pub mod lang;
pub mod revocation;
pub mod status;
mod subject;

pub use approval::ApprovalSubject;
pub use csr::{validate, RejectedCsr, Verdict, VerifiedCsr, MAX_UPLOAD_BYTES};
pub use environment::{Environment, EnvironmentName, ExpectedSubject};
pub use finding::{Finding, FindingCode, Severity};
pub use lang::Lang;
pub use revocation::RevocationReason;
pub use status::RequestStatus;

/// Version of the validation policy. It is part of what an approval records, so a
/// change to the rules invalidates approvals given under the old ones.
pub const POLICY_VERSION: &str = "1";
