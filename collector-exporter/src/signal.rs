//! Stopping on SIGTERM as on Ctrl-C, so the last interval is flushed either way.
//!
//! Containers and process managers stop a program with SIGTERM, whose default
//! action ends the process on the spot: whatever the pipeline recorded since the
//! last push is lost. Listening for it (and for SIGINT, Ctrl-C) lets the program
//! call [`crate::Telemetry::shutdown`] instead.
//!
//! ```no_run
//! // A blocking program: listen first, work, stop when told.
//! let signal = outcometer_exporter::ShutdownSignal::listen()?;
//! let telemetry = outcometer_exporter::Telemetry::from_env()?;
//! while signal.wait_timeout(std::time::Duration::from_millis(100)).is_none() {
//!     // … work …
//! }
//! telemetry.shutdown()?; // flushes the last interval
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! In async code (tokio, with I/O enabled), await [`shutdown_signal`], then
//! [`crate::Telemetry::shutdown_async`].
//!
//! Once listening starts, SIGINT and SIGTERM no longer end the process by
//! themselves for as long as it runs: the program decides when to stop.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

/// The signal that asked the process to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: Ctrl-C in a terminal.
    Interrupt,
    /// SIGTERM: what `kill`, container runtimes and process managers send.
    Terminate,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Interrupt => "SIGINT (Ctrl-C)",
            Signal::Terminate => "SIGTERM",
        })
    }
}

/// The registered handlers; polling them waits for either.
struct Handlers {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Handlers {
    /// Registers both; must run inside a tokio runtime with I/O enabled.
    fn register() -> std::io::Result<Handlers> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Handlers {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Handlers {})
        }
    }

    async fn next(mut self) -> std::io::Result<Signal> {
        #[cfg(unix)]
        {
            std::future::poll_fn(move |cx| {
                if self.terminate.poll_recv(cx).is_ready() {
                    return Poll::Ready(Ok(Signal::Terminate));
                }
                if self.interrupt.poll_recv(cx).is_ready() {
                    return Poll::Ready(Ok(Signal::Interrupt));
                }
                Poll::Pending
            })
            .await
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            tokio::signal::ctrl_c().await.map(|()| Signal::Interrupt)
        }
    }
}

/// Completes when the process receives SIGINT or SIGTERM (Ctrl-C on Windows).
/// Call it inside a tokio runtime with I/O enabled (`enable_all`); the handlers
/// are registered when it is first polled.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let telemetry = outcometer_exporter::Telemetry::from_env()?;
/// let signal = outcometer_exporter::shutdown_signal().await?;
/// eprintln!("{signal}: flushing");
/// telemetry.shutdown_async().await?;
/// # Ok(()) }
/// ```
pub async fn shutdown_signal() -> std::io::Result<Signal> {
    Handlers::register()?.next().await
}

/// Blocks until SIGINT or SIGTERM; for programs without an async runtime.
pub fn wait_for_shutdown_signal() -> std::io::Result<Signal> {
    Ok(ShutdownSignal::listen()?.wait())
}

/// SIGINT and SIGTERM, watched from a thread of its own: for blocking programs
/// that do work while waiting. Handlers are registered before
/// [`ShutdownSignal::listen`] returns, so no signal is missed after it.
#[derive(Clone, Debug)]
pub struct ShutdownSignal {
    state: Arc<(Mutex<Option<Signal>>, Condvar)>,
}

impl ShutdownSignal {
    /// Starts listening.
    pub fn listen() -> std::io::Result<ShutdownSignal> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handlers = {
            let _entered = runtime.enter();
            Handlers::register()?
        };
        let state: Arc<(Mutex<Option<Signal>>, Condvar)> = Arc::default();
        let watcher = state.clone();
        std::thread::Builder::new()
            .name("outcometer-signal".into())
            .spawn(move || {
                if let Ok(signal) = runtime.block_on(handlers.next()) {
                    let (lock, changed) = &*watcher;
                    *lock.lock().unwrap_or_else(PoisonError::into_inner) = Some(signal);
                    changed.notify_all();
                }
            })?;
        Ok(ShutdownSignal { state })
    }

    /// The signal, if one arrived; never blocks.
    pub fn received(&self) -> Option<Signal> {
        *self.state.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until a signal arrives.
    pub fn wait(&self) -> Signal {
        let (lock, changed) = &*self.state;
        let mut got = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(signal) = *got {
                return signal;
            }
            got = changed.wait(got).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Blocks until a signal arrives or `timeout` passes; a handy sleep for a
    /// work loop.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Signal> {
        let (lock, changed) = &*self.state;
        let got = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (got, _) = changed
            .wait_timeout_while(got, timeout, |s| s.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        *got
    }
}
