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

use super::{quoted_list, AttrValue, Attribute, AttributeDoc, Dimension};
use crate::error::ConfigError;

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

    /// The dense index of this scope's `prefix_len`-character prefix.
    #[inline]
    pub(crate) fn prefix_index(self, prefix: ScopePrefixLen) -> usize {
        match self.0 {
            Some(digest) => (digest >> (32 - 4 * u32::from(prefix.0))) as usize,
            None => prefix.prefix_count(),
        }
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
    /// Plain SHA-256, as seed 000: stable across deployments, but an id from a small
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

/// The `user_scope` dimension: `16^len` hex prefixes and `anonymous`.
#[derive(Debug, Clone, Copy)]
pub struct UserScopeDimension {
    /// The prefix length.
    pub prefix: ScopePrefixLen,
}

impl Dimension for UserScopeDimension {
    fn cardinality(&self) -> usize {
        self.prefix.prefix_count() + 1
    }
    fn attributes(&self, index: usize, out: &mut Vec<Attribute>) {
        let count = self.prefix.prefix_count();
        let value = if index < count {
            let width = usize::from(self.prefix.0);
            AttrValue::Shared(format!("{index:0width$x}").into())
        } else if index == count {
            AttrValue::Str(ANONYMOUS)
        } else {
            return;
        };
        out.push(Attribute {
            key: "user_scope",
            value,
        });
    }
    fn docs(&self) -> Vec<AttributeDoc> {
        let first = format!("{:0w$x}", 0, w = usize::from(self.prefix.0));
        let last = format!(
            "{:0w$x}",
            self.prefix.prefix_count() - 1,
            w = usize::from(self.prefix.0)
        );
        vec![AttributeDoc {
            key: "user_scope",
            values: format!(
                "{} hex prefixes (`{first}` … `{last}`, first {} character(s) of the 8-hex scope), {}",
                self.prefix.prefix_count(),
                self.prefix.0,
                quoted_list([ANONYMOUS])
            ),
        }]
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
    fn prefix_index_is_the_leading_hex_characters() {
        let scope = UserScope::from_digest(0xab12_cd34);
        let one = ScopePrefixLen::new(1).unwrap();
        let two = ScopePrefixLen::new(2).unwrap();
        let eight = ScopePrefixLen::new(8).unwrap();
        assert_eq!(scope.prefix_index(one), 0xa);
        assert_eq!(scope.prefix_index(two), 0xab);
        assert_eq!(scope.prefix_index(eight), 0xab12_cd34);
        assert_eq!(UserScope::ANONYMOUS.prefix_index(two), 256);
        let mut out = Vec::new();
        UserScopeDimension { prefix: two }.attributes(0xab, &mut out);
        assert_eq!(out[0].value, AttrValue::Shared("ab".into()));
        assert!(scope.hex().as_str().starts_with("ab"));
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
