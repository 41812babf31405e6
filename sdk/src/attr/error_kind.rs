//! `error.type` for deliveries that got no HTTP response.
//!
//! Besides the closed set itself, this module maps the errors HTTP clients return to
//! it: [`ErrorKind::from_io`] for a [`std::io::Error`], [`ErrorKind::from_error`] for
//! any error chain, and `From` impls for `reqwest` and `hyper-util` errors behind the
//! crate features of the same names.

use std::error::Error as StdError;
use std::fmt::{self, Write as _};
use std::io;

crate::closed_set! {
    /// Why an attempt ended without an HTTP response.
    ///
    /// Wire values follow the semantic conventions' advice for `error.type`:
    /// short, low-cardinality, `_OTHER` for the rest.
    ///
    /// To get one from the error an HTTP client returned, use [`ErrorKind::from_error`]
    /// (any error, walks its `source()` chain), [`ErrorKind::from_io`] (a
    /// [`std::io::Error`]) or the `From` impls: `From<&std::io::Error>`, and with the
    /// crate features `reqwest` and `hyper-util`, `From<&reqwest::Error>` and
    /// `From<&hyper_util::client::legacy::Error>`.
    pub enum ErrorKind: "error.type" {
        /// The attempt, or a phase of it, ran out of time.
        Timeout = "timeout",
        /// The connection was refused or reset while being set up.
        Connect = "connect",
        /// The host name did not resolve.
        Dns = "dns",
        /// The TLS handshake or certificate check failed.
        Tls = "tls",
        /// Reading or writing the connection failed after it was set up.
        Io = "io",
        /// The attempt was cancelled (shutdown, caller gave up).
        Cancelled = "cancelled",
        /// Anything else.
        Other = "_OTHER",
    }
}

/// Links of a `source()` chain looked at before giving up: a guard against chains
/// that loop back on themselves.
const MAX_CHAIN: usize = 32;

/// Bytes of an error's message kept for the few message-based rules.
const MAX_TEXT: usize = 256;

impl ErrorKind {
    /// Classifies an I/O error, for example from [`std::net::TcpStream::connect`] or
    /// a blocking HTTP client.
    ///
    /// Both the error itself and what it carries count: its payload
    /// ([`io::Error::get_ref`]) and that payload's `source()` chain go through the
    /// rules of [`from_error`](Self::from_error), so a TLS or resolver error carried
    /// inside an `io::Error` is recognised whatever the outer [`io::ErrorKind`]:
    ///
    /// | What the error is or carries | Result |
    /// |---|---|
    /// | a `rustls::Error` (crate feature `rustls`): tokio-rustls, hyper-rustls and reqwest's rustls backend report a failed handshake as an `InvalidData` `io::Error` carrying one, sometimes wrapped in a second `io::Error` | [`Tls`](Self::Tls) |
    /// | a message starting `failed to lookup address information`: how the standard library's resolver (`getaddrinfo`, so also `tokio::net::lookup_host` and hyper-util's `GaiResolver`) fails on Unix, with kind `Uncategorized` (`Other` in older Rust) | [`Dns`](Self::Dns) |
    /// | on Windows, OS error 11001–11004 (`WSAHOST_NOT_FOUND`, `WSATRY_AGAIN`, `WSANO_RECOVERY`, `WSANO_DATA`): the resolver's codes there | [`Dns`](Self::Dns) |
    /// | any other error [`from_error`](Self::from_error) recognises, for example a reqwest error wrapped in an `io::Error` | that kind |
    ///
    /// The [`io::ErrorKind`]:
    ///
    /// | `io::ErrorKind` | Result | Why |
    /// |---|---|---|
    /// | `TimedOut` | [`Timeout`](Self::Timeout) | a socket timeout; also what `tokio`'s `Elapsed` converts into |
    /// | `WouldBlock` | [`Timeout`](Self::Timeout) | on Unix a blocking socket whose read or write timeout (`set_read_timeout`) expired reports `EAGAIN`, which is `WouldBlock` |
    /// | `ConnectionRefused`, `ConnectionReset`, `ConnectionAborted`, `NotConnected`, `AddrNotAvailable`, `HostUnreachable`, `NetworkUnreachable`, `NetworkDown` | [`Connect`](Self::Connect) | the connection could not be set up, or was torn down by the peer or the network |
    /// | `BrokenPipe`, `UnexpectedEof`, `WriteZero` | [`Io`](Self::Io) | the connection existed and then a read or write on it failed |
    /// | `Interrupted` | [`Io`](Self::Io) | a system call on the connection was interrupted by a signal (`EINTR`). Not [`Cancelled`](Self::Cancelled): a signal says nothing about anyone giving up on the attempt (std's `read_exact`, `write_all` and the like retry such calls, so it only surfaces from code that does not) |
    /// | anything else (`InvalidData`, `PermissionDenied`, `Other`, …) | [`Other`](Self::Other) | the kind alone does not say why there was no response |
    ///
    /// When the kind and the payload suggest different kinds, the more specific one
    /// wins, in the order given for [`from_error`](Self::from_error) (a `TimedOut`
    /// error carrying a `rustls::Error` is [`Timeout`](Self::Timeout)).
    ///
    /// A reset (`ConnectionReset`, `ConnectionAborted`) counts as [`Connect`](Self::Connect)
    /// here because an `io::Error` on its own does not say whether the connection was
    /// still being set up. [`from_error`](Self::from_error) can tell when the chain
    /// shows the request was already being exchanged, and says [`Io`](Self::Io) then.
    ///
    /// The `…Unreachable` and `NetworkDown` kinds are recognised by name, so this also
    /// builds with toolchains older than the one that made them nameable (1.83).
    ///
    /// Never panics.
    ///
    /// ```
    /// use std::io;
    /// use outcometer::ErrorKind;
    ///
    /// let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
    /// assert_eq!(ErrorKind::from_io(&refused), ErrorKind::Connect);
    /// assert_eq!(ErrorKind::from(&refused), ErrorKind::Connect);
    ///
    /// let timed_out = io::Error::new(io::ErrorKind::TimedOut, "read timed out");
    /// assert_eq!(ErrorKind::from_io(&timed_out), ErrorKind::Timeout);
    ///
    /// let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
    /// assert_eq!(ErrorKind::from_io(&eof), ErrorKind::Io);
    ///
    /// // Interrupted is not a cancellation.
    /// let eintr = io::Error::from(io::ErrorKind::Interrupted);
    /// assert_eq!(ErrorKind::from_io(&eintr), ErrorKind::Io);
    ///
    /// // How the standard library reports a name that does not resolve (Unix).
    /// let dns = io::Error::other(
    ///     "failed to lookup address information: Name or service not known",
    /// );
    /// assert_eq!(ErrorKind::from_io(&dns), ErrorKind::Dns);
    ///
    /// let denied = io::Error::from(io::ErrorKind::PermissionDenied);
    /// assert_eq!(ErrorKind::from_io(&denied), ErrorKind::Other);
    /// ```
    pub fn from_io(error: &io::Error) -> ErrorKind {
        classify(error)
    }

    /// Classifies any error by walking its `source()` chain.
    ///
    /// Every link of the chain is looked at (an [`io::Error`]'s payload counts as the
    /// link after it, since `io::Error::source` skips it), up to 32 links. Each
    /// link can suggest a kind:
    ///
    /// | Link | Suggests |
    /// |---|---|
    /// | [`io::Error`] | what the tables of [`from_io`](Self::from_io) say of its kind and message (its payload is the next link) |
    /// | [`std::sync::mpsc::RecvTimeoutError::Timeout`] | [`Timeout`](Self::Timeout) |
    /// | `tokio::time::error::Elapsed` (feature `tokio`) | [`Timeout`](Self::Timeout) |
    /// | `tokio::task::JoinError` that `is_cancelled()` (feature `tokio`) | [`Cancelled`](Self::Cancelled) |
    /// | `reqwest::Error` (feature `reqwest`): `is_timeout()` / `is_dns()` / `is_connect()` | [`Timeout`](Self::Timeout) / [`Dns`](Self::Dns) / [`Connect`](Self::Connect) |
    /// | `hyper_util::client::legacy::Error` that `is_connect()` (features `hyper-util`, `reqwest`) | [`Connect`](Self::Connect) |
    /// | `hyper::Error` (features `hyper-util`, `reqwest`): `is_timeout()` | [`Timeout`](Self::Timeout) |
    /// | `hyper::Error`: `is_incomplete_message()`, `is_closed()`, `is_canceled()` | [`Io`](Self::Io): the connection went away under the request (hyper's "canceled" means the connection closed or was not ready, not that the caller gave up) |
    /// | `hyper::Error`: `is_body_write_aborted()` | [`Cancelled`](Self::Cancelled): the caller dropped the request body's sender |
    /// | `rustls::Error` (feature `rustls`) | [`Tls`](Self::Tls) |
    /// | an error whose message is exactly `dns error` and that has a source: how hyper-util's `HttpConnector` (which reqwest uses) wraps any resolver's failure | [`Dns`](Self::Dns) |
    /// | an error whose message contains `SSL routines:`: OpenSSL's error format, so a `native-tls` handshake or certificate failure on Linux | [`Tls`](Self::Tls) |
    ///
    /// The most specific suggestion wins, in this order: [`Timeout`](Self::Timeout),
    /// [`Cancelled`](Self::Cancelled), [`Dns`](Self::Dns), [`Tls`](Self::Tls),
    /// [`Connect`](Self::Connect), [`Io`](Self::Io). So a TLS failure reqwest reports
    /// as a connect error is [`Tls`](Self::Tls) (with the `rustls` feature), and a
    /// connect that timed out is [`Timeout`](Self::Timeout). One refinement: when the
    /// chain holds a `hyper::Error` and no connect-phase error (reqwest or hyper-util
    /// `is_connect()`), the request was already on an established connection, so a
    /// reset suggested by an `io::Error` is [`Io`](Self::Io), not
    /// [`Connect`](Self::Connect).
    ///
    /// Nothing recognised: [`Other`](Self::Other). In particular errors that came
    /// *with* a response (reqwest's `is_status()`, `is_redirect()`, hyper's parse
    /// errors) and request-building errors are [`Other`](Self::Other): a response
    /// that arrived belongs in the delivery's status, not in `error.type`.
    ///
    /// Errors of crates whose feature is off are not recognised by type, only through
    /// the `io::Error`s and messages in their chain. Never panics.
    ///
    /// ```
    /// use std::io;
    /// use outcometer::ErrorKind;
    ///
    /// #[derive(Debug)]
    /// struct SendFailed(io::Error);
    /// impl std::fmt::Display for SendFailed {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         f.write_str("send failed")
    ///     }
    /// }
    /// impl std::error::Error for SendFailed {
    ///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
    ///         Some(&self.0)
    ///     }
    /// }
    ///
    /// let error = SendFailed(io::ErrorKind::TimedOut.into());
    /// assert_eq!(ErrorKind::from_error(&error), ErrorKind::Timeout);
    ///
    /// let boxed: Box<dyn std::error::Error + Send + Sync> = "no idea".into();
    /// assert_eq!(ErrorKind::from_error(&*boxed), ErrorKind::Other);
    /// ```
    pub fn from_error(error: &(dyn StdError + 'static)) -> ErrorKind {
        classify(error)
    }
}

impl From<&io::Error> for ErrorKind {
    /// Same as [`ErrorKind::from_io`].
    fn from(error: &io::Error) -> Self {
        ErrorKind::from_io(error)
    }
}

#[cfg(feature = "reqwest")]
impl From<&reqwest::Error> for ErrorKind {
    /// Same as [`ErrorKind::from_error`]: `is_timeout()`, `is_dns()`, `is_connect()`,
    /// then the I/O, hyper and TLS errors in its chain. An error for a response
    /// (`is_status()`, `is_redirect()`) is [`ErrorKind::Other`].
    fn from(error: &reqwest::Error) -> Self {
        ErrorKind::from_error(error)
    }
}

#[cfg(feature = "hyper-util")]
impl From<&hyper_util::client::legacy::Error> for ErrorKind {
    /// Same as [`ErrorKind::from_error`]: `is_connect()` says
    /// [`Connect`](ErrorKind::Connect) unless its chain is more specific (DNS, TLS,
    /// timeout); otherwise the `hyper::Error` and I/O errors in its chain decide.
    fn from(error: &hyper_util::client::legacy::Error) -> Self {
        ErrorKind::from_error(error)
    }
}

/// How specific a suggestion is: the highest one seen wins.
fn rank(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Other => 0,
        ErrorKind::Io => 1,
        ErrorKind::Connect => 2,
        ErrorKind::Tls => 3,
        ErrorKind::Dns => 4,
        ErrorKind::Cancelled => 5,
        ErrorKind::Timeout => 6,
    }
}

/// The rules of `from_error`, shared by `from_io`.
fn classify(error: &(dyn StdError + 'static)) -> ErrorKind {
    let mut best = ErrorKind::Other;
    // Whether the best kind so far came only from `io::Error` resets, which the
    // phase may turn into `Io`.
    let mut reset_only = false;
    let mut connect_phase = false;
    let mut on_connection = false;

    let mut link = Some(error);
    for _ in 0..MAX_CHAIN {
        let Some(current) = link else { break };
        let suggestion = if let Some(io_error) = current.downcast_ref::<io::Error>() {
            // `io::Error::source` is the payload's source: visit the payload itself.
            link = match io_error.get_ref() {
                Some(payload) => Some(payload as &(dyn StdError + 'static)),
                None => current.source(),
            };
            io_suggestion(io_error).map(|kind| (kind, is_reset(io_error.kind())))
        } else {
            link = current.source();
            let facts = typed_suggestion(current);
            connect_phase |= facts.connect_phase;
            on_connection |= facts.on_connection;
            facts
                .kind
                .or_else(|| message_suggestion(current))
                .map(|kind| (kind, false))
        };
        if let Some((kind, reset)) = suggestion {
            if rank(kind) > rank(best) {
                best = kind;
                reset_only = reset;
            } else if kind == best {
                reset_only &= reset;
            }
        }
    }

    if best == ErrorKind::Connect && reset_only && on_connection && !connect_phase {
        ErrorKind::Io
    } else {
        best
    }
}

fn is_reset(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

/// What an `io::Error` says by its message and kind (its payload is a later link).
fn io_suggestion(error: &io::Error) -> Option<ErrorKind> {
    if is_resolver_error(error) {
        return Some(ErrorKind::Dns);
    }
    match error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Some(ErrorKind::Timeout),
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::NotConnected
        | io::ErrorKind::AddrNotAvailable => Some(ErrorKind::Connect),
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::WriteZero
        | io::ErrorKind::Interrupted => Some(ErrorKind::Io),
        other => {
            // Nameable only since Rust 1.83: matched by name to keep the crate's MSRV (1.80).
            let name = Text::of_debug(&other);
            match name.as_str() {
                "HostUnreachable" | "NetworkUnreachable" | "NetworkDown" => Some(ErrorKind::Connect),
                _ => None,
            }
        }
    }
}

/// The standard library's resolver failure: a message on Unix, an OS code on Windows.
fn is_resolver_error(error: &io::Error) -> bool {
    #[cfg(windows)]
    if let Some(11001..=11004) = error.raw_os_error() {
        return true;
    }
    error.raw_os_error().is_none()
        && Text::of_display(error)
            .as_str()
            .starts_with("failed to lookup address information")
}

/// What a link of a known (non-`io`) type says, and what it says about the phase.
#[derive(Default)]
struct Facts {
    kind: Option<ErrorKind>,
    /// A connect-phase error: the failure happened while the connection was set up.
    connect_phase: bool,
    /// A connection was established and carrying the request.
    on_connection: bool,
}

impl Facts {
    fn kind(kind: Option<ErrorKind>) -> Facts {
        Facts {
            kind,
            ..Facts::default()
        }
    }
}

fn typed_suggestion(error: &(dyn StdError + 'static)) -> Facts {
    if let Some(std::sync::mpsc::RecvTimeoutError::Timeout) =
        error.downcast_ref::<std::sync::mpsc::RecvTimeoutError>()
    {
        return Facts::kind(Some(ErrorKind::Timeout));
    }
    #[cfg(feature = "tokio")]
    {
        if error.is::<tokio::time::error::Elapsed>() {
            return Facts::kind(Some(ErrorKind::Timeout));
        }
        if let Some(join) = error.downcast_ref::<tokio::task::JoinError>() {
            return Facts::kind(join.is_cancelled().then_some(ErrorKind::Cancelled));
        }
    }
    #[cfg(feature = "rustls")]
    if error.is::<rustls::Error>() {
        return Facts::kind(Some(ErrorKind::Tls));
    }
    #[cfg(feature = "reqwest")]
    if let Some(error) = error.downcast_ref::<reqwest::Error>() {
        let kind = if error.is_timeout() {
            Some(ErrorKind::Timeout)
        } else if error.is_dns() {
            Some(ErrorKind::Dns)
        } else if error.is_connect() {
            Some(ErrorKind::Connect)
        } else {
            None
        };
        return Facts {
            kind,
            connect_phase: error.is_connect(),
            on_connection: false,
        };
    }
    #[cfg(any(feature = "hyper-util", feature = "reqwest"))]
    {
        if let Some(error) = error.downcast_ref::<hyper_util::client::legacy::Error>() {
            let connect = error.is_connect();
            return Facts {
                kind: connect.then_some(ErrorKind::Connect),
                connect_phase: connect,
                on_connection: false,
            };
        }
        if let Some(error) = error.downcast_ref::<hyper::Error>() {
            let kind = if error.is_timeout() {
                Some(ErrorKind::Timeout)
            } else if error.is_body_write_aborted() {
                Some(ErrorKind::Cancelled)
            } else if error.is_incomplete_message() || error.is_closed() || error.is_canceled() {
                Some(ErrorKind::Io)
            } else {
                None
            };
            return Facts {
                kind,
                connect_phase: false,
                on_connection: true,
            };
        }
    }
    Facts::default()
}

/// Message-based rules, for errors whose types are private or not depended on.
fn message_suggestion(error: &(dyn StdError + 'static)) -> Option<ErrorKind> {
    let text = Text::of_display(error);
    let text = text.as_str();
    if text == "dns error" && error.source().is_some() {
        Some(ErrorKind::Dns)
    } else if text.contains("SSL routines:") {
        Some(ErrorKind::Tls)
    } else {
        None
    }
}

/// The first [`MAX_TEXT`] bytes of a `Display` or `Debug` rendering. Formatting stops
/// there; a formatting error just ends the text (no panic, unlike `to_string`).
struct Text(String);

impl Text {
    fn of_display(value: &dyn fmt::Display) -> Text {
        let mut text = Text(String::new());
        let _ = write!(text, "{value}");
        text
    }

    fn of_debug(value: &dyn fmt::Debug) -> Text {
        let mut text = Text(String::new());
        let _ = write!(text, "{value:?}");
        text
    }

    fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = MAX_TEXT.saturating_sub(self.0.len());
        if s.len() <= room {
            self.0.push_str(s);
            return Ok(());
        }
        let mut end = room;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.0.push_str(s.get(..end).unwrap_or(""));
        Err(fmt::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrap(&'static str, Option<Box<dyn StdError + Send + Sync>>);

    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Wrap {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_ref().map(|e| &**e as _)
        }
    }

    #[test]
    fn io_kinds() {
        use io::ErrorKind as K;
        for (kind, expected) in [
            (K::TimedOut, ErrorKind::Timeout),
            (K::WouldBlock, ErrorKind::Timeout),
            (K::ConnectionRefused, ErrorKind::Connect),
            (K::ConnectionReset, ErrorKind::Connect),
            (K::ConnectionAborted, ErrorKind::Connect),
            (K::NotConnected, ErrorKind::Connect),
            (K::AddrNotAvailable, ErrorKind::Connect),
            (K::BrokenPipe, ErrorKind::Io),
            (K::UnexpectedEof, ErrorKind::Io),
            (K::WriteZero, ErrorKind::Io),
            (K::Interrupted, ErrorKind::Io),
            (K::InvalidData, ErrorKind::Other),
            (K::PermissionDenied, ErrorKind::Other),
            (K::Other, ErrorKind::Other),
        ] {
            assert_eq!(ErrorKind::from_io(&kind.into()), expected, "{kind:?}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn unreachable_kinds_by_name() {
        // ENETDOWN, ENETUNREACH, EHOSTUNREACH on Linux.
        for code in [100, 101, 113] {
            let error = io::Error::from_raw_os_error(code);
            assert_eq!(ErrorKind::from_io(&error), ErrorKind::Connect, "{error}");
        }
    }

    #[test]
    fn nested_io_payload_is_visited() {
        let inner = io::Error::from(io::ErrorKind::TimedOut);
        let outer = io::Error::other(inner);
        assert_eq!(ErrorKind::from_io(&outer), ErrorKind::Timeout);
    }

    #[test]
    fn dns_error_wrapper_needs_a_source() {
        let bare = Wrap("dns error", None);
        assert_eq!(ErrorKind::from_error(&bare), ErrorKind::Other);
        let wrapped = Wrap("dns error", Some("nope".into()));
        assert_eq!(ErrorKind::from_error(&wrapped), ErrorKind::Dns);
    }

    #[test]
    fn openssl_message_is_tls() {
        let error = Wrap("error:0A00010B:SSL routines::wrong version number", None);
        assert_eq!(ErrorKind::from_error(&error), ErrorKind::Tls);
    }

    #[test]
    fn specific_beats_generic() {
        let error = Wrap(
            "connect",
            Some(Box::new(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                Wrap("t", None),
            ))),
        );
        assert_eq!(ErrorKind::from_error(&error), ErrorKind::Connect);
        let error = Wrap("x", Some(Box::new(std::sync::mpsc::RecvTimeoutError::Timeout)));
        assert_eq!(ErrorKind::from_error(&error), ErrorKind::Timeout);
        let error = Wrap(
            "x",
            Some(Box::new(std::sync::mpsc::RecvTimeoutError::Disconnected)),
        );
        assert_eq!(ErrorKind::from_error(&error), ErrorKind::Other);
    }

    /// An error whose chain never ends.
    #[derive(Debug)]
    struct Loop;

    impl fmt::Display for Loop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("loop")
        }
    }

    impl StdError for Loop {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&Loop)
        }
    }

    /// An error whose `Display` fails.
    #[derive(Debug)]
    struct BadDisplay;

    impl fmt::Display for BadDisplay {
        fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
            Err(fmt::Error)
        }
    }

    impl StdError for BadDisplay {}

    #[test]
    fn hostile_errors_do_not_panic_or_hang() {
        assert_eq!(ErrorKind::from_error(&Loop), ErrorKind::Other);
        assert_eq!(ErrorKind::from_error(&BadDisplay), ErrorKind::Other);
        let io_bad = io::Error::other(BadDisplay);
        assert_eq!(ErrorKind::from_io(&io_bad), ErrorKind::Other);
        let long = "é".repeat(MAX_TEXT);
        let io_long = io::Error::other(long);
        assert_eq!(ErrorKind::from_io(&io_long), ErrorKind::Other);
    }
}
