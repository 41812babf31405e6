//! The active-task guard decrements on every exit path, panics included.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use outcometer::testing::InMemoryBackend;
use outcometer::{ActiveTaskGuard, DeliveryRecorder, EventMetrics};

#[test]
fn guard_decrements_during_panic_unwinding() {
    let metrics = Arc::new(
        DeliveryRecorder::builder()
            .build(&InMemoryBackend::new())
            .unwrap(),
    );
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _guard = ActiveTaskGuard::new(metrics.clone());
        assert_eq!(metrics.active_task_count(), 1);
        panic!("delivery task blew up");
    }));
    assert!(result.is_err());
    assert_eq!(metrics.active_task_count(), 0);
}

#[test]
fn guards_nest_and_count_concurrent_tasks() {
    let metrics = DeliveryRecorder::builder()
        .build(&InMemoryBackend::new())
        .unwrap();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..1000 {
                    let _outer = metrics.track_active_task();
                    let _inner = metrics.track_active_task();
                }
            });
        }
    });
    assert_eq!(metrics.active_task_count(), 0);
}

#[test]
fn the_guard_is_owned_and_moves_into_a_spawned_task() {
    let metrics = DeliveryRecorder::builder()
        .build(&InMemoryBackend::new())
        .unwrap();
    let guard = metrics.track_active_task();
    assert_eq!(metrics.active_task_count(), 1);
    // `std::thread::spawn` (like `tokio::spawn`) needs a `'static` guard.
    std::thread::spawn(move || drop(guard)).join().unwrap();
    assert_eq!(metrics.active_task_count(), 0);
}
