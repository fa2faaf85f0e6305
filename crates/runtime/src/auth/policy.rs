//! The policy table: which role may call which RPC of our contracts, and on which server.

use coldchain_proto::{
    ADMIN_SERVICE, BOOKING_SERVICE, INVENTORY_SERVICE, NETWORK_SERVICE, TELEMETRY_SERVICE,
};

use super::{Principal, Refusal, Role};
use crate::network::ServiceKind;

/// Who may call a method: roles, the site-scoped ones only on their own site's servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// The warehouse system of the server's site.
    Warehouse,
    /// The sensor gateway of the server's site.
    SensorGateway,
    /// Any booking client (the handler then keeps it to its own customer).
    BookingClient,
    /// Operations.
    Operations,
    /// The named service calling as itself.
    Service(ServiceKind),
}

/// Methods every caller may use without credentials: health (for orchestrators) and
/// reflection (the schema is public; the data is not).
pub(super) fn is_open(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
}

/// The policy table: who may call each RPC of our contracts. `None` for a path that is not
/// one of ours (the router answers UNIMPLEMENTED).
pub fn grants(path: &str) -> Option<&'static [Grant]> {
    use Grant::*;
    use ServiceKind::{Gateway as Gw, Inventory as Inv, Telemetry as Tel};
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let grants: &'static [Grant] = match (service, method) {
        (INVENTORY_SERVICE, "RecordMovements") => &[Warehouse, Service(Gw)],
        (
            INVENTORY_SERVICE,
            "GetStock" | "ListStock" | "ListExpiring" | "WatchLedger" | "ListLotEntries"
            | "GetTransformation",
        ) => &[Warehouse, Operations, Service(Gw)],
        (INVENTORY_SERVICE, "AllocateStock" | "ReleaseAllocation") => &[Warehouse],
        (INVENTORY_SERVICE, "PlaceHold" | "ReleaseHold") => {
            &[Warehouse, Operations, Service(Tel), Service(Gw)]
        }
        (TELEMETRY_SERVICE, "StreamReadings" | "PushReadings") => &[SensorGateway],
        (TELEMETRY_SERVICE, "RegisterSensor") => &[Operations, Service(Gw)],
        (
            TELEMETRY_SERVICE,
            "ListSensors"
            | "QueryReadings"
            | "GetMeanKineticTemperature"
            | "GetExposure"
            | "ListAlarms"
            | "WatchAlarms",
        ) => &[Warehouse, Operations, Service(Gw)],
        (TELEMETRY_SERVICE, "AcknowledgeAlarm") => &[Operations],
        (BOOKING_SERVICE, "GetAvailability") => {
            &[BookingClient, Warehouse, Operations, Service(Gw)]
        }
        (BOOKING_SERVICE, "HoldSpace" | "ConfirmBooking") => &[BookingClient],
        (BOOKING_SERVICE, "CancelBooking") => &[BookingClient, Operations],
        (BOOKING_SERVICE, "CheckIn") => &[Service(Inv), Operations],
        (BOOKING_SERVICE, "CompleteBooking") => &[Warehouse, Operations],
        (BOOKING_SERVICE, "GetBooking" | "ListBookings") => &[BookingClient, Warehouse, Operations],
        (NETWORK_SERVICE, "ListSites") => &[Warehouse, BookingClient, SensorGateway, Operations],
        (NETWORK_SERVICE, "FindSpace") => &[BookingClient, Operations],
        // Telemetry reads a transfer to find the lots a reefer's excursion must hold.
        (NETWORK_SERVICE, "GetTransfer") => &[Operations, Service(Tel)],
        (
            NETWORK_SERVICE,
            "FindStock" | "ListExpiring" | "ListAlarms" | "WatchAlarms" | "StartTransfer"
            | "ReceiveTransfer" | "ListTransfers" | "TraceLot" | "ExportTraceEpcis" | "RecallLot"
            | "ReleaseRecall" | "GetRecall" | "ListRecalls",
        ) => &[Operations],
        // A backup holds everything the database holds, whoever it belongs to.
        (ADMIN_SERVICE, "StreamSnapshot") => &[Operations],
        _ => return None,
    };
    Some(grants)
}

/// What a server is, for the policy: its service and, for site services, its site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerScope {
    /// The service it serves.
    pub kind: ServiceKind,
    /// Its site (`None` for the gateway).
    pub site: Option<String>,
}

/// May `principal` call `path` on this server?
pub fn authorize(principal: &Principal, server: &ServerScope, path: &str) -> Result<(), Refusal> {
    if is_open(path) {
        return Ok(());
    }
    let Some(grants) = grants(path) else {
        // Not one of our methods: nothing to protect, the router answers UNIMPLEMENTED.
        return Ok(());
    };
    let on_own_site = |site: &str| server.site.as_deref() == Some(site);
    let allowed = grants.iter().any(|grant| match (grant, &principal.role) {
        (Grant::Warehouse, Role::Warehouse { site }) => {
            server.kind == ServiceKind::Gateway || on_own_site(site)
        }
        (Grant::SensorGateway, Role::SensorGateway { site }) => {
            server.kind == ServiceKind::Gateway || on_own_site(site)
        }
        (Grant::BookingClient, Role::BookingClient { .. }) => true,
        (Grant::Operations, Role::Operations) => true,
        (Grant::Service(kind), Role::Service(caller)) => kind == caller,
        _ => false,
    });
    if allowed {
        Ok(())
    } else {
        let method = path.rsplit('/').next().unwrap_or(path);
        let place = match &server.site {
            Some(site) => format!("{} of {site}", server.kind.as_str()),
            None => server.kind.as_str().to_owned(),
        };
        Err(Refusal::Denied(format!(
            "credential {:?} ({}) may not call {method} on {place}",
            principal.id, principal.role
        )))
    }
}
