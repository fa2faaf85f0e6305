//! One driver per transfer at a time (issues 19 and 29): a request handler and the
//! gateway's background drainer both drive transfers, each holding the transfer's
//! exclusive claim from before it reads the transfer until its step is recorded. A test
//! seam of the gateway (`Options::before_call`) holds a driver between its claim and its
//! TRANSFER_OUT call, so the tests can watch what the other driver does meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod gateway_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use coldchain_gateway::app::saga::StepHook;
use coldchain_proto::network::v1 as pb;
use gateway_support::*;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

const SKU: &str = "kiwi-hongyang";

/// Counts the TRANSFER_OUT calls of one transfer; once armed, holds the next one until
/// released.
struct Gate {
    transfer_id: &'static str,
    calls: AtomicU32,
    armed: AtomicBool,
    reached: Notify,
    release: Semaphore,
}

impl Gate {
    fn new(transfer_id: &'static str) -> Arc<Gate> {
        Arc::new(Gate {
            transfer_id,
            calls: AtomicU32::new(0),
            armed: AtomicBool::new(false),
            reached: Notify::new(),
            release: Semaphore::new(0),
        })
    }

    fn hook(self: &Arc<Gate>) -> StepHook {
        let gate = self.clone();
        StepHook::new(move |transfer_id, step| {
            let gate = gate.clone();
            let ours = transfer_id == gate.transfer_id && step == "transfer-out";
            async move {
                if !ours {
                    return;
                }
                gate.calls.fetch_add(1, Ordering::SeqCst);
                if gate.armed.swap(false, Ordering::SeqCst) {
                    gate.reached.notify_one();
                    gate.release.acquire().await.unwrap().forget();
                }
            }
        })
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Holds the next driver that reaches the call; returns once one is held.
    async fn hold_next(&self, arm: impl AsyncFnOnce()) {
        let reached = self.reached.notified();
        tokio::pin!(reached);
        reached.as_mut().enable();
        self.armed.store(true, Ordering::SeqCst);
        arm().await;
        tokio::time::timeout(Duration::from_secs(10), reached)
            .await
            .expect("a driver reaches the transfer out");
    }

    fn release(&self) {
        self.release.add_permits(1);
    }
}

/// The network with the gate's hook in the gateway; the park holds 100 kg of K1.
async fn network(gate: &Arc<Gate>) -> Net {
    let options = coldchain_gateway::Options {
        before_call: gate.hook(),
        ..fast_gateway()
    };
    let net = Net::start_with(
        &[(PARK, INVENTORY), (VIENTIANE, INVENTORY)],
        options,
        |_| {},
    )
    .await;
    receive(&net, PARK, SKU, "K1", "chilled-a", 100).await;
    net
}

/// Several of the drainer's rounds (`resume_interval` is 100 ms in these tests).
const ROUNDS: Duration = Duration::from_millis(1000);

/// StartTransfer `request` in a task of its own.
fn start_in_background(
    gateway: &Gateway,
    request: pb::StartTransferRequest,
) -> JoinHandle<pb::Transfer> {
    let mut gateway = gateway.clone();
    tokio::spawn(async move { start_transfer(&mut gateway, request).await })
}

/// The transfer's one TRANSFER_OUT, of 30 kg of K1.
fn ship_30(request_id: &str, transfer_id: &str) -> pb::StartTransferRequest {
    start(
        request_id,
        transfer_id,
        vec![line(SKU, "K1", "chilled-a", "chilled-a", 30)],
    )
}

/// While the gate holds a driver of its transfer (for several of the drainer's rounds),
/// `waiting` does not answer and no other driver reaches the TRANSFER_OUT; once released,
/// `waiting` answers the transfer IN_TRANSIT, and the TRANSFER_OUT was driven, and recorded
/// at the source, once.
async fn one_driver_at_a_time(gate: &Gate, net: &Net, waiting: JoinHandle<pb::Transfer>) {
    let held = gate.calls();
    tokio::time::sleep(ROUNDS).await;
    assert!(!waiting.is_finished(), "the other driver waits");
    assert_eq!(gate.calls(), held, "nobody else reached the transfer out");

    gate.release();
    let answered = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the call answers once the held driver is done")
        .unwrap();
    // Read under the claim: the held driver's step, not the state before it.
    assert_eq!(state(&answered), pb::TransferState::InTransit);
    tokio::time::sleep(ROUNDS).await;
    assert_eq!(gate.calls(), held, "the transfer out was not driven again");
    assert_eq!(transfer_entries(net, PARK, gate.transfer_id).await.len(), 1);
    assert_eq!(on_hand(net, PARK, SKU).await, 70);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_waits_for_the_transfer_the_drainer_drives() {
    let gate = Gate::new("T-DRAINER");
    let mut net = network(&gate).await;
    let request = ship_30("start-drainer", "T-DRAINER");
    // Recorded while the source is down: REQUESTED, left to the drainer.
    net.stop_service(PARK, INVENTORY).await;
    let mut gateway = net.gateway().await;
    let requested = start_transfer(&mut gateway, request.clone()).await;
    assert_eq!(state(&requested), pb::TransferState::Requested);

    // The drainer's next attempt is held after its claim, and the source comes back
    // meanwhile. Not the other way round: an attempt already past the gate when the
    // source came back would ship on its own retry, and no driver would reach the gate.
    gate.hold_next(async || {}).await;
    net.start_service(PARK, INVENTORY).await;
    // The client replays StartTransfer meanwhile: its handler waits for the claim.
    let replay = start_in_background(&gateway, request);
    one_driver_at_a_time(&gate, &net, replay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_drainer_leaves_alone_the_transfer_a_handler_drives() {
    let gate = Gate::new("T-HANDLER");
    let net = network(&gate).await;
    let gateway = net.gateway().await;

    // StartTransfer's driver is held after its claim; the drainer's rounds find the
    // transfer pending meanwhile.
    let mut started = None;
    gate.hold_next(async || {
        started = Some(start_in_background(
            &gateway,
            ship_30("start-handler", "T-HANDLER"),
        ));
    })
    .await;
    assert_eq!(gate.calls(), 1, "one driver reached the transfer out");
    one_driver_at_a_time(&gate, &net, started.unwrap()).await;
}

/// The race of issue 29, forced: StartTransfer's driver is held after its claim while the
/// drainer runs its rounds; the source refuses the TRANSFER_OUT (not enough stock) and the
/// transfer FAILS; stock then arrives. Neither the drainer, nor the client's replay, nor
/// the very TRANSFER_OUT request the saga sent, sent again, may debit the source now: the
/// source remembers its refusal under the step's request id. Conservation holds after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_step_never_debits_the_source_of_a_failed_transfer() {
    let gate = Gate::new("T-SHORT");
    let mut net = network(&gate).await;
    let gateway = net.gateway().await;
    let request = start(
        "start-short",
        "T-SHORT",
        vec![line(SKU, "K1", "chilled-a", "chilled-a", 130)],
    );
    let mut started = None;
    gate.hold_next(async || {
        let mut gateway = gateway.clone();
        let request = request.clone();
        started = Some(tokio::spawn(async move {
            gateway.start_transfer(request).await
        }));
    })
    .await;
    tokio::time::sleep(ROUNDS).await;
    gate.release();
    let refused = started.unwrap().await.unwrap().unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    let mut gateway = gateway.clone();
    let failed = wait_for_state(
        &mut gateway,
        "T-SHORT",
        pb::TransferState::Failed,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(state(&failed), pb::TransferState::Failed);

    // The stock the transfer wanted arrives; the drainer and a replay get their chances.
    receive(&net, PARK, SKU, "K1", "chilled-a", 50).await;
    tokio::time::sleep(ROUNDS).await;
    let replayed = gateway.start_transfer(request).await.unwrap_err();
    assert_eq!(replayed.code(), tonic::Code::FailedPrecondition);
    let still = wait_for_state(
        &mut gateway,
        "T-SHORT",
        pb::TransferState::Failed,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(state(&still), pb::TransferState::Failed);
    assert_eq!(gate.calls(), 1, "the refused step was not driven again");

    // The saga's own TRANSFER_OUT, sent again by hand: its first answer, the refusal.
    net.stop_gateway().await;
    let transfer = {
        let transfers = stopped_gateway_store(&net).await;
        let transfer = transfers.get("T-SHORT").unwrap().unwrap();
        transfers.raw().close();
        transfer
    };
    let mut park = net.inventory(PARK).await;
    let resent = park
        .record_movements(coldchain_gateway::wire::transfer_out_request(&transfer))
        .await
        .unwrap_err();
    assert_eq!(resent.code(), tonic::Code::FailedPrecondition, "{resent:?}");
    assert!(resent.message().contains("available 100"), "{resent:?}");

    // Conservation: all that was received is at the source, nothing left it.
    assert_eq!(on_hand(&net, PARK, SKU).await, 150);
    assert_eq!(on_hand(&net, VIENTIANE, SKU).await, 0);
    assert!(transfer_entries(&net, PARK, "T-SHORT").await.is_empty());
}
