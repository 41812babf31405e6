//! Delivery endpoint → `server.address`, through a bounding policy.
//!
//! Only the host is kept, lower-cased: userinfo, port, path, query and fragment
//! never reach an attribute (they carry tokens and ids). Hosts then pass an
//! allow-list or a first-K admission; the rest, and anything that does not parse
//! as a host, is `_OTHER`. Admission never allocates: a host is copied into a
//! fixed inline slot, so memory is fixed at `K × 272` bytes whatever the input.

use std::sync::OnceLock;

use super::{AttrValue, Attribute, AttributeDoc, Dimension, OTHER};
use crate::error::ConfigError;

/// The longest host name DNS allows.
pub const MAX_HOST_LEN: usize = 253;
/// The largest first-K `K` (the lookup scans the admitted hosts).
pub const MAX_ADMITTED_HOSTS: usize = 1024;
/// The default first-K `K`: with `_OTHER`, 21 values.
pub const DEFAULT_ADMITTED_HOSTS: usize = 20;

/// Which hosts become their own `server.address` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointPolicy {
    /// Exactly these hosts (case-insensitive); every other host is `_OTHER`.
    AllowList(Vec<String>),
    /// The first `K` distinct hosts seen, for the life of the process.
    FirstK(usize),
}

impl Default for EndpointPolicy {
    fn default() -> Self {
        EndpointPolicy::FirstK(DEFAULT_ADMITTED_HOSTS)
    }
}

/// The host of a URL or authority, unmodified in case; `None` when there is none.
///
/// Accepts `scheme://[userinfo@]host[:port][/path][?query][#fragment]`, a
/// scheme-relative `//host…`, or a bare `host[:port][/…]`. IPv6 literals are
/// returned without brackets.
pub fn host_of(url: &str) -> Option<&str> {
    let url = url.trim_matches(|c: char| c.is_ascii_whitespace());
    let after_scheme = match url.find("://") {
        Some(i) if !url[..i].contains(['/', '?', '#']) => &url[i + 3..],
        _ => url.strip_prefix("//").unwrap_or(url),
    };
    let authority_end = after_scheme
        .find(['/', '?', '#', '\\'])
        .unwrap_or(after_scheme.len());
    let authority = &after_scheme[..authority_end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        let (literal, after) = rest.split_once(']')?;
        let valid = !literal.is_empty()
            && literal.contains(':')
            && literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !valid {
            return None;
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (literal, port)
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if let Some(port) = port {
        if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    if host.contains(':') {
        return Some(host); // validated IPv6 literal
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let valid = !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    valid.then_some(host)
}

/// A host held inline, lower-cased, with its hash for a cheap first comparison.
#[derive(Clone)]
struct HostSlot {
    hash: u64,
    len: u8,
    bytes: [u8; MAX_HOST_LEN],
}

impl HostSlot {
    fn new(host: &str, hash: u64) -> Self {
        let mut bytes = [0u8; MAX_HOST_LEN];
        for (dst, src) in bytes.iter_mut().zip(host.bytes()) {
            *dst = src.to_ascii_lowercase();
        }
        HostSlot {
            hash,
            len: host.len().min(MAX_HOST_LEN) as u8,
            bytes,
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or(OTHER)
    }

    #[inline]
    fn matches(&self, host: &str, hash: u64) -> bool {
        self.hash == hash && usize::from(self.len) == host.len() && self.as_str().eq_ignore_ascii_case(host)
    }
}

/// FNV-1a over the lower-cased bytes.
#[inline]
fn host_hash(host: &str) -> u64 {
    host.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Maps endpoints to `server.address` indexes under an [`EndpointPolicy`].
pub struct EndpointAdmission {
    slots: Box<[OnceLock<HostSlot>]>,
    admits_new: bool,
}

impl std::fmt::Debug for EndpointAdmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointAdmission")
            .field("capacity", &self.slots.len())
            .field("admits_new", &self.admits_new)
            .finish()
    }
}

impl EndpointAdmission {
    /// Validates `policy` and prepares its slots.
    pub fn new(policy: &EndpointPolicy) -> Result<Self, ConfigError> {
        match policy {
            EndpointPolicy::FirstK(0) => Err(ConfigError::ZeroAdmittedHosts),
            EndpointPolicy::FirstK(k) if *k > MAX_ADMITTED_HOSTS => Err(ConfigError::TooManyAdmittedHosts {
                k: *k,
                max: MAX_ADMITTED_HOSTS,
            }),
            EndpointPolicy::FirstK(k) => Ok(EndpointAdmission {
                slots: (0..*k).map(|_| OnceLock::new()).collect(),
                admits_new: true,
            }),
            EndpointPolicy::AllowList(hosts) if hosts.is_empty() => Err(ConfigError::EmptyAllowList),
            EndpointPolicy::AllowList(hosts) => {
                if hosts.len() > MAX_ADMITTED_HOSTS {
                    return Err(ConfigError::TooManyAdmittedHosts {
                        k: hosts.len(),
                        max: MAX_ADMITTED_HOSTS,
                    });
                }
                let mut slots: Vec<OnceLock<HostSlot>> = Vec::with_capacity(hosts.len());
                for entry in hosts {
                    let host = host_of(entry)
                        .filter(|h| h.len() == entry.trim().trim_end_matches('.').len())
                        .ok_or_else(|| ConfigError::InvalidAllowedHost { entry: entry.clone() })?;
                    let hash = host_hash(host);
                    if slots
                        .iter()
                        .any(|s| s.get().is_some_and(|s| s.matches(host, hash)))
                    {
                        continue;
                    }
                    slots.push(OnceLock::from(HostSlot::new(host, hash)));
                }
                Ok(EndpointAdmission {
                    slots: slots.into_boxed_slice(),
                    admits_new: false,
                })
            }
        }
    }

    /// How many hosts can have their own value (`K`, or the allow-list's length).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The index of `_OTHER`.
    pub fn other_index(&self) -> usize {
        self.slots.len()
    }

    /// The `server.address` index of `url`'s host, admitting it if the policy allows.
    pub fn resolve(&self, url: &str) -> usize {
        match host_of(url) {
            Some(host) => self.resolve_host(host),
            None => self.other_index(),
        }
    }

    fn resolve_host(&self, host: &str) -> usize {
        let hash = host_hash(host);
        for (index, slot) in self.slots.iter().enumerate() {
            match slot.get() {
                Some(admitted) if admitted.matches(host, hash) => return index,
                Some(_) => continue,
                None if !self.admits_new => break,
                None => {
                    // Claim the first free slot; if another thread just took it,
                    // its host may be ours, else keep looking.
                    let admitted = slot.get_or_init(|| HostSlot::new(host, hash));
                    if admitted.matches(host, hash) {
                        return index;
                    }
                }
            }
        }
        self.other_index()
    }

    /// The admitted host at `index`, if any.
    pub fn host(&self, index: usize) -> Option<&str> {
        self.slots.get(index)?.get().map(HostSlot::as_str)
    }
}

/// The `server.address` dimension: admitted hosts and `_OTHER`.
#[derive(Debug, Clone)]
pub struct EndpointDimension(pub std::sync::Arc<EndpointAdmission>);

impl Dimension for EndpointDimension {
    fn cardinality(&self) -> usize {
        self.0.capacity() + 1
    }
    fn attributes(&self, index: usize, out: &mut Vec<Attribute>) {
        let value = if index == self.0.other_index() {
            AttrValue::Str(OTHER)
        } else if let Some(host) = self.0.host(index) {
            AttrValue::Shared(host.into())
        } else {
            return;
        };
        out.push(Attribute {
            key: "server.address",
            value,
        });
    }
    fn docs(&self) -> Vec<AttributeDoc> {
        let policy = if self.0.admits_new {
            format!("the first {} distinct hosts seen", self.0.capacity())
        } else {
            format!("the {} allow-listed hosts", self.0.capacity())
        };
        vec![AttributeDoc {
            key: "server.address",
            values: format!("{policy} (lower-case host only), `_OTHER`"),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_extraction_drops_everything_but_the_host() {
        let cases = [
            (
                "https://hooks.Example.com/path?token=abc#frag",
                Some("hooks.Example.com"),
            ),
            ("https://user:secret@example.com:8443/x", Some("example.com")),
            ("http://[2001:db8::1]:8080/x", Some("2001:db8::1")),
            ("//cdn.example.org", Some("cdn.example.org")),
            ("example.com:80/a", Some("example.com")),
            ("example.com.", Some("example.com")),
            ("127.0.0.1:9000", Some("127.0.0.1")),
            ("", None),
            ("https://", None),
            ("https://exa mple.com", None),
            ("https://bücher.de/", None),
            ("https://example.com:99999999/", None),
            ("https://a..b/", None),
            ("http://[zz::1]/", None),
        ];
        for (url, want) in cases {
            assert_eq!(host_of(url), want, "{url}");
        }
    }

    #[test]
    fn first_k_admits_k_hosts_case_insensitively_then_other() {
        let admission = EndpointAdmission::new(&EndpointPolicy::FirstK(2)).unwrap();
        assert_eq!(admission.resolve("https://A.example/x"), 0);
        assert_eq!(admission.resolve("https://a.EXAMPLE/y"), 0);
        assert_eq!(admission.resolve("https://b.example"), 1);
        assert_eq!(admission.resolve("https://c.example"), 2);
        assert_eq!(admission.resolve("not a url"), 2);
        assert_eq!(admission.host(0), Some("a.example"));
    }

    #[test]
    fn allow_list_is_validated_and_fixed() {
        let policy = EndpointPolicy::AllowList(vec!["Hooks.Example.com".into(), "hooks.example.com".into()]);
        let admission = EndpointAdmission::new(&policy).unwrap();
        assert_eq!(admission.capacity(), 1);
        assert_eq!(admission.resolve("https://hooks.example.com/a"), 0);
        assert_eq!(admission.resolve("https://other.example.com/a"), 1);
        let bad = EndpointAdmission::new(&EndpointPolicy::AllowList(vec!["https://x.com/path".into()]));
        assert!(matches!(bad, Err(ConfigError::InvalidAllowedHost { .. })));
        assert!(matches!(
            EndpointAdmission::new(&EndpointPolicy::AllowList(vec![])),
            Err(ConfigError::EmptyAllowList)
        ));
        assert!(matches!(
            EndpointAdmission::new(&EndpointPolicy::FirstK(0)),
            Err(ConfigError::ZeroAdmittedHosts)
        ));
    }
}
