//! Recalls on the wire: the requests read (every bad field at once), the stored answer of
//! an idempotent call, and a recall rendered as `coldchain.network.v1.Recall`.

use std::collections::HashSet;

use coldchain_audit::Author;
use coldchain_proto::common::v1 as common;
use coldchain_proto::network::v1 as pb;
use coldchain_runtime::ServiceError;
use coldchain_runtime::idempotency::{Protobuf, fingerprint_of};
use coldchain_runtime::page_token;
use coldchain_runtime::proto_time::timestamp;
use coldchain_runtime::validate::Violations;
use coldchain_store::{ReplyCodec, RequestFingerprint};
use prost::Message;

use crate::domain::{HoldStep, Recall, RecallRef, RecallSpec, RecallState};

/// The most lots one recall names.
pub const MAX_RECALL_LOTS: usize = 100;

/// The stored answer of RecallLot and ReleaseRecall: `{ string recall_id = 1; }`.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredRecallRef {
    #[prost(string, tag = "1")]
    recall_id: String,
}

/// Keeps a [`RecallRef`] as protobuf bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecallRefCodec;

impl ReplyCodec<RecallRef> for RecallRefCodec {
    fn encode(&self, reply: &RecallRef) -> Vec<u8> {
        ReplyCodec::<StoredRecallRef>::encode(
            &Protobuf,
            &StoredRecallRef {
                recall_id: reply.recall_id.clone(),
            },
        )
    }

    fn decode(&self, bytes: &[u8]) -> Result<RecallRef, String> {
        let stored: StoredRecallRef = Protobuf.decode(bytes)?;
        Ok(RecallRef {
            recall_id: stored.recall_id,
        })
    }
}

/// RecallLot.
pub fn recall_lot(
    req: &pb::RecallLotRequest,
) -> Result<(RequestFingerprint, RecallSpec), ServiceError> {
    let mut v = Violations::new();
    v.request_id(&req.request_id);
    v.optional_id("recall_id", &req.recall_id);
    v.id("sku", &req.sku);
    v.text("reason", &req.reason, true);
    v.actor(&req.actor);
    if req.all_lots && !req.lot_ids.is_empty() {
        v.add("lot_ids", "must be empty with all_lots");
    }
    if !req.all_lots && req.lot_ids.is_empty() {
        v.add("lot_ids", "is required (or all_lots)");
    }
    if req.lot_ids.len() > MAX_RECALL_LOTS {
        v.add(
            "lot_ids",
            format!("at most {MAX_RECALL_LOTS} lots, got {}", req.lot_ids.len()),
        );
    }
    let mut seen = HashSet::new();
    for (i, lot) in req.lot_ids.iter().enumerate() {
        let field = format!("lot_ids[{i}]");
        v.id(&field, lot);
        if !seen.insert(lot) {
            v.add(field, format!("{lot:?} is listed more than once"));
        }
    }
    v.finish()?;
    let spec = RecallSpec {
        recall_id: (!req.recall_id.is_empty()).then(|| req.recall_id.clone()),
        sku: req.sku.clone(),
        lot_ids: req.lot_ids.clone(),
        reason: req.reason.clone(),
        include_derived: req.include_derived,
    };
    Ok((fingerprint_of(&req.request_id, req), spec))
}

/// ReleaseRecall: the fingerprint, the recall and the reason.
pub fn release_recall(
    req: &pb::ReleaseRecallRequest,
) -> Result<(RequestFingerprint, String, String), ServiceError> {
    let mut v = Violations::new();
    v.request_id(&req.request_id);
    v.id("recall_id", &req.recall_id);
    v.text("reason", &req.reason, true);
    v.actor(&req.actor);
    v.finish()?;
    Ok((
        fingerprint_of(&req.request_id, req),
        req.recall_id.clone(),
        req.reason.clone(),
    ))
}

/// GetRecall.
pub fn get_recall(req: &pb::GetRecallRequest) -> Result<String, ServiceError> {
    let mut v = Violations::new();
    v.id("recall_id", &req.recall_id);
    v.finish()?;
    Ok(req.recall_id.clone())
}

/// ListRecalls, read: active only, the page size, where the page starts, and what its
/// tokens are bound to.
pub struct RecallsQuery {
    /// Only recalls not yet released.
    pub active_only: bool,
    /// The page size.
    pub size: usize,
    /// The position after which the page starts.
    pub after: Option<Vec<u8>>,
    /// What the page tokens are bound to.
    pub query: Vec<u8>,
}

/// ListRecalls.
pub fn list_recalls(req: &pb::ListRecallsRequest) -> Result<RecallsQuery, ServiceError> {
    let mut v = Violations::new();
    let size = v.page_size(req.page_size);
    let query = super::requests::list_query(
        "ListRecalls",
        &pb::ListRecallsRequest {
            page_size: 0,
            page_token: String::new(),
            ..req.clone()
        }
        .encode_to_vec(),
    );
    let after = v.page_token(&query, &req.page_token);
    v.finish()?;
    Ok(RecallsQuery {
        active_only: req.active_only,
        size,
        after,
        query,
    })
}

/// A page of ListRecalls.
pub fn recalls_page(
    recalls: &[Recall],
    last_key: Option<Vec<u8>>,
    query: &[u8],
) -> pb::ListRecallsResponse {
    pb::ListRecallsResponse {
        recalls: recalls.iter().map(recall_to_proto).collect(),
        next_page_token: last_key
            .map(|key| page_token::encode(query, &key))
            .unwrap_or_default(),
    }
}

fn author(author: &Author) -> common::Author {
    common::Author {
        principal: author.principal.clone(),
        actor: author.actor.clone(),
    }
}

fn state(state: RecallState) -> pb::RecallState {
    match state {
        RecallState::Active => pb::RecallState::Active,
        RecallState::Releasing => pb::RecallState::Releasing,
        RecallState::Released => pb::RecallState::Released,
    }
}

fn hold_state(step: HoldStep) -> pb::RecallHoldState {
    match step {
        HoldStep::Pending => pb::RecallHoldState::Pending,
        HoldStep::AwaitingArrival => pb::RecallHoldState::AwaitingArrival,
        HoldStep::Held => pb::RecallHoldState::Held,
        HoldStep::NotPresent => pb::RecallHoldState::NotPresent,
        HoldStep::Released => pb::RecallHoldState::Released,
        HoldStep::Cancelled => pb::RecallHoldState::Cancelled,
    }
}

/// A recall as the contract shows it.
pub fn recall_to_proto(r: &Recall) -> pb::Recall {
    pb::Recall {
        recall_id: r.recall_id.clone(),
        sku: r.sku.clone(),
        lot_ids: r.lot_ids.clone(),
        reason: r.reason.clone(),
        state: state(r.state) as i32,
        holds: r
            .holds
            .iter()
            .map(|h| pb::RecallHold {
                site_id: h.site_id.clone(),
                lot_id: h.lot_id.clone(),
                state: hold_state(h.step) as i32,
                hold_id: h.hold_id.clone(),
                last_error: h.last_error.clone(),
                sku: h.sku.clone(),
            })
            .collect(),
        started_by: Some(author(&r.started_by)),
        created_at: Some(timestamp(r.created_ms)),
        released_by: r.released_by.as_ref().map(author),
        release_reason: r.release_reason.clone(),
        release_requested_at: r.release_requested_ms.map(timestamp),
        released_at: r.released_ms.map(timestamp),
        updated_at: Some(timestamp(r.updated_ms)),
        include_derived: r.include_derived,
        derived: r.derived.iter().map(super::trace::link).collect(),
    }
}
