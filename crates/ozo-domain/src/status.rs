//! The states of a request and the transitions between them.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// The state of a request.
///
/// `rejected`, `denied` and `revoked` are final. Expiry is read from the certificate and
/// is not a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    Pending,
    Approved,
    Issued,
    Rejected,
    Denied,
    Failed,
    Revoked,
}

impl RequestStatus {
    pub const ALL: [RequestStatus; 7] = [
        RequestStatus::Pending,
        RequestStatus::Approved,
        RequestStatus::Issued,
        RequestStatus::Rejected,
        RequestStatus::Denied,
        RequestStatus::Failed,
        RequestStatus::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Issued => "issued",
            RequestStatus::Rejected => "rejected",
            RequestStatus::Denied => "denied",
            RequestStatus::Failed => "failed",
            RequestStatus::Revoked => "revoked",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, RequestStatus::Rejected | RequestStatus::Denied | RequestStatus::Revoked)
    }

    /// Whether a request may move from `self` to `next`.
    pub fn can_become(self, next: RequestStatus) -> bool {
        use RequestStatus::*;
        matches!(
            (self, next),
            (Pending, Approved)
                | (Pending, Denied)
                | (Approved, Issued)
                | (Approved, Failed)
                | (Failed, Approved)
                | (Issued, Revoked)
        )
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown request status {0:?}: expected pending, approved, issued, rejected, denied, failed or revoked")]
pub struct UnknownStatus(pub String);

impl FromStr for RequestStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RequestStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips() {
        for status in RequestStatus::ALL {
            assert_eq!(status.as_str().parse::<RequestStatus>().unwrap(), status);
        }
        assert!("expired".parse::<RequestStatus>().is_err());
    }

    #[test]
    fn final_states_have_no_way_out() {
        for from in RequestStatus::ALL.into_iter().filter(|s| s.is_final()) {
            for to in RequestStatus::ALL {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn issue_only_after_approval() {
        assert!(RequestStatus::Approved.can_become(RequestStatus::Issued));
        assert!(!RequestStatus::Pending.can_become(RequestStatus::Issued));
        assert!(!RequestStatus::Failed.can_become(RequestStatus::Issued));
    }
}
