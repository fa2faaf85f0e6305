//! The rows of the history and restart figures (issue: flat as the data grows).

use crate::alone::AloneRun;
use crate::load::LoadResult;
use crate::report::{Figures, Row, rate};
use crate::restart::RestartRun;
use crate::scenarios::{History, Phase};

const MIB: f64 = 1024.0 * 1024.0;

/// `ours` as a share of the empty store's figure.
fn share(ours: f64, empty: f64) -> String {
    if empty > 0.0 {
        format!("{:.0}%", 100.0 * ours / empty)
    } else {
        "–".into()
    }
}

/// A load's successful calls per second and its p99.9, with `suffix` inside the parentheses.
fn rate_and_tail(load: &LoadResult, suffix: &str) -> String {
    format!(
        "{} (p99.9 {:.1} ms{suffix})",
        rate(load.ok_per_second()),
        load.latency_ms(0.999)
    )
}

/// `ours` as a multiple of the empty store's figure.
fn times(ours: f64, empty: f64) -> String {
    if empty > 0.0 {
        format!("{:.2}×", ours / empty)
    } else {
        "–".into()
    }
}

/// The rows of one service's empty and filled phases: write throughput and tail, resident
/// memory under the load, one page of its list read, and the bytes on disk per row.
pub(crate) fn history_rows(
    figures: &mut Figures,
    service: &str,
    rows_name: &str,
    read: &str,
    (row_name, disk_target): (&str, &str),
    request_peer: &str,
    run: &History,
) {
    let (empty, filled) = (&run.empty, &run.filled);
    figures.record_errors(&format!("{service} history (empty)"), &empty.load);
    figures.record_errors(&format!("{service} history (filled)"), &filled.load);
    figures.record_errors(&format!("{service} {read} (empty)"), &empty.read);
    figures.record_errors(&format!("{service} {read} (filled)"), &filled.read);
    let history = format!("{} {rows_name}", filled.history);
    figures.rows.push(Row {
        figure: format!("{service} with history ({history}) vs empty: writes"),
        ours: rate(filled.load.ok_per_second()),
        peer: format!("{} (empty)", rate(empty.load.ok_per_second())),
        ratio: share(filled.load.ok_per_second(), empty.load.ok_per_second()),
        target: "≥ 80% of empty".into(),
    });
    figures.rows.push(Row {
        figure: format!("{service} with history vs empty: p99.9 of the writes"),
        ours: format!("{:.1} ms", filled.load.latency_ms(0.999)),
        peer: format!("{:.1} ms (empty)", empty.load.latency_ms(0.999)),
        ratio: times(filled.load.latency_ms(0.999), empty.load.latency_ms(0.999)),
        target: "< 50 ms".into(),
    });
    figures.rows.push(Row {
        figure: format!(
            "{service}: resident memory under the write load (the process: server and clients)"
        ),
        ours: format!("{:.0} MiB", filled.rss_peak as f64 / MIB),
        peer: format!("{:.0} MiB (empty)", empty.rss_peak as f64 / MIB),
        ratio: "–".into(),
        target: "≤ 200 MiB".into(),
    });
    figures.rows.push(Row {
        figure: format!("{service}: {read} of one page, p99, with history vs empty"),
        ours: format!("{:.2} ms", filled.read.latency_ms(0.99)),
        peer: format!("{:.2} ms (empty)", empty.read.latency_ms(0.99)),
        ratio: times(filled.read.latency_ms(0.99), empty.read.latency_ms(0.99)),
        target: "≤ 2× empty".into(),
    });
    if let Some(lots) = &filled.lot_history {
        figures.record_errors(&format!("{service} ListLotEntries (filled)"), lots);
        figures.rows.push(Row {
            figure: format!(
                "{service}: ListLotEntries of one lot of the history ({} entries a lot, spread over all {})",
                crate::scenarios::ENTRIES_PER_LOT,
                filled.history
            ),
            ours: format!(
                "p50 {:.1} ms, p99 {:.1} ms",
                lots.latency_ms(0.5),
                lots.latency_ms(0.99)
            ),
            peer: format!("{} with 4 clients", rate(lots.ok_per_second())),
            ratio: "–".into(),
            target: "–".into(),
        });
    }
    let per_row = |phase: &Phase| phase.disk.bytes as f64 / phase.rows.max(1) as f64;
    if let Some(disk) = filled.history_disk.filter(|_| filled.history > 0) {
        figures.rows.push(Row {
            figure: format!(
                "{service}: bytes on disk per {row_name} of the history ({} written in batches, after a clean stop, every file counted)",
                filled.history
            ),
            ours: format!("{:.0} B", disk.bytes as f64 / filled.history as f64),
            peer: format!("sled's space amplification {:.1}×", disk.amplification()),
            ratio: "–".into(),
            target: disk_target.into(),
        });
    }
    figures.rows.push(Row {
        figure: format!(
            "{service}: bytes on disk per {row_name} after the write load and a clean stop ({} in the store, every file counted)",
            filled.rows
        ),
        ours: format!(
            "{:.0} B (sled's space amplification {:.1}×)",
            per_row(filled),
            filled.disk.amplification()
        ),
        peer: format!(
            "{:.0} B, {:.1}× (empty + load: {} rows)",
            per_row(empty),
            empty.disk.amplification(),
            empty.rows
        ),
        ratio: "–".into(),
        target: disk_target.into(),
    });
    if let Some(bytes) = filled.disk.bytes_per_request() {
        figures.rows.push(Row {
            figure: format!(
                "{service}: bytes on disk per idempotency record ({} records: keys and values × sled's amplification)",
                filled.disk.requests
            ),
            ours: format!(
                "{bytes:.0} B ({:.0} B of keys and values)",
                filled.disk.request_bytes as f64 / filled.disk.requests.max(1) as f64
            ),
            peer: request_peer.to_string(),
            ratio: "–".into(),
            target: "tens of bytes".into(),
        });
    }
    figures.details.push(format!(
        "{service} history: {} {rows_name} written in {:.1} s ({}); writes then {} calls (p50 {:.2} ms, p99 {:.2} ms) against {} calls empty (p50 {:.2} ms, p99 {:.2} ms)",
        filled.history,
        filled.fill.as_secs_f64(),
        rate(filled.history as f64 / filled.fill.as_secs_f64().max(1e-9)),
        filled.load.calls,
        filled.load.latency_ms(0.5),
        filled.load.latency_ms(0.99),
        empty.load.calls,
        empty.load.latency_ms(0.5),
        empty.load.latency_ms(0.99),
    ));
}

/// The restart row.
pub(crate) fn restart_row(figures: &mut Figures, run: &RestartRun) {
    figures.rows.push(Row {
        figure: format!(
            "restart after SIGKILL with a full log segment ({} segments, {:.1} MiB of log to replay; {} ledger entries of history) until serving",
            run.segments,
            run.log_bytes as f64 / MIB,
            run.history
        ),
        ours: format!("{:.2} s", run.ready_after.as_secs_f64()),
        peer: "–".into(),
        ratio: "–".into(),
        target: "≤ 3 s".into(),
    });
    figures.rows.push(Row {
        figure: format!(
            "inventory: bytes on disk per ledger entry right after that SIGKILL ({} entries: the history in calls of 500, then calls of 200; the log not yet replayed, its segments counted whole)",
            run.entries
        ),
        ours: format!("{:.0} B", run.disk_after_kill as f64 / run.entries.max(1) as f64),
        peer: "–".into(),
        ratio: "–".into(),
        target: "≤ 100 B".into(),
    });
    figures.record_errors("restart (write load on the history)", &run.load);
    figures.rows.push(Row {
        figure: format!(
            "inventory as a process of its own with {} ledger entries of history: single-receipt writes, and their p99.9",
            run.history
        ),
        ours: rate_and_tail(&run.load, ""),
        peer: "–".into(),
        ratio: "–".into(),
        target: "p99.9 < 50 ms".into(),
    });
    if let Some(peak) = run.rss_peak {
        figures.rows.push(Row {
            figure: "inventory: peak resident memory of that server process alone (VmHWM: the history's fill, the write load, the log's fill), before the kill".into(),
            ours: format!("{:.0} MiB", peak as f64 / MIB),
            peer: "–".into(),
            ratio: "–".into(),
            target: "≤ 200 MiB".into(),
        });
    }
}

/// The rows of the booking service run as a process of its own.
pub(crate) fn alone_rows(figures: &mut Figures, run: &AloneRun) {
    let (empty, filled) = (&run.empty, &run.filled);
    figures.record_errors("booking alone (empty)", &empty.load);
    figures.record_errors("booking alone (filled)", &filled.load);
    figures.record_errors("booking alone ListBookings (empty)", &empty.read);
    figures.record_errors("booking alone ListBookings (filled)", &filled.read);
    figures.rows.push(Row {
        figure: format!(
            "booking as a process of its own: peak resident memory of the server alone under the write load, with {} bookings vs empty",
            filled.history
        ),
        ours: format!("{:.0} MiB", filled.rss_peak as f64 / MIB),
        peer: format!("{:.0} MiB (empty)", empty.rss_peak as f64 / MIB),
        ratio: "–".into(),
        target: "≤ 200 MiB".into(),
    });
    figures.rows.push(Row {
        figure: format!(
            "booking as a process of its own, with {} bookings vs empty: pairs, and their p99.9",
            filled.history
        ),
        ours: rate_and_tail(&filled.load, ""),
        peer: rate_and_tail(&empty.load, ", empty"),
        ratio: share(filled.load.ok_per_second(), empty.load.ok_per_second()),
        target: "≥ 80% of empty, p99.9 < 50 ms".into(),
    });
    figures.rows.push(Row {
        figure:
            "booking as a process of its own: ListBookings of one page, p99, with history vs empty"
                .into(),
        ours: format!("{:.2} ms", filled.read.latency_ms(0.99)),
        peer: format!("{:.2} ms (empty)", empty.read.latency_ms(0.99)),
        ratio: times(filled.read.latency_ms(0.99), empty.read.latency_ms(0.99)),
        target: "≤ 2× empty".into(),
    });
    figures.details.push(format!(
        "booking alone: {} bookings written in {:.1} s ({})",
        filled.history,
        run.fill.as_secs_f64(),
        rate(filled.history as f64 / run.fill.as_secs_f64().max(1e-9)),
    ));
}
