//! Writes the store refuses because of what the client sent, told apart
//! from failures: the client gets a 4xx naming its mistake, also when the
//! write was forwarded to an owner of the key and the owner refused it.

use crate::storage::StorageError;
use crate::version::WriteRefused;

/// What was wrong with a refused write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectionKind {
    /// The context claims versions no node could have issued.
    InvalidContext,
    /// The key would hold more concurrent versions than it may.
    TooManySiblings,
    /// The key's versions would be larger than they may.
    ObjectTooLarge,
}

impl RejectionKind {
    const ALL: [RejectionKind; 3] = [
        RejectionKind::InvalidContext,
        RejectionKind::TooManySiblings,
        RejectionKind::ObjectTooLarge,
    ];

    /// The machine-readable code clients get.
    pub fn code(self) -> &'static str {
        match self {
            RejectionKind::InvalidContext => "invalid_context",
            RejectionKind::TooManySiblings => "too_many_siblings",
            RejectionKind::ObjectTooLarge => "object_too_large",
        }
    }
}

/// A write refused because of what the client sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// What was wrong.
    pub kind: RejectionKind,
    /// Why, for the client.
    pub message: String,
}

/// How an owner's refusal of a forwarded write starts its failure message
/// (`Response::Failed`), followed by the code and the message.
const WIRE_PREFIX: &str = "rejected ";

impl Rejection {
    /// The rejection a storage error stands for, if the client caused it.
    pub fn of(error: &StorageError) -> Option<Self> {
        let kind = match error {
            StorageError::ImpossibleContext { .. } | StorageError::CounterExhausted => {
                RejectionKind::InvalidContext
            }
            StorageError::Refused(WriteRefused::TooManySiblings { .. }) => {
                RejectionKind::TooManySiblings
            }
            StorageError::Refused(WriteRefused::TooLarge { .. }) => RejectionKind::ObjectTooLarge,
            _ => return None,
        };
        Some(Self {
            kind,
            message: error.to_string(),
        })
    }

    /// The failure message an owner answers a forwarded write with.
    pub fn to_wire(&self) -> String {
        format!("{WIRE_PREFIX}{} {}", self.kind.code(), self.message)
    }

    /// The rejection an owner's failure message carries, if it is one.
    pub fn from_wire(message: &str) -> Option<Self> {
        let (code, message) = message.strip_prefix(WIRE_PREFIX)?.split_once(' ')?;
        let kind = RejectionKind::ALL.into_iter().find(|k| k.code() == code)?;
        Some(Self {
            kind,
            message: message.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_survive_the_wire_and_failures_are_not_rejections() {
        let errors = [
            StorageError::ImpossibleContext {
                counter: u64::MAX,
                issued: 9,
            },
            StorageError::CounterExhausted,
            StorageError::Refused(WriteRefused::TooManySiblings { siblings: 101 }),
            StorageError::Refused(WriteRefused::TooLarge { bytes: 1 << 30 }),
        ];
        for error in &errors {
            let rejection = Rejection::of(error).unwrap();
            assert_eq!(rejection.message, error.to_string());
            assert_eq!(Rejection::from_wire(&rejection.to_wire()), Some(rejection));
        }
        let stale = crate::version::Dot {
            actor: 1,
            counter: 1,
        };
        assert_eq!(
            Rejection::of(&StorageError::Refused(WriteRefused::StaleDot(stale))),
            None
        );
        assert_eq!(Rejection::of(&StorageError::WriterStopped), None);
        assert_eq!(Rejection::from_wire("the storage writer has stopped"), None);
        assert_eq!(Rejection::from_wire("rejected no_such_code text"), None);
    }
}
