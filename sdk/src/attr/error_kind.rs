//! `error.type` for deliveries that got no HTTP response.

crate::closed_set! {
    /// Why an attempt ended without an HTTP response.
    ///
    /// Wire values follow the semantic conventions' advice for `error.type`:
    /// short, low-cardinality, `_OTHER` for the rest.
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
