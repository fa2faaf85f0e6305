//! Who started and who received each transfer: the gateway records the authenticated
//! principal and the actor of StartTransfer and ReceiveTransfer, shows both in GetTransfer
//! and ListTransfers, and names them as the actor of the saga's calls to the sites.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::sync::Arc;

use coldchain_proto::common::v1 as cc;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_runtime::auth::{ApiKey, Credentials, Role};
use common::fake_inventory::recorded;
use common::*;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const SKU: &str = "kiwi-hongyang";

type Client = NetworkServiceClient<
    InterceptedService<
        Channel,
        Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>,
    >,
>;

/// A client of the gateway that presents `key`.
async fn client_of(net: &Net, key: &ApiKey) -> Client {
    let channel = Channel::from_shared(net.gateway_endpoint())
        .unwrap()
        .connect()
        .await
        .expect("connect to the gateway");
    let header: MetadataValue<_> = key.header_value().to_str().unwrap().parse().unwrap();
    NetworkServiceClient::with_interceptor(
        channel,
        Box::new(move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
            Ok(request)
        }),
    )
}

fn author(principal: &str, actor: &str) -> Option<cc::Author> {
    Some(cc::Author {
        principal: principal.into(),
        actor: actor.into(),
    })
}

async fn get(client: &mut Client, transfer_id: &str) -> pb::Transfer {
    client
        .get_transfer(pb::GetTransferRequest {
            transfer_id: transfer_id.into(),
        })
        .await
        .expect("get transfer")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_shows_who_started_it_and_who_reported_its_arrival_and_the_sites_hear_it() {
    let starter = ApiKey::generate("ops-park").unwrap();
    let receiver = ApiKey::generate("ops-vientiane").unwrap();
    let mut credentials = Credentials::default();
    credentials.insert(&starter, Role::Operations);
    credentials.insert(&receiver, Role::Operations);
    let mut net = Net::start(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY)]).await;
    net.gateway_credentials = Some(Arc::new(credentials));
    net.stop_gateway().await;
    net.start_gateway().await;
    let mut by_starter = client_of(&net, &starter).await;
    let mut by_receiver = client_of(&net, &receiver).await;

    let mut request = start(
        "r-1",
        "T-1",
        vec![line(SKU, "K1", "chilled-a", "chilled-a", 5)],
    );
    request.actor = "Li Wei, badge 0042".into();
    let started = by_starter
        .start_transfer(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&started), pb::TransferState::InTransit);
    assert_eq!(started.started_by, author("ops-park", "Li Wei, badge 0042"));
    assert_eq!(started.arrival_reported_by, None, "unset until the arrival");

    let received = by_receiver
        .receive_transfer(pb::ReceiveTransferRequest {
            request_id: "r-2".into(),
            transfer_id: "T-1".into(),
            actor: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&received), pb::TransferState::Completed);

    // Whoever reads it sees both authors.
    for client in [&mut by_starter, &mut by_receiver] {
        let t = get(client, "T-1").await;
        assert_eq!(t.started_by, author("ops-park", "Li Wei, badge 0042"));
        assert_eq!(t.arrival_reported_by, author("ops-vientiane", ""));
    }
    let listed = by_receiver
        .list_transfers(pb::ListTransfersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.transfers[0].started_by,
        author("ops-park", "Li Wei, badge 0042")
    );
    assert_eq!(
        listed.transfers[0].arrival_reported_by,
        author("ops-vientiane", "")
    );

    // The sites' ledgers say on whose behalf the gateway moved the goods.
    let out = recorded(net.dir.path(), PARK);
    assert!(!out.is_empty(), "the source got the TRANSFER_OUT");
    for request in &out {
        assert_eq!(request.actor, "ops-park/Li Wei, badge 0042");
    }
    let into = recorded(net.dir.path(), VIENTIANE);
    assert!(!into.is_empty(), "the destination got the TRANSFER_IN");
    for request in &into {
        assert_eq!(request.actor, "ops-vientiane");
    }

    // A repeat of the arrival by someone else does not rewrite who reported it.
    let _ = by_starter
        .receive_transfer(pb::ReceiveTransferRequest {
            request_id: "r-3".into(),
            transfer_id: "T-1".into(),
            actor: "late".into(),
        })
        .await;
    let t = get(&mut by_starter, "T-1").await;
    assert_eq!(t.arrival_reported_by, author("ops-vientiane", ""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_authentication_the_principal_is_anonymous_and_a_bad_actor_is_refused() {
    let net = Net::start(&[(PARK, INVENTORY)]).await;
    let mut g = net.gateway().await;

    let mut bad = start(
        "r-1",
        "T-1",
        vec![line(SKU, "K1", "chilled-a", "chilled-a", 5)],
    );
    bad.actor = "two\nlines".into();
    let status = g
        .start_transfer(bad)
        .await
        .expect_err("a control character");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(fields(&status), ["actor"]);
    let status = g
        .receive_transfer(pb::ReceiveTransferRequest {
            request_id: "r-9".into(),
            transfer_id: "T-1".into(),
            actor: "x".repeat(129),
        })
        .await
        .expect_err("too long");
    assert_eq!(fields(&status), ["actor"]);
    let missing = g
        .get_transfer(pb::GetTransferRequest {
            transfer_id: "T-1".into(),
        })
        .await
        .expect_err("nothing was created");
    assert_eq!(missing.code(), Code::NotFound);

    let started = g
        .start_transfer(start(
            "r-2",
            "T-2",
            vec![line(SKU, "K1", "chilled-a", "chilled-a", 5)],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.started_by, author("anonymous", ""));
    let out = recorded(net.dir.path(), PARK);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].actor, "anonymous");

    // The actor is part of the request: the same request_id with another actor is not a
    // replay.
    let mut other = start(
        "r-2",
        "T-2",
        vec![line(SKU, "K1", "chilled-a", "chilled-a", 5)],
    );
    other.actor = "someone else".into();
    let status = g.start_transfer(other).await.expect_err("not a replay");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(fields(&status), ["request_id"]);
}
