//! The protobuf contracts of the cold-chain network, compiled to Rust.
//!
//! One module per protobuf package (`coldchain.<service>.v1`), each with the
//! prost messages and the tonic client (`*_client`) and server (`*_server`)
//! of its service. Well-known types are [`prost_types`] (for example
//! `google.protobuf.Timestamp` is [`prost_types::Timestamp`]).
//!
//! [`FILE_DESCRIPTOR_SET`] holds every file's descriptor (with comments and
//! the imported `google/protobuf/*.proto` files) for gRPC reflection.
#![forbid(unsafe_code)]

/// `coldchain.common.v1`: types shared by every service.
pub mod common {
    /// Version 1.
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("coldchain.common.v1");
    }
}

/// `coldchain.inventory.v1`: the per-site inventory service.
pub mod inventory {
    /// Version 1.
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("coldchain.inventory.v1");
    }
}

/// `coldchain.telemetry.v1`: the per-site telemetry service.
pub mod telemetry {
    /// Version 1.
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("coldchain.telemetry.v1");
    }
}

/// `coldchain.booking.v1`: the per-site booking service.
pub mod booking {
    /// Version 1.
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("coldchain.booking.v1");
    }
}

/// `coldchain.network.v1`: the gateway's network service.
pub mod network {
    /// Version 1.
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("coldchain.network.v1");
    }
}

/// `coldchain.admin.v1`: administration of a server's own database (online backups).
pub mod admin {
    /// Version 1.
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("coldchain.admin.v1");
    }
}

/// `coldchain.bench.v1`: a no-op service, the benchmark ceiling.
pub mod bench {
    /// Version 1.
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("coldchain.bench.v1");
    }
}

/// The encoded `google.protobuf.FileDescriptorSet` of every contract (and
/// its imports), for `tonic_reflection`'s
/// `register_encoded_file_descriptor_set`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/coldchain_descriptor.bin"));

/// Fully-qualified name of the inventory service (fixed).
pub const INVENTORY_SERVICE: &str = "coldchain.inventory.v1.InventoryService";
/// Fully-qualified name of the telemetry service (fixed).
pub const TELEMETRY_SERVICE: &str = "coldchain.telemetry.v1.TelemetryService";
/// Fully-qualified name of the booking service (fixed).
pub const BOOKING_SERVICE: &str = "coldchain.booking.v1.BookingService";
/// Fully-qualified name of the gateway's network service (fixed).
pub const NETWORK_SERVICE: &str = "coldchain.network.v1.NetworkService";
/// Fully-qualified name of the admin service every server with a database serves.
pub const ADMIN_SERVICE: &str = "coldchain.admin.v1.AdminService";
/// Fully-qualified name of the benchmark no-op service.
pub const BENCH_SERVICE: &str = "coldchain.bench.v1.BenchService";

/// The four fixed services of the network, in the order of DESIGN.md.
pub const SERVICES: [&str; 4] = [
    INVENTORY_SERVICE,
    TELEMETRY_SERVICE,
    BOOKING_SERVICE,
    NETWORK_SERVICE,
];

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn descriptor_set() -> prost_types::FileDescriptorSet {
        prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET)
            .expect("the descriptor set decodes")
    }

    fn service_names(fds: &prost_types::FileDescriptorSet) -> Vec<String> {
        fds.file
            .iter()
            .flat_map(|file| {
                file.service
                    .iter()
                    .map(move |service| format!("{}.{}", file.package(), service.name()))
            })
            .collect()
    }

    #[test]
    fn descriptor_set_has_every_service() {
        let names = service_names(&descriptor_set());
        for service in SERVICES.iter().chain([&BENCH_SERVICE, &ADMIN_SERVICE]) {
            assert!(
                names.iter().any(|n| n == service),
                "{service} missing from {names:?}"
            );
        }
    }

    #[test]
    fn descriptor_set_is_self_contained() {
        // Reflection clients resolve every import from this set alone.
        let fds = descriptor_set();
        let files: Vec<&str> = fds.file.iter().map(|f| f.name()).collect();
        for file in &fds.file {
            for dep in &file.dependency {
                assert!(
                    files.contains(&dep.as_str()),
                    "{} imports missing {dep}",
                    file.name()
                );
            }
        }
        assert!(files.contains(&"google/protobuf/timestamp.proto"));
    }

    #[test]
    fn descriptor_set_keeps_comments() {
        let fds = descriptor_set();
        let inventory = fds
            .file
            .iter()
            .find(|f| f.package() == "coldchain.inventory.v1")
            .expect("inventory file");
        let info = inventory.source_code_info.as_ref().expect("source info");
        assert!(info.location.iter().any(|l| l.leading_comments.is_some()));
    }

    /// Every service, method, message, field, oneof, enum and enum value of
    /// our own files has a leading comment: the contracts are the docs.
    #[test]
    fn every_element_is_documented() {
        use prost_types::DescriptorProto;

        fn check_message(
            msg: &DescriptorProto,
            path: Vec<i32>,
            name: &str,
            documented: &dyn Fn(&[i32]) -> bool,
            missing: &mut Vec<String>,
        ) {
            let name = format!("{name}.{}", msg.name());
            if !documented(&path) {
                missing.push(name.clone());
            }
            for (i, field) in msg.field.iter().enumerate() {
                let field_path = [path.as_slice(), &[2, i as i32]].concat();
                if !documented(&field_path) {
                    missing.push(format!("{name}.{}", field.name()));
                }
            }
            for (i, oneof) in msg.oneof_decl.iter().enumerate() {
                let oneof_path = [path.as_slice(), &[8, i as i32]].concat();
                // Synthetic oneofs of proto3 `optional` fields have no source.
                if !oneof.name().starts_with('_') && !documented(&oneof_path) {
                    missing.push(format!("{name}.{} (oneof)", oneof.name()));
                }
            }
            for (i, nested) in msg.nested_type.iter().enumerate() {
                // Map entries are synthetic.
                if nested.options.as_ref().is_some_and(|o| o.map_entry()) {
                    continue;
                }
                let nested_path = [path.as_slice(), &[3, i as i32]].concat();
                check_message(nested, nested_path, &name, documented, missing);
            }
        }

        let fds = descriptor_set();
        let mut missing = Vec::new();
        for file in fds
            .file
            .iter()
            .filter(|f| f.package().starts_with("coldchain."))
        {
            let info = file.source_code_info.as_ref().expect("source info");
            let documented = |path: &[i32]| {
                info.location.iter().any(|l| {
                    l.path == path
                        && l.leading_comments
                            .as_deref()
                            .is_some_and(|c| !c.trim().is_empty())
                })
            };
            let package = file.package();
            for (i, msg) in file.message_type.iter().enumerate() {
                check_message(msg, vec![4, i as i32], package, &documented, &mut missing);
            }
            for (i, e) in file.enum_type.iter().enumerate() {
                if !documented(&[5, i as i32]) {
                    missing.push(format!("{package}.{}", e.name()));
                }
                for (j, value) in e.value.iter().enumerate() {
                    if !documented(&[5, i as i32, 2, j as i32]) {
                        missing.push(format!("{package}.{}", value.name()));
                    }
                }
            }
            for (i, service) in file.service.iter().enumerate() {
                if !documented(&[6, i as i32]) {
                    missing.push(format!("{package}.{}", service.name()));
                }
                for (j, method) in service.method.iter().enumerate() {
                    if !documented(&[6, i as i32, 2, j as i32]) {
                        missing.push(format!("{package}.{}.{}", service.name(), method.name()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "undocumented: {missing:#?}");
    }

    #[test]
    fn generated_names_match_the_service_consts() {
        assert_eq!(
            inventory::v1::inventory_service_server::SERVICE_NAME,
            INVENTORY_SERVICE
        );
        assert_eq!(
            telemetry::v1::telemetry_service_server::SERVICE_NAME,
            TELEMETRY_SERVICE
        );
        assert_eq!(
            booking::v1::booking_service_server::SERVICE_NAME,
            BOOKING_SERVICE
        );
        assert_eq!(
            network::v1::network_service_server::SERVICE_NAME,
            NETWORK_SERVICE
        );
        assert_eq!(bench::v1::bench_service_server::SERVICE_NAME, BENCH_SERVICE);
    }

    #[test]
    fn well_known_types_come_from_prost_types() {
        let entry = inventory::v1::LedgerEntry {
            recorded_at: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            ..Default::default()
        };
        let decoded = inventory::v1::LedgerEntry::decode(entry.encode_to_vec().as_slice())
            .expect("round trip");
        assert_eq!(decoded, entry);
    }
}
