//! `server.address`: the host of an endpoint URL, through bounded admission.
//!
//! Only the host is kept: scheme, credentials, port, path, query and fragment are
//! dropped, so no secret in a URL reaches an attribute. Hosts then pass an
//! [`Admission`](super::admission::Admission) (allow-list, first-K or both); the
//! rest, and anything that does not parse as a host, is `_OTHER`.

use super::admission::Normaliser;

/// The longest host name DNS allows.
pub const MAX_HOST_LEN: usize = 253;

/// The default first-K `K`: with `_OTHER`, 21 values.
pub const DEFAULT_ADMITTED_HOSTS: usize = 20;

/// The host of a URL or authority, unmodified in case; `None` when there is none.
///
/// Accepts `scheme://[userinfo@]host[:port][/path][?query][#fragment]`, a
/// scheme-relative `//host…`, or a bare `host[:port][/…]`. IPv6 literals are
/// returned without brackets.
pub fn host_of(url: &str) -> Option<&str> {
    let (authority, _) = split_authority(url);
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

/// `url` split after its authority: (`[userinfo@]host[:port]`, the rest from the
/// first `/`, `?`, `#` or `\\` on). One split for [`host_of`] and [`url_path_of`],
/// so they can never disagree on where the authority (and its credentials) ends.
fn split_authority(url: &str) -> (&str, &str) {
    let url = url.trim_matches(|c: char| c.is_ascii_whitespace());
    let after_scheme = match url.find("://") {
        Some(i) if !url[..i].contains(['/', '?', '#']) => &url[i + 3..],
        _ => url.strip_prefix("//").unwrap_or(url),
    };
    let authority_end = after_scheme
        .find(['/', '?', '#', '\\'])
        .unwrap_or(after_scheme.len());
    after_scheme.split_at(authority_end)
}

/// The path of a URL (`url.path`): what follows the authority, up to the query or
/// fragment; `None` when the URL has no valid host (see [`host_of`]) or no path.
///
/// Userinfo, query and fragment are never part of it: credentials and tokens
/// live there. A URL that [`host_of`] rejects yields no path either, since
/// where its authority ends (and so where a password ends) is unknown.
///
/// ```
/// use outcometer::detail::url_path_of;
/// assert_eq!(url_path_of("https://u:pw@hooks.example.com:8443/a/b?token=x#f"), Some("/a/b"));
/// assert_eq!(url_path_of("https://hooks.example.com?token=x"), None);
/// assert_eq!(url_path_of("not a url/x"), None);
/// ```
pub fn url_path_of(url: &str) -> Option<&str> {
    host_of(url)?;
    let (_, rest) = split_authority(url);
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let path = &rest[..end];
    // An `@` after the host means the authority held an unescaped `/` (a token
    // in the userinfo): part of a credential would be in the path.
    (!path.is_empty() && !path.contains('@')).then_some(path)
}

/// Endpoint URLs → their host, lower-cased (see [`host_of`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Hosts;

impl Normaliser for Hosts {
    fn normalise<'a>(&self, input: &'a str) -> Option<&'a str> {
        host_of(input)
    }
    fn ignores_ascii_case(&self) -> bool {
        true
    }
    fn describe(&self) -> &'static str {
        "lower-case host only"
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
    fn paths_drop_userinfo_query_and_fragment() {
        let cases = [
            ("https://hooks.example.com/path?token=abc#frag", Some("/path")),
            ("https://user:secret@example.com:8443/x/y", Some("/x/y")),
            ("http://[2001:db8::1]:8080/v1/hook#f", Some("/v1/hook")),
            ("//cdn.example.org/a", Some("/a")),
            ("example.com:80/a?b", Some("/a")),
            ("https://example.com", None),
            ("https://example.com/", Some("/")),
            ("https://example.com?q=/x", None),
            ("https://example.com#/x", None),
            ("https://example.com\\evil/p", Some("\\evil/p")),
            // A password holding `/` or `?` leaves no valid host: no path either.
            ("https://user:pa/ss@example.com/x", None),
            ("https://user:pa?ss@example.com/x", None),
            ("https://user:12?x@example.com/x", None),
            ("https://AbC1/xyz@hooks.example.com/p", None),
            ("", None),
            ("https://", None),
        ];
        for (url, want) in cases {
            assert_eq!(url_path_of(url), want, "{url}");
        }
    }

    #[test]
    fn hosts_are_admitted_case_insensitively() {
        use super::super::admission::{Admission, AdmissionPolicy};
        let admission = Admission::new("server.address", &AdmissionPolicy::first_k(2), Hosts).unwrap();
        assert_eq!(admission.resolve("https://A.example/x").index(), 0);
        assert_eq!(admission.resolve("https://a.EXAMPLE/y").index(), 0);
        assert_eq!(admission.resolve("https://b.example").index(), 1);
        assert_eq!(admission.resolve("https://c.example"), admission.other());
        assert_eq!(admission.resolve("not a url"), admission.other());
        assert_eq!(admission.value(0), Some("a.example"));
        let policy = AdmissionPolicy::allow_list(["Hooks.Example.com", "hooks.example.com"]);
        let fixed = Admission::new("server.address", &policy, Hosts).unwrap();
        assert_eq!(fixed.capacity(), 1);
        assert_eq!(fixed.resolve("https://hooks.example.com/a").index(), 0);
        assert!(Admission::new(
            "server.address",
            &AdmissionPolicy::allow_list(["https://x.com/p"]),
            Hosts
        )
        .is_err());
    }
}
