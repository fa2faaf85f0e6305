#![forbid(unsafe_code)]
//! `coldchain demo`: a realistic day on a running network (`coldchain dev` or compose).
//!
//! 1. The gateway lists the network and its health.
//! 2. A warehouse system starts following Vientiane's ledger (`WatchLedger`).
//! 3. The park receives Hunan produce — Mayang navel oranges, Xiangxi kiwifruit — and dried
//!    rice noodles into its zones; processing line 2 makes frozen citrus segments from part
//!    of the oranges (a transformation: the segment lot keeps its link to the orchard lot),
//!    and the kiwifruit goes to the ripening room (a relocation, CHILLED to COOL).
//! 4. A China–Laos express train carries chilled and frozen lots from the park to Vientiane:
//!    a gateway transfer with the reefer's sensor bound to it (by the gateway, at the
//!    source's telemetry).
//! 5. The reefer streams readings live to the park's telemetry while the train has
//!    coverage; its logger buffers through northern Laos, where a door opened at the border.
//! 6. The train arrives: `ReceiveTransfer` at Vientiane. The logger uploads its buffer
//!    (`PushReadings`); the excursion raises an alarm that holds the transfer's lots
//!    (waited for with a bounded timeout), QA acknowledges it, and the lots' stock is
//!    checked at both ends.
//! 7. Vientiane's bananas: a forwarder holds and confirms cool space, and the receipt citing
//!    the booking checks it in.
//! 8. Booking clients across sites: a shipper finds chilled space with the gateway, holds
//!    and confirms it; an e-commerce seller holds frozen space and cancels it.
//! 9. The ledger follower's figures, and the network's active alarms.
//! 10. QA traces the lot that rode through the excursion across the network (TraceLot):
//!     its receipt, the transfer, its holds, where it is now and what each stay's sensors
//!     saw; and exports it as an EPCIS 2.0 document. Then it traces the segment lot that
//!     rode the same train back to the orchard lot it was made from.
//!
//! Each call is made as the role that makes it in real life, with that role's key from the
//! keyring (`$COLDCHAIN_KEYRING`, else the dev keyring under the data directory): the
//! sites' warehouse systems record receipts, read stock and follow the ledger; the park's
//! sensor gateway sends the reefer's readings; each customer's booking client holds,
//! confirms, reads or cancels its own bookings (and the shipper finds space through the
//! gateway); operations runs the transfer, lists and acknowledges alarms.
//!
//! Every id the demo creates carries the run id (derived from the time, or `--run-id`), and
//! every mutating call has a request id derived from it: a new run adds a new day, a rerun
//! with the same `--run-id` replays idempotently. [`drive`] returns a [`DemoOutcome`].

mod bookings;
mod day;
mod excursion;
mod figures;
mod ledger;
mod narrative;
mod outcome;
mod receipts;
mod reefer;
mod survey;
mod trace;
mod transfer;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use clap::Args;
use coldchain_command::say;
use coldchain_ops::CliError;
use coldchain_runtime::config::parse_duration;
use coldchain_runtime::network::NetworkConfig;

pub use day::drive;
pub use narrative::narrative;
pub use outcome::{
    AlarmOutcome, BookingOutcome, DemoError, DemoOutcome, LedgerOutcome, LotOutcome,
    ProcessingOutcome, ReadingsOutcome, StockOutcome, TransferLineOutcome, TransferOutcome,
};

/// The park: the hub, where the produce is received.
pub const PARK: &str = "cn-huaihua-park";
/// Vientiane: the China–Laos railway terminal.
pub const VIENTIANE: &str = "la-vientiane";
/// The train of the demo's transfer.
pub const TRAIN: &str = "China-Laos express X8011";
/// The forwarder that books cool space at Vientiane for bananas.
pub const FORWARDER: &str = "lao-banana-forwarding";
/// The shipper that finds chilled space through the gateway.
pub const SHIPPER: &str = "hunan-citrus-export";
/// The e-commerce seller that holds frozen space and cancels it.
pub const SELLER: &str = "ecom-seller-frozen-dumplings";

#[derive(Args)]
pub struct DemoArgs {
    /// The gateway [default: the network file's gateway].
    #[arg(long, value_name = "URL")]
    gateway: Option<String>,
    /// The network file (site endpoints and time zones).
    #[arg(long, value_name = "FILE", default_value = coldchain_command::DEFAULT_NETWORK)]
    network: PathBuf,
    /// Print the outcome as one JSON document instead of the narrative.
    #[arg(long)]
    json: bool,
    /// The run id suffixed to every id the demo creates [default: from the time]; give a
    /// previous run's id to replay it idempotently.
    #[arg(long, value_name = "ID")]
    run_id: Option<String>,
    /// How long to wait for asynchronous effects (the excursion's hold, the ledger
    /// follower), e.g. 30s.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    wait: Duration,
}

/// What the demo needs to run.
pub struct DemoConfig {
    /// The gateway endpoint.
    pub gateway: String,
    /// The network (site endpoints, zones, time zones).
    pub network: NetworkConfig,
    /// The run id.
    pub run_id: String,
    /// The bound on every wait for an asynchronous effect.
    pub wait: Duration,
}

/// Runs `coldchain demo`.
pub async fn run(args: DemoArgs) -> ExitCode {
    let network = match coldchain_ops::load_network(&args.network) {
        Ok(network) => network,
        Err(error) => return error.report(),
    };
    let run_id = args
        .run_id
        .clone()
        .unwrap_or_else(|| Utc::now().format(RUN_ID_FORMAT).to_string());
    if !valid_run_id(&run_id) {
        return CliError::Usage(format!(
            "--run-id {run_id:?}: use 1 to 40 characters of A-Z a-z 0-9 . _ : -"
        ))
        .report();
    }
    let config = DemoConfig {
        gateway: args
            .gateway
            .clone()
            .unwrap_or_else(|| network.gateway_endpoint()),
        network,
        run_id,
        wait: args.wait,
    };
    match drive(&config).await {
        Ok(outcome) => {
            if args.json {
                match serde_json::to_value(&outcome) {
                    Ok(value) => coldchain_ops::print_json(&value),
                    Err(e) => {
                        eprintln!("error: cannot encode the outcome: {e}");
                        return ExitCode::from(1);
                    }
                }
            } else {
                for line in narrative(&outcome) {
                    say!("{line}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            let code = failure.error.report();
            eprintln!("  during the demo step: {}", failure.step);
            eprintln!(
                "  (a rerun with --run-id {} resumes it idempotently)",
                config.run_id
            );
            code
        }
    }
}

/// A run id fit to be suffixed to every id the demo creates.
pub fn valid_run_id(run_id: &str) -> bool {
    (1..=40).contains(&run_id.len())
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

/// The format of a run id derived from the time (UTC), e.g. `20261128-165445-456`.
pub const RUN_ID_FORMAT: &str = "%Y%m%d-%H%M%S-%3f";

/// The instant a run is anchored at: the time in a time-derived run id (so a rerun with the
/// same id sends the very same requests and replays), else now.
pub fn run_anchor(run_id: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(run_id, RUN_ID_FORMAT)
        .map(|naive| naive.and_utc())
        .unwrap_or_else(|_| Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reefer::journey;

    #[test]
    fn a_time_derived_run_id_anchors_the_run() {
        let at = run_anchor("20261128-165445-456");
        assert_eq!(at.to_rfc3339(), "2026-11-28T16:54:45.456+00:00");
        assert_eq!(
            journey("r", at),
            journey("r", at),
            "a rerun sends the same readings"
        );
        let before = Utc::now();
        assert!(run_anchor("my-own-run") >= before);
        assert!(valid_run_id("20261128-165445-456") && valid_run_id("my-own-run"));
        assert!(!valid_run_id("bad id!") && !valid_run_id("") && !valid_run_id(&"x".repeat(41)));
    }

    #[test]
    fn the_demo_customers_have_keys_in_the_dev_keyring() {
        for customer in [FORWARDER, SHIPPER, SELLER] {
            assert!(
                coldchain_credentials::DEV_CUSTOMERS.contains(&customer),
                "{customer} has no booking client in the dev keyring"
            );
        }
    }

    #[test]
    fn the_journey_has_one_long_excursion_above_chilled() {
        let readings = journey("reefer-x", Utc::now());
        assert_eq!(readings.len(), 100);
        let above: Vec<usize> = readings
            .iter()
            .enumerate()
            .filter(|(_, r)| r.celsius > 4.0)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(above.first(), Some(&40));
        assert_eq!(above.last(), Some(&63));
        assert_eq!(above.len(), 24, "12 minutes at one reading per 30 s");
        let peak = readings.iter().map(|r| r.celsius).fold(f64::MIN, f64::max);
        assert!((6.5..7.5).contains(&peak), "{peak}");
        // Inside the limits again by more than the default hysteresis afterwards.
        assert!(readings[64..].iter().all(|r| r.celsius < 3.0));
        let times: Vec<i64> = readings
            .iter()
            .map(|r| r.time.as_ref().unwrap().seconds)
            .collect();
        assert!(times.windows(2).all(|w| w[1] - w[0] == 30));
        assert!(Utc::now().timestamp() - times[0] <= 50 * 60 + 1);
    }
}
