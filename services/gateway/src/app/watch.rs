//! The merged WatchAlarms stream: one upstream `TelemetryService.WatchAlarms` per site, each
//! resuming from its own cursor, merged into one client stream.
//!
//! Per site a feed task keeps the upstream stream open from `cursor` (the next sequence it
//! needs); when it drops, the task reports the site disconnected and reconnects with
//! a jittered, doubling backoff from the same cursor, so no event is lost and none is
//! repeated (events below the cursor are dropped should a site ever resend them).
//!
//! A coordinator forwards the feeds' events to the client through a bounded channel. The
//! slow-consumer rule is the one of every feed (`coldchain_runtime::feed`), with the same
//! configured numbers: a client that leaves `buffer` merged messages unread for `stall` ends
//! its stream with RESOURCE_EXHAUSTED naming the cursors to resume from; gateway shutdown
//! ends it with UNAVAILABLE, likewise. A site feed that drops is reported with the site's
//! error (UNAVAILABLE when the site could not be reached or the connection broke). An idle
//! stream sends an empty message every `keepalive`, like every feed, so a client (and any
//! proxy between) can tell a quiet network from a dead connection.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use coldchain_network::ServiceKind;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_runtime::Shutdown;
use coldchain_runtime::retry::Backoff;
use futures::{Stream, StreamExt};
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use super::sites::Sites;
use crate::{error, wire};

/// Most encoded bytes gathered into one merged message.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Tuning of the merged stream.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Merged messages queued for the client.
    pub buffer: usize,
    /// How long a client may leave the queue full before its stream ends.
    pub stall: Duration,
    /// How long opening an upstream stream may take.
    pub connect_timeout: Duration,
    /// First reconnect backoff.
    pub backoff_initial: Duration,
    /// Longest reconnect backoff.
    pub backoff_max: Duration,
    /// An idle stream sends an empty message this often (every feed's `feed_keepalive`).
    pub keepalive: Duration,
}

/// The client's stream.
pub type AlarmStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchAlarmsResponse, tonic::Status>> + Send>>;

enum FeedItem {
    Events(String, Vec<tel::AlarmEvent>),
    Status(pb::SiteFeedStatus),
}

/// Starts the merged stream of `sites_ids` (in network order), each from its cursor in
/// `from` (absent: the beginning).
pub fn merged(
    sites: Arc<Sites>,
    site_ids: Vec<String>,
    from: BTreeMap<String, u64>,
    options: WatchOptions,
    shutdown: Shutdown,
) -> AlarmStream {
    let (out_tx, out_rx) = mpsc::channel(options.buffer.max(1));
    let (end_tx, end_rx) = oneshot::channel::<tonic::Status>();
    tokio::spawn(coordinate(
        sites, site_ids, from, options, shutdown, out_tx, end_tx,
    ));
    let data = tokio_stream::wrappers::ReceiverStream::new(out_rx).map(Ok);
    let end = futures::stream::once(end_rx).filter_map(|ended| async move { ended.ok().map(Err) });
    Box::pin(data.chain(end))
}

fn cursors_text(cursors: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = cursors
        .iter()
        .map(|(site, next)| format!("{site}: {next}"))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

async fn coordinate(
    sites: Arc<Sites>,
    site_ids: Vec<String>,
    from: BTreeMap<String, u64>,
    options: WatchOptions,
    shutdown: Shutdown,
    out_tx: mpsc::Sender<pb::WatchAlarmsResponse>,
    end_tx: oneshot::Sender<tonic::Status>,
) {
    let (feed_tx, mut feed_rx) = mpsc::channel::<FeedItem>(options.buffer.max(16));
    let mut feeds = tokio::task::JoinSet::new();
    let mut cursors: BTreeMap<String, u64> = BTreeMap::new();
    for site in site_ids {
        let start = from.get(&site).copied().unwrap_or(0).max(1);
        cursors.insert(site.clone(), start);
        feeds.spawn(feed(
            sites.clone(),
            site,
            start,
            feed_tx.clone(),
            options.clone(),
        ));
    }
    drop(feed_tx);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let first = tokio::select! {
            biased;
            () = &mut stop => {
                let _ = end_tx.send(error::watch_shutting_down(&cursors_text(&cursors)));
                break;
            }
            () = out_tx.closed() => break,
            item = feed_rx.recv() => match item {
                Some(item) => Some(item),
                None => break,
            },
            () = tokio::time::sleep(options.keepalive) => None,
        };
        let mut response = pb::WatchAlarmsResponse::default();
        let mut advanced = cursors.clone();
        if let Some(first) = first {
            add(&mut response, &mut advanced, first);
            while response.encoded_len() < MAX_MESSAGE_BYTES {
                match feed_rx.try_recv() {
                    Ok(item) => add(&mut response, &mut advanced, item),
                    Err(_) => break,
                }
            }
            if response.events.is_empty() && response.feed_status.is_empty() {
                continue;
            }
        }
        match tokio::time::timeout(options.stall, out_tx.send(response)).await {
            Ok(Ok(())) => cursors = advanced,
            Ok(Err(_)) => break,
            Err(_) => {
                let _ = end_tx.send(error::watch_too_slow(
                    options.stall,
                    &cursors_text(&cursors),
                ));
                break;
            }
        }
    }
    feeds.abort_all();
}

fn add(
    response: &mut pb::WatchAlarmsResponse,
    cursors: &mut BTreeMap<String, u64>,
    item: FeedItem,
) {
    match item {
        FeedItem::Events(site, events) => {
            for event in events {
                cursors.insert(site.clone(), event.sequence.saturating_add(1));
                response.events.push(pb::NetworkAlarmEvent {
                    site_id: site.clone(),
                    event: Some(event),
                });
            }
        }
        FeedItem::Status(status) => response.feed_status.push(status),
    }
}

/// One site's upstream feed, forever (until aborted): connect from `cursor`, forward,
/// report drops, reconnect with backoff.
async fn feed(
    sites: Arc<Sites>,
    site: String,
    mut cursor: u64,
    tx: mpsc::Sender<FeedItem>,
    options: WatchOptions,
) {
    let backoff = Backoff::new(options.backoff_initial, options.backoff_max);
    let mut connected: Option<bool> = None;
    let mut attempt: u32 = 0;
    loop {
        let failure = match sites.telemetry(&site) {
            Err(status) => status,
            Ok(mut client) => {
                let opened = tokio::time::timeout(
                    options.connect_timeout,
                    client.watch_alarms(tel::WatchAlarmsRequest {
                        from_sequence: cursor,
                    }),
                )
                .await;
                match opened {
                    Err(_) => error::feed_not_opened(options.connect_timeout),
                    Ok(Err(status)) => status,
                    Ok(Ok(response)) => {
                        if connected != Some(true) {
                            connected = Some(true);
                            let status = pb::SiteFeedStatus {
                                site_id: site.clone(),
                                connected: true,
                                error: None,
                            };
                            if tx.send(FeedItem::Status(status)).await.is_err() {
                                return;
                            }
                        }
                        let mut stream = response.into_inner();
                        loop {
                            match stream.message().await {
                                Ok(Some(message)) => {
                                    attempt = 0;
                                    let mut events = Vec::with_capacity(message.events.len());
                                    for event in message.events {
                                        if event.sequence < cursor {
                                            continue;
                                        }
                                        if event.sequence != cursor {
                                            tracing::warn!(
                                                site = %site,
                                                expected = cursor,
                                                got = event.sequence,
                                                "the site's alarm feed skipped sequences"
                                            );
                                        }
                                        cursor = event.sequence.saturating_add(1);
                                        events.push(event);
                                    }
                                    if !events.is_empty()
                                        && tx
                                            .send(FeedItem::Events(site.clone(), events))
                                            .await
                                            .is_err()
                                    {
                                        return;
                                    }
                                }
                                Ok(None) => break error::feed_ended(),
                                Err(status) => break status,
                            }
                        }
                    }
                }
            }
        };
        if connected != Some(false) {
            connected = Some(false);
            let status = pb::SiteFeedStatus {
                site_id: site.clone(),
                connected: false,
                error: Some(wire::site_error(sites.site_error(
                    &site,
                    ServiceKind::Telemetry,
                    &failure,
                ))),
            };
            if tx.send(FeedItem::Status(status)).await.is_err() {
                return;
            }
        }
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(backoff.next(attempt)).await;
    }
}
