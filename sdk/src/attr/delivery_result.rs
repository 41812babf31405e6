//! The result of one delivery attempt as one joint dimension.
//!
//! `outcome`, `http.response.status_code` and `error.type` are correlated: a
//! success has neither status nor error, a failure has a status, an error has a
//! kind. Treating them as one axis of 1 + 62 + 7 = 70 values, instead of the
//! product 3 × 62 × 69, keeps the declared bound equal to what can really occur.

use super::error_kind::ErrorKind;
use super::status::{status_index, REGISTERED_STATUS_CODES, STATUS_OTHER_INDEX};
use super::{quoted_list, AttrValue, Attribute, AttributeDoc, Dimension, OTHER};

crate::closed_set! {
    /// How a delivery attempt ended.
    pub enum DeliveryOutcome: "outcome" {
        /// The endpoint answered with a success.
        Success = "success",
        /// The endpoint answered with a status the caller counts as failure.
        Failure = "failure",
        /// No HTTP response: timeout, refused connection, DNS, TLS…
        Error = "error",
    }
}

/// One delivery attempt's result, ready to index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryResult {
    /// Delivered.
    Success,
    /// Answered with this HTTP status.
    Failure(u16),
    /// No response.
    Error(ErrorKind),
}

const FAILURE_BASE: usize = 1;
const ERROR_BASE: usize = FAILURE_BASE + STATUS_OTHER_INDEX + 1;
/// Size of the joint result domain.
pub const DELIVERY_RESULT_CARDINALITY: usize = ERROR_BASE + ErrorKind::ALL.len();

impl DeliveryResult {
    /// The outcome this result belongs to.
    pub fn outcome(self) -> DeliveryOutcome {
        match self {
            DeliveryResult::Success => DeliveryOutcome::Success,
            DeliveryResult::Failure(_) => DeliveryOutcome::Failure,
            DeliveryResult::Error(_) => DeliveryOutcome::Error,
        }
    }

    /// Dense index in the joint domain.
    #[inline]
    pub fn index(self) -> usize {
        match self {
            DeliveryResult::Success => 0,
            DeliveryResult::Failure(code) => FAILURE_BASE + status_index(code),
            DeliveryResult::Error(kind) => ERROR_BASE + kind.index(),
        }
    }
}

impl crate::instrument::Coordinate for DeliveryResult {
    #[inline]
    fn coordinate(self) -> usize {
        self.index()
    }
}

/// The joint `outcome` × `http.response.status_code` × `error.type` dimension.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeliveryResultDimension;

impl Dimension for DeliveryResultDimension {
    fn cardinality(&self) -> usize {
        DELIVERY_RESULT_CARDINALITY
    }

    fn attributes(&self, index: usize, out: &mut Vec<Attribute>) {
        let outcome = |o: DeliveryOutcome| Attribute {
            key: "outcome",
            value: AttrValue::Str(o.as_str()),
        };
        let error_type = |t: &'static str| Attribute {
            key: "error.type",
            value: AttrValue::Str(t),
        };
        if index == 0 {
            out.push(outcome(DeliveryOutcome::Success));
        } else if index < ERROR_BASE {
            out.push(outcome(DeliveryOutcome::Failure));
            match REGISTERED_STATUS_CODES.get(index - FAILURE_BASE) {
                Some((code, text)) => {
                    out.push(Attribute {
                        key: "http.response.status_code",
                        value: AttrValue::Int(i64::from(*code)),
                    });
                    out.push(error_type(text));
                }
                None => out.push(error_type(OTHER)),
            }
        } else if let Some(kind) = ErrorKind::ALL.get(index - ERROR_BASE) {
            out.push(outcome(DeliveryOutcome::Error));
            out.push(error_type(kind.as_str()));
        }
    }

    fn docs(&self) -> Vec<AttributeDoc> {
        vec![
            AttributeDoc {
                key: "outcome",
                values: quoted_list(DeliveryOutcome::ALL.iter().map(|o| o.as_str())),
            },
            AttributeDoc {
                key: "http.response.status_code",
                values: format!(
                    "on `failure` only: the {} IANA-registered codes (100 … 511)",
                    REGISTERED_STATUS_CODES.len()
                ),
            },
            AttributeDoc {
                key: "error.type",
                values: format!(
                    "on `failure`: the status code as text, or `_OTHER` for an unregistered code (then no status attribute); on `error`: {}",
                    quoted_list(ErrorKind::ALL.iter().map(|k| k.as_str()))
                ),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_has_the_attributes_of_its_result() {
        let attrs = |r: DeliveryResult| {
            let mut out = Vec::new();
            DeliveryResultDimension.attributes(r.index(), &mut out);
            out.iter()
                .map(|a| format!("{}={}", a.key, a.value))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(attrs(DeliveryResult::Success), "outcome=success");
        assert_eq!(
            attrs(DeliveryResult::Failure(503)),
            "outcome=failure,http.response.status_code=503,error.type=503"
        );
        assert_eq!(
            attrs(DeliveryResult::Failure(520)),
            "outcome=failure,error.type=_OTHER"
        );
        assert_eq!(
            attrs(DeliveryResult::Error(ErrorKind::Timeout)),
            "outcome=error,error.type=timeout"
        );
        assert_eq!(DELIVERY_RESULT_CARDINALITY, 70);
        let mut out = Vec::new();
        DeliveryResultDimension.attributes(DELIVERY_RESULT_CARDINALITY, &mut out);
        assert!(out.is_empty());
    }
}
