//! The pull endpoint under load and against clients that hold connections without
//! scraping. Bounded loops on loopback; no timing is asserted except the one the
//! behaviour is about (a real scrape answered while slow clients hold sockets).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outcometer::{DeliveryMetrics, DeliveryRecorder, IdempotencyMetrics, IdempotencyRecorder, UserScope};
use outcometer_exporter::{ExporterKind, Telemetry};

fn pull_only() -> Telemetry {
    Telemetry::builder()
        .exporters([ExporterKind::Prometheus])
        .prometheus_host("127.0.0.1")
        .prometheus_port(0u16)
        .build_with_env(|_| None)
        .expect("pipeline")
}

/// One complete scrape on `stream` (kept alive, as Prometheus keeps its
/// connections): status and the whole body, `None` on any short or broken answer.
fn scrape_on(stream: &mut TcpStream) -> Option<(u16, String)> {
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .map_err(|e| eprintln!("write: {e}"))
        .ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream
            .read_exact(&mut byte)
            .map_err(|e| eprintln!("read head: {e}"))
            .ok()?;
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))?
        .trim()
        .parse()
        .ok()?;
    let mut body = vec![0u8; length];
    stream
        .read_exact(&mut body)
        .map_err(|e| eprintln!("read body: {e}"))
        .ok()?;
    Some((status, String::from_utf8(body).ok()?))
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// One scrape on a fresh connection.
fn scrape(addr: SocketAddr) -> Option<(u16, String)> {
    scrape_on(&mut connect(addr))
}

#[test]
fn sixteen_scrapers_for_ten_seconds_get_complete_answers_while_the_app_records() {
    let telemetry = pull_only();
    let addr = telemetry.prometheus_address().expect("listening");
    let idem = IdempotencyRecorder::builder()
        .build(&telemetry.backend())
        .unwrap();
    let delivery = DeliveryRecorder::builder().build(&telemetry.backend()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let recorded = Arc::new(AtomicU64::new(0));
    let recorder = {
        let (stop, recorded) = (stop.clone(), recorded.clone());
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                idem.record_miss(UserScope::from_digest(i.wrapping_mul(2_654_435_761)));
                delivery.record_delivery_success(
                    &format!("https://h{}.example", i % 30),
                    Duration::from_millis(5),
                );
                recorded.fetch_add(1, Ordering::Relaxed);
                i = i.wrapping_add(1);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let scrapers: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                let (mut ok, mut busy, mut bad) = (0u32, 0u32, 0u32);
                let mut stream = connect(addr);
                while Instant::now() < deadline {
                    match scrape_on(&mut stream) {
                        Some((200, body)) if body.contains("idempotency_requests_total") => ok += 1,
                        Some((503, _)) => busy += 1, // more than two renders at once: told to retry
                        _ => {
                            bad += 1;
                            stream = connect(addr);
                        }
                    }
                }
                (ok, busy, bad)
            })
        })
        .collect();
    let results: Vec<_> = scrapers.into_iter().map(|t| t.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    recorder.join().unwrap();
    let ok: u32 = results.iter().map(|r| r.0).sum();
    let bad: u32 = results.iter().map(|r| r.2).sum();
    eprintln!(
        "16 scrapers, 10 s: {ok} complete scrapes, {} told to retry, {bad} incomplete; {} records meanwhile",
        results.iter().map(|r| r.1).sum::<u32>(),
        recorded.load(Ordering::Relaxed)
    );
    assert_eq!(bad, 0, "every response is complete");
    assert!(ok > 16, "scrapes were answered: {results:?}");
    assert!(
        recorded.load(Ordering::Relaxed) > 10_000,
        "the record path kept going"
    );
}

#[test]
fn two_hundred_stalled_connections_do_not_lock_out_a_real_scrape() {
    let telemetry = pull_only();
    let addr = telemetry.prometheus_address().expect("listening");
    // Half send a partial request line and stop; half connect and send nothing.
    let stalled: Vec<TcpStream> = (0..200)
        .map(|i| {
            let mut s = TcpStream::connect(addr).expect("connect");
            if i % 2 == 0 {
                let _ = s.write_all(b"GET /metr");
            }
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let answer = scrape(addr);
    let took = started.elapsed();
    assert!(matches!(answer, Some((200, _))), "{answer:?}");
    assert!(
        took < Duration::from_secs(1),
        "a real scrape took {took:?} with 200 stalled connections"
    );
    drop(stalled);
}
