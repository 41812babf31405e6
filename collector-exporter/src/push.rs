//! The periodic push reader: collects and exports every interval, on flush, and
//! once more at shutdown.
//!
//! Why not the SDK's `PeriodicReader`: it skips the export when the SDK collection
//! is empty, and in a pipeline whose backend is cells-only the SDK holds only the
//! application's instruments — outcometer's are appended by the exporter from the
//! cells. This reader always hands the exporter a collection (empty or not), on a
//! thread of its own, and runs flushes and the final export on the caller's thread,
//! one export at a time.

use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

struct Inner<E> {
    reader: ManualReader,
    exporter: E,
    /// Set at shutdown; the worker waits on `wake` for it or the interval.
    stopped: Mutex<bool>,
    wake: Condvar,
    /// One export at a time (the worker's, a flush, the final one).
    exporting: Mutex<()>,
}

/// A [`MetricReader`] that pushes through `E` every interval.
pub(crate) struct PushReader<E> {
    inner: Arc<Inner<E>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl<E> std::fmt::Debug for PushReader<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushReader").finish_non_exhaustive()
    }
}

/// Wakes nothing: the exporters' futures finish on their first poll (they block
/// on runtimes of their own), so polling again is all a wake could ask for.
struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(NoWake));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

impl<E: PushMetricExporter> Inner<E> {
    fn export_now(&self) -> OTelSdkResult {
        let _one = self.exporting.lock().unwrap_or_else(PoisonError::into_inner);
        let mut metrics = ResourceMetrics::default();
        self.reader.collect(&mut metrics)?;
        block_on(self.exporter.export(&metrics))
    }

    fn run(&self, interval: Duration) {
        loop {
            let stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
            let (stopped, _) = self
                .wake
                .wait_timeout_while(stopped, interval, |stopped| !*stopped)
                .unwrap_or_else(PoisonError::into_inner);
            if *stopped {
                return;
            }
            drop(stopped);
            // Failures are counted and reported by the exporter. A panic (a
            // user's callback gauge, say) loses this export, not the next ones.
            let exported = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.export_now()));
            if exported.is_err() {
                crate::report::warn(
                    "outcometer: a periodic export panicked; the next interval exports again",
                );
            }
        }
    }
}

impl<E: PushMetricExporter> PushReader<E> {
    /// Starts the worker; the first export is one `interval` from now.
    pub(crate) fn start(exporter: E, interval: Duration) -> std::io::Result<Self> {
        let temporality = exporter.temporality();
        let inner = Arc::new(Inner {
            reader: ManualReader::builder().with_temporality(temporality).build(),
            exporter,
            stopped: Mutex::new(false),
            wake: Condvar::new(),
            exporting: Mutex::new(()),
        });
        let worker = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("outcometer-push".into())
                .spawn(move || inner.run(interval))?
        };
        Ok(PushReader {
            inner,
            worker: Mutex::new(Some(worker)),
        })
    }
}

/// A reader dropped without a shutdown (a pipeline whose setup failed after it
/// started) stops its worker rather than leave it exporting forever.
impl<E> Drop for PushReader<E> {
    fn drop(&mut self) {
        *self.inner.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.inner.wake.notify_all();
    }
}

impl<E: PushMetricExporter> MetricReader for PushReader<E> {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.inner.reader.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.inner.reader.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        if *self.inner.stopped.lock().unwrap_or_else(PoisonError::into_inner) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        self.inner.export_now()
    }

    /// Stops the worker (waiting for an export it is in), exports the last
    /// interval, and shuts the exporter down. The exporter bounds its own export.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        {
            let mut stopped = self.inner.stopped.lock().unwrap_or_else(PoisonError::into_inner);
            if *stopped {
                return Err(OTelSdkError::AlreadyShutdown);
            }
            *stopped = true;
        }
        self.inner.wake.notify_all();
        if let Some(worker) = self.worker.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = worker.join();
        }
        let last = self.inner.export_now();
        let closed = self.inner.exporter.shutdown_with_timeout(timeout);
        let _ = self.inner.reader.shutdown_with_timeout(timeout);
        last.and(closed)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.inner.reader.temporality(kind)
    }
}
