//! The load generator: fixed concurrency over a set number of connections (closed loop) or
//! a fixed total rate (open loop, latency measured from each call's scheduled start so a
//! stalled server cannot hide its queueing), warm-up, duration, a latency histogram and a
//! count per gRPC status, with progress on stderr.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coldchain_runtime::retry::code_name;
use hdrhistogram::Histogram;

/// How to drive one scenario.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent callers.
    pub concurrency: usize,
    /// Calls made but not measured before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Total calls per second across all callers; `None` = as fast as each caller can.
    pub rate: Option<f64>,
}

/// What one scenario measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Calls finished inside the measured window (any status).
    pub calls: u64,
    /// The measured window's real length.
    pub elapsed: Duration,
    /// Latency in microseconds.
    pub latency: Histogram<u64>,
    /// Calls per gRPC status name (`OK`, `UNAVAILABLE`, …).
    pub statuses: BTreeMap<String, u64>,
}

impl LoadResult {
    /// Successful calls per second.
    pub fn ok_per_second(&self) -> f64 {
        self.statuses.get("OK").copied().unwrap_or(0) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Calls that did not succeed.
    pub fn errors(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(code, _)| *code != "OK")
            .map(|(_, n)| n)
            .sum()
    }

    /// The latency at `quantile` (0..1) in milliseconds.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// The name of a call's outcome: its gRPC code's canonical name.
pub fn status_name(result: &Result<(), tonic::Status>) -> String {
    match result {
        Ok(()) => "OK".to_string(),
        Err(status) => code_name(status.code()).to_string(),
    }
}

/// 1 µs .. 60 s at 3 significant digits.
// The bounds are constants that hdrhistogram accepts (low ≥ 1, high ≥ 2 × low, at most 5
// significant digits): this cannot fail.
#[allow(clippy::expect_used)]
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Runs `call(worker, iteration)` from `spec.concurrency` workers and measures it.
pub async fn run<F, Fut>(label: &str, spec: &LoadSpec, call: F) -> LoadResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let measure_from = started + spec.warmup;
    let end = measure_from + spec.duration;
    let measured = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let per_worker_interval = spec
        .rate
        .map(|rate| Duration::from_secs_f64(spec.concurrency as f64 / rate.max(1e-6)));

    let progress = tokio::spawn(report_progress(
        label.to_string(),
        measured.clone(),
        done.clone(),
        measure_from,
        spec.duration,
    ));

    let concurrency = spec.concurrency as f64;
    let mut workers = Vec::with_capacity(spec.concurrency);
    for worker in 0..spec.concurrency {
        let call = call.clone();
        let measured = measured.clone();
        workers.push(tokio::spawn(async move {
            let mut histogram = new_histogram();
            let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
            let mut iteration = 0u64;
            // Spread the open-loop workers over one interval so they do not fire together.
            let mut scheduled = per_worker_interval
                .map(|interval| Instant::now() + interval.mul_f64(worker as f64 / concurrency));
            loop {
                if let (Some(at), Some(interval)) = (scheduled.as_mut(), per_worker_interval) {
                    tokio::time::sleep_until((*at).into()).await;
                    *at += interval;
                }
                let begin = scheduled
                    .map(|at| at - per_worker_interval.unwrap_or_default())
                    .unwrap_or_else(Instant::now);
                if begin >= end {
                    break;
                }
                let result = call(worker, iteration).await;
                iteration += 1;
                let finished = Instant::now();
                if begin >= measure_from && finished <= end {
                    let micros = finished.saturating_duration_since(begin).as_micros() as u64;
                    let _ = histogram.record(micros.clamp(1, 60_000_000));
                    *statuses.entry(status_name(&result)).or_default() += 1;
                    measured.fetch_add(1, Ordering::Relaxed);
                }
                if finished >= end {
                    break;
                }
            }
            (histogram, statuses)
        }));
    }

    let mut latency = new_histogram();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for worker in workers {
        if let Ok((histogram, counts)) = worker.await {
            let _ = latency.add(histogram);
            for (code, n) in counts {
                *statuses.entry(code).or_default() += n;
            }
        }
    }
    done.store(true, Ordering::Relaxed);
    let _ = progress.await;
    LoadResult {
        calls: statuses.values().sum(),
        elapsed: spec.duration,
        latency,
        statuses,
    }
}

async fn report_progress(
    label: String,
    measured: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    measure_from: Instant,
    duration: Duration,
) {
    let mut last = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    while !done.load(Ordering::Relaxed) {
        ticker.tick().await;
        let now = measured.load(Ordering::Relaxed);
        if Instant::now() < measure_from {
            eprintln!("  {label}: warming up");
            continue;
        }
        let elapsed = Instant::now()
            .saturating_duration_since(measure_from)
            .min(duration);
        eprintln!(
            "  {label}: {:>4.0}/{}s {:>10.0} calls/s",
            elapsed.as_secs_f64(),
            duration.as_secs(),
            (now - last) as f64
        );
        last = now;
    }
}
