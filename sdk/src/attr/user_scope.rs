//! Anonymised user scope.
//!
//! A user id becomes a 32-bit digest (SHA-256, or HMAC-SHA256 keyed with a deployment
//! secret) shown as 8 lowercase hex characters: the *scope*, for traces and logs.
//! The *metric* label is only the first `prefix_len` hex characters, so the series
//! count is `16^prefix_len + 1` (the `+ 1` is `anonymous`), and a hot bucket on a
//! dashboard is matched to users in logs by prefix. Eight hex characters are 4.3
//! billion values: a user id in disguise, not a low-cardinality label.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use std::sync::Arc;

use super::admission::{Admission, AdmissionPolicy, Normaliser};
use super::{quoted_list, AttrValue, Attribute, AttributeDoc, Dimension, OTHER};
use crate::error::ConfigError;
use crate::instrument::Coordinate;

/// The label value of requests that carry no user id.
pub const ANONYMOUS: &str = "anonymous";

/// Shortest accepted HMAC secret: below 128 bits a dictionary attack is cheap.
pub const MIN_SECRET_LEN: usize = 16;

/// An anonymised user: a 32-bit digest of the user id, or anonymous.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserScope(Option<u32>);

impl UserScope {
    /// The scope of requests without a user.
    pub const ANONYMOUS: UserScope = UserScope(None);

    /// The scope whose digest is `digest` (its first four bytes, big-endian).
    pub const fn from_digest(digest: u32) -> Self {
        UserScope(Some(digest))
    }

    /// The full 8-hex scope, for trace and log fields (never a metric attribute).
    pub fn hex(self) -> ScopeHex {
        let mut text = [0u8; 9];
        let len = match self.0 {
            None => {
                text.copy_from_slice(b"anonymous");
                9
            }
            Some(digest) => {
                for (i, slot) in text.iter_mut().take(8).enumerate() {
                    let nibble = (digest >> (28 - 4 * i)) & 0xf;
                    *slot = HEX[nibble as usize];
                }
                8
            }
        };
        ScopeHex { text, len }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The text of a [`UserScope`], without allocating.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ScopeHex {
    text: [u8; 9],
    len: usize,
}

impl ScopeHex {
    /// The text: 8 lowercase hex characters, or `anonymous`.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text[..self.len]).unwrap_or(ANONYMOUS)
    }
}

impl std::fmt::Display for ScopeHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for ScopeHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Derives [`UserScope`]s from user ids.
#[derive(Clone)]
pub struct ScopeHasher {
    keyed: Option<Hmac<Sha256>>,
}

impl std::fmt::Debug for ScopeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = if self.keyed.is_some() {
            "hmac-sha256"
        } else {
            "sha256"
        };
        f.debug_struct("ScopeHasher").field("mode", &mode).finish()
    }
}

impl Default for ScopeHasher {
    fn default() -> Self {
        Self::sha256()
    }
}

impl ScopeHasher {
    /// Plain SHA-256, the common choice: stable across deployments, but an id from a small
    /// space (an e-mail address) can be recovered by hashing a dictionary.
    pub fn sha256() -> Self {
        ScopeHasher { keyed: None }
    }

    /// HMAC-SHA256 keyed with a deployment secret: scopes cannot be reversed
    /// without the secret. Keep the secret stable, or scopes change.
    pub fn keyed(secret: &[u8]) -> Result<Self, ConfigError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError::ScopeSecretTooShort {
                len: secret.len(),
                min: MIN_SECRET_LEN,
            });
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| ConfigError::ScopeSecretTooShort {
            len: secret.len(),
            min: MIN_SECRET_LEN,
        })?;
        Ok(ScopeHasher { keyed: Some(mac) })
    }

    /// The scope of `user_id`; an empty id is [`UserScope::ANONYMOUS`].
    pub fn scope(&self, user_id: &str) -> UserScope {
        if user_id.is_empty() {
            return UserScope::ANONYMOUS;
        }
        let digest: [u8; 32] = match &self.keyed {
            None => Sha256::digest(user_id.as_bytes()).into(),
            Some(mac) => {
                let mut mac = mac.clone();
                mac.update(user_id.as_bytes());
                mac.finalize().into_bytes().into()
            }
        };
        UserScope::from_digest(u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]))
    }

    /// The scope of an optional user id.
    pub fn scope_of(&self, user_id: Option<&str>) -> UserScope {
        user_id.map_or(UserScope::ANONYMOUS, |id| self.scope(id))
    }
}

/// How many hex characters of the scope the metric label keeps (1–8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScopePrefixLen(u8);

impl ScopePrefixLen {
    /// The default, one character: 17 values, which keeps the idempotency counter's
    /// worst case at 6 × 17 × 8 = 816 series (under the usual 2000 limit).
    pub const DEFAULT: ScopePrefixLen = ScopePrefixLen(1);

    /// A prefix of `len` hex characters.
    pub fn new(len: u8) -> Result<Self, ConfigError> {
        if (1..=8).contains(&len) {
            Ok(ScopePrefixLen(len))
        } else {
            Err(ConfigError::ScopePrefixLenOutOfRange { len })
        }
    }

    /// The length in hex characters.
    pub fn get(self) -> u8 {
        self.0
    }

    /// `16^len`: the number of distinct prefixes.
    pub fn prefix_count(self) -> usize {
        1usize << (4 * u32::from(self.0))
    }
}

impl Default for ScopePrefixLen {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The longest prefix whose every value gets a series of its own (`16^3` = 4,096).
/// Longer prefixes pass a first-K admission.
pub const DENSE_MAX_PREFIX_LEN: u8 = 3;

/// The default `K` of admitted prefixes for prefix lengths 4 to 8.
pub const DEFAULT_ADMITTED_SCOPES: usize = 1000;

/// The `user_scope` dimension and its resolver.
///
/// Prefixes of 1 to 3 characters are dense: `16^len` values and `anonymous`.
/// Prefixes of 4 to 8 characters would be 65,536 to 4.3 billion values, so they
/// pass a first-K [`Admission`] (`K` configurable, default 1,000): the first K
/// distinct prefixes seen keep their value, later ones are `_OTHER` (and counted
/// on `outcometer.attribute.overflow{attribute="user_scope"}`), and `anonymous`
/// stays its own value. With length 8 this gives the full 8-hex scope under a
/// declared bound.
#[derive(Debug, Clone)]
pub struct UserScopeDimension {
    prefix: ScopePrefixLen,
    admission: Option<Arc<Admission>>,
}

/// The coordinate of a user scope in [`UserScopeDimension`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScopeCoord(usize);

impl Coordinate for ScopeCoord {
    #[inline]
    fn coordinate(self) -> usize {
        self.0
    }
}

impl UserScopeDimension {
    /// Prefixes of `prefix` characters; `admitted` is the first-K `K` used for 4 to 8.
    pub fn new(prefix: ScopePrefixLen, admitted: usize) -> Result<Self, ConfigError> {
        let admission = if prefix.0 > DENSE_MAX_PREFIX_LEN {
            Some(Arc::new(Admission::new(
                "user_scope",
                &AdmissionPolicy::first_k(admitted),
                HexPrefixes(prefix.0),
            )?))
        } else {
            None
        };
        Ok(UserScopeDimension { prefix, admission })
    }

    /// The prefix length.
    pub fn prefix(&self) -> ScopePrefixLen {
        self.prefix
    }

    fn anonymous(&self) -> usize {
        match &self.admission {
            Some(a) => a.capacity() + 1,
            None => self.prefix.prefix_count(),
        }
    }

    /// The coordinate of `scope`'s prefix (admitting it if the policy allows).
    #[inline]
    pub fn coordinate(&self, scope: UserScope) -> ScopeCoord {
        let Some(digest) = scope.0 else {
            return ScopeCoord(self.anonymous());
        };
        match &self.admission {
            None => ScopeCoord((digest >> (32 - 4 * u32::from(self.prefix.0))) as usize),
            Some(admission) => {
                let hex = scope.hex();
                let text = hex
                    .as_str()
                    .get(..usize::from(self.prefix.0))
                    .unwrap_or(ANONYMOUS);
                ScopeCoord(admission.resolve(text).index())
            }
        }
    }
}

/// Accepts exactly `n` lowercase hex characters.
#[derive(Debug)]
struct HexPrefixes(u8);

impl Normaliser for HexPrefixes {
    fn normalise<'a>(&self, input: &'a str) -> Option<&'a str> {
        let ok = input.len() == usize::from(self.0) && input.bytes().all(|b| HEX.contains(&b));
        ok.then_some(input)
    }
    fn describe(&self) -> &'static str {
        "hex prefixes of the 8-hex scope"
    }
}

impl Dimension for UserScopeDimension {
    fn cardinality(&self) -> usize {
        self.anonymous() + 1
    }
    fn attributes(&self, index: usize, out: &mut Vec<Attribute>) {
        let value = if index == self.anonymous() {
            AttrValue::Str(ANONYMOUS)
        } else if let Some(admission) = &self.admission {
            match admission.value(index) {
                Some(v) => AttrValue::Shared(v.into()),
                None if index == admission.capacity() => AttrValue::Str(OTHER),
                None => return,
            }
        } else if index < self.prefix.prefix_count() {
            let width = usize::from(self.prefix.0);
            AttrValue::Shared(format!("{index:0width$x}").into())
        } else {
            return;
        };
        out.push(Attribute {
            key: "user_scope",
            value,
        });
    }
    fn docs(&self) -> Vec<AttributeDoc> {
        let width = usize::from(self.prefix.0);
        let values = match &self.admission {
            Some(admission) => format!(
                "the first {} distinct {width}-character hex prefixes of the 8-hex scope seen, `_OTHER`, {}",
                admission.capacity(),
                quoted_list([ANONYMOUS])
            ),
            None => format!(
                "{} hex prefixes (`{:0width$x}` … `{:0width$x}`, first {width} character(s) of the 8-hex scope), {}",
                self.prefix.prefix_count(),
                0,
                self.prefix.prefix_count() - 1,
                quoted_list([ANONYMOUS])
            ),
        };
        vec![AttributeDoc {
            key: "user_scope",
            values,
        }]
    }
    fn admission(&self) -> Option<&Arc<Admission>> {
        self.admission.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_scope_matches_seed_000() {
        // sha256("user-123") = 0x5c9d... : the scope is the first 8 hex characters.
        let expected = {
            let d = Sha256::digest(b"user-123");
            format!("{:02x}{:02x}{:02x}{:02x}", d[0], d[1], d[2], d[3])
        };
        let scope = ScopeHasher::sha256().scope("user-123");
        assert_eq!(scope.hex().as_str(), expected);
        assert_eq!(ScopeHasher::sha256().scope(""), UserScope::ANONYMOUS);
        assert_eq!(UserScope::ANONYMOUS.hex().as_str(), "anonymous");
    }

    #[test]
    fn scope_coordinates_are_the_leading_hex_characters() {
        let scope = UserScope::from_digest(0xab12_cd34);
        let dim = |len| UserScopeDimension::new(ScopePrefixLen::new(len).unwrap(), 2).unwrap();
        assert_eq!(dim(1).coordinate(scope), ScopeCoord(0xa));
        assert_eq!(dim(2).coordinate(scope), ScopeCoord(0xab));
        assert_eq!(dim(2).coordinate(UserScope::ANONYMOUS), ScopeCoord(256));
        let mut out = Vec::new();
        dim(2).attributes(0xab, &mut out);
        assert_eq!(out[0].value, AttrValue::Shared("ab".into()));
        // 8 characters: first-K admission of the full scope, then `_OTHER`, then anonymous.
        let eight = dim(8);
        assert_eq!(eight.cardinality(), 4);
        assert_eq!(eight.coordinate(scope), ScopeCoord(0));
        assert_eq!(eight.coordinate(UserScope::from_digest(1)), ScopeCoord(1));
        assert_eq!(eight.coordinate(UserScope::from_digest(2)), ScopeCoord(2));
        assert_eq!(eight.coordinate(UserScope::ANONYMOUS), ScopeCoord(3));
        let mut out = Vec::new();
        eight.attributes(0, &mut out);
        eight.attributes(2, &mut out);
        assert_eq!(out[0].value, AttrValue::Shared("ab12cd34".into()));
        assert_eq!(out[1].value, AttrValue::Str(OTHER));
    }

    #[test]
    fn keyed_scopes_differ_from_plain_and_need_a_real_secret() {
        let keyed = ScopeHasher::keyed(b"0123456789abcdef-secret").unwrap();
        assert_ne!(
            keyed.scope("a@example.com"),
            ScopeHasher::sha256().scope("a@example.com")
        );
        assert_eq!(keyed.scope("a@example.com"), keyed.scope("a@example.com"));
        let err = ScopeHasher::keyed(b"short").unwrap_err();
        assert!(err.to_string().contains("at least 16 bytes"), "{err}");
    }

    #[test]
    fn prefix_length_is_validated() {
        assert!(ScopePrefixLen::new(0).is_err());
        assert!(ScopePrefixLen::new(9).is_err());
        assert_eq!(ScopePrefixLen::new(3).unwrap().prefix_count(), 4096);
    }
}
