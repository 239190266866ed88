//! The chain of the event log. Each event's hash covers its content and the hash of the
//! event before it, so changing, removing or reordering a stored event breaks the chain
//! at that event. The database computes the hashes as events are written (the
//! `event_hash` function of the migrations); this module checks them independently.

use sha2::{Digest, Sha256};

/// One stored event, as the chain covers it.
#[derive(Clone, Copy, Debug)]
pub struct ChainEvent<'a> {
    /// The event's place in the chain, from 1.
    pub seq: i64,
    /// The row id, to name the event in a report.
    pub id: i64,
    pub at_unix_micros: i64,
    pub actor: &'a str,
    /// The request id in its usual hyphenated lowercase form.
    pub request_id: Option<&'a str>,
    pub kind: &'a str,
    /// The detail as PostgreSQL prints jsonb.
    pub detail: &'a str,
    pub prev_hash: Option<&'a [u8]>,
    pub hash: &'a [u8],
}

impl ChainEvent<'_> {
    /// Computes the hash the event must carry, given the hash of the event before it.
    pub fn expected_hash(&self, previous: Option<&[u8]>) -> [u8; 32] {
        let request_id = self.request_id.unwrap_or_default();
        let text = format!(
            "{}\n{}\n{}\n{request_id}\n{}\n{}",
            self.seq, self.at_unix_micros, self.actor, self.kind, self.detail
        );
        let mut hasher = Sha256::new();
        hasher.update(previous.unwrap_or_default());
        hasher.update(text.as_bytes());
        hasher.finalize().into()
    }
}

/// The first place where the chain does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("event {id} is at place {found} of the chain, where place {expected} was expected: an event was removed, added or moved")]
    Order { id: i64, expected: i64, found: i64 },
    #[error("event {id} (place {seq}) does not link to the event before it: its previous hash differs")]
    Link { id: i64, seq: i64 },
    #[error("event {id} (place {seq}) does not match its hash: its content was changed")]
    Content { id: i64, seq: i64 },
}

/// Checks events one by one, in chain order, keeping only the last hash.
#[derive(Debug, Default)]
pub struct ChainCheck {
    checked: u64,
    previous: Option<[u8; 32]>,
}

impl ChainCheck {
    pub fn new() -> ChainCheck {
        ChainCheck::default()
    }

    /// Checks the next event of the chain.
    pub fn check(&mut self, event: &ChainEvent<'_>) -> Result<(), ChainBreak> {
        let expected = self.checked as i64 + 1;
        if event.seq != expected {
            return Err(ChainBreak::Order { id: event.id, expected, found: event.seq });
        }
        let previous = self.previous.as_ref().map(<[u8; 32]>::as_slice);
        if event.prev_hash != previous {
            return Err(ChainBreak::Link { id: event.id, seq: event.seq });
        }
        let hash = event.expected_hash(previous);
        if event.hash != hash.as_slice() {
            return Err(ChainBreak::Content { id: event.id, seq: event.seq });
        }
        self.checked += 1;
        self.previous = Some(hash);
        Ok(())
    }

    /// Returns the number of events checked so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// Returns the hash of the last event checked: the head of the chain once all are checked.
    pub fn head(&self) -> Option<[u8; 32]> {
        self.previous
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(details: &[&str]) -> Vec<(i64, String, Option<Vec<u8>>, Vec<u8>)> {
        let mut previous: Option<Vec<u8>> = None;
        let mut rows = Vec::new();
        for (index, detail) in details.iter().enumerate() {
            let seq = index as i64 + 1;
            let event = ChainEvent {
                seq,
                id: seq,
                at_unix_micros: 1_796_426_820_257_413,
                actor: "cli",
                request_id: None,
                kind: "test",
                detail,
                prev_hash: previous.as_deref(),
                hash: &[],
            };
            let hash = event.expected_hash(previous.as_deref()).to_vec();
            rows.push((seq, detail.to_string(), previous.clone(), hash.clone()));
            previous = Some(hash);
        }
        rows
    }

    fn check_all(rows: &[(i64, String, Option<Vec<u8>>, Vec<u8>)]) -> Result<u64, ChainBreak> {
        let mut check = ChainCheck::new();
        for (seq, detail, prev, hash) in rows {
            let event = ChainEvent {
                seq: *seq,
                id: *seq,
                at_unix_micros: 1_796_426_820_257_413,
                actor: "cli",
                request_id: None,
                kind: "test",
                detail,
                prev_hash: prev.as_deref(),
                hash,
            };
            check.check(&event)?;
        }
        Ok(check.checked())
    }

    #[test]
    fn matches_the_database_encoding() {
        // Computed by PostgreSQL's event_hash for this event (see the migration).
        let event = ChainEvent {
            seq: 1,
            id: 1,
            at_unix_micros: 1_796_426_820_257_413,
            actor: "cli",
            request_id: None,
            kind: "test",
            detail: r#"{"a": [1, 2], "b": 1}"#,
            prev_hash: None,
            hash: &[],
        };
        assert_eq!(
            hex::encode(event.expected_hash(None)),
            "1afc441a176e8d1bb2499569667b445cdb3495634bc29abb8c87aa751163b60f"
        );
    }

    #[test]
    fn intact_chain_passes_and_each_change_is_named() {
        let rows = chain(&["{}", r#"{"a": 1}"#, r#"{"b": 2}"#, "{}"]);
        assert_eq!(check_all(&rows), Ok(4));

        let mut changed = rows.clone();
        changed[2].1 = r#"{"b": 3}"#.to_owned();
        assert_eq!(check_all(&changed), Err(ChainBreak::Content { id: 3, seq: 3 }));

        let mut removed = rows.clone();
        removed.remove(1);
        assert_eq!(check_all(&removed), Err(ChainBreak::Order { id: 3, expected: 2, found: 3 }));

        let mut swapped = rows.clone();
        swapped.swap(1, 2);
        swapped[1].0 = 2;
        swapped[2].0 = 3;
        assert_eq!(check_all(&swapped), Err(ChainBreak::Link { id: 2, seq: 2 }));
    }
}
