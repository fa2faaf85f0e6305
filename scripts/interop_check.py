#!/usr/bin/env python3
"""Checks a running network with an independent gRPC implementation (Python grpcio):
every server answers grpc.health.v1.Health/Check with SERVING and lists its coldchain
service through grpc.reflection.v1.ServerReflection (both open to anyone); then, with the
keys of the dev keyring and message types learnt from the server's own reflection (no
generated code), inventory RecordMovements is refused without a key (UNAUTHENTICATED) and
with a wrong secret (UNAUTHENTICATED), refused to a booking client (PERMISSION_DENIED), and
answered to the site's own warehouse system (OK).

usage: interop_check.py NETWORK_TOML DATA_DIR
       (the dev keyring is DATA_DIR/dev-credentials, made by `coldchain dev`)
"""
import os
import sys
import time
import tomllib
import uuid

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2  # message shapes are identical in v1

SERVICES = {
    "inventory": "coldchain.inventory.v1.InventoryService",
    "telemetry": "coldchain.telemetry.v1.TelemetryService",
    "booking": "coldchain.booking.v1.BookingService",
}
REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
# A booking client of the dev keyring (credentials.rs DEV_CUSTOMERS).
BOOKING_CLIENT = "customer-hunan-citrus-export"


def endpoints(network):
    host = network["gateway"]["listen"]
    yield host.replace("0.0.0.0", "127.0.0.1"), "coldchain.network.v1.NetworkService"
    for site in network["site"]:
        for kind, name in SERVICES.items():
            yield f"127.0.0.1:{site['ports'][kind]}", name


def reflect(channel, requests):
    """grpc.reflection.v1 ServerReflectionInfo, called by its full method name."""
    call = channel.stream_stream(
        REFLECTION,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    return list(call(iter(requests), timeout=5))


def list_services_v1(channel):
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    for response in reflect(channel, [request]):
        return [s.name for s in response.list_services_response.service]
    return []


def message_types(channel, service, names):
    """The message classes `names`, built from the descriptors the server reflects for
    `service` (its file and every file it imports)."""
    files = {}
    wanted = [reflection_pb2.ServerReflectionRequest(file_containing_symbol=service)]
    while wanted:
        for response in reflect(channel, wanted):
            if response.HasField("error_response"):
                raise RuntimeError(f"reflection: {response.error_response.error_message}")
            for raw in response.file_descriptor_response.file_descriptor_proto:
                proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
                files[proto.name] = proto
        missing = {d for f in files.values() for d in f.dependency if d not in files}
        wanted = [reflection_pb2.ServerReflectionRequest(file_by_filename=m) for m in sorted(missing)]
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(name):
        if name in added:
            return
        for dependency in files[name].dependency:
            add(dependency)
        pool.Add(files[name])
        added.add(name)

    for name in sorted(files):
        add(name)
    return pool, [message_factory.GetMessageClass(pool.FindMessageTypeByName(n)) for n in names]


def read_key(keyring, credential):
    path = os.path.join(keyring, "keys", f"{credential}.key")
    with open(path, encoding="ascii") as f:
        return next(line.strip() for line in f if line.strip())


def check_health_and_reflection(network):
    deadline = time.time() + 30
    failures = []
    for address, service in endpoints(network):
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                if time.time() > deadline:
                    failures.append(f"{address}: {service} not SERVING")
                    break
                time.sleep(0.2)
            names = list_services_v1(channel)
            if service not in names:
                failures.append(f"{address}: reflection lists {names}, not {service}")
    return failures


def check_credentials(network, keyring):
    """RecordMovements at the first site's inventory as four callers."""
    site = network["site"][0]
    address = f"127.0.0.1:{site['ports']['inventory']}"
    warehouse = f"{site['id']}-warehouse"
    failures = []
    with grpc.insecure_channel(address) as channel:
        pool, (Request, Response) = message_types(
            channel,
            SERVICES["inventory"],
            ["coldchain.inventory.v1.RecordMovementsRequest", "coldchain.inventory.v1.RecordMovementsResponse"],
        )
        receipt = pool.FindEnumTypeByName("coldchain.inventory.v1.MovementKind").values_by_name["MOVEMENT_KIND_RECEIPT"].number
        request = Request(
            request_id=f"interop-{uuid.uuid4()}",
            movements=[
                dict(
                    kind=receipt,
                    sku="interop-check",
                    lot=dict(lot_id="interop-lot", expiry=dict(year=2099, month=12, day=31)),
                    zone_id=site["zone"][0]["id"],
                    quantity=1,
                    unit="kg",
                    reason="grpcio interop check",
                )
            ],
        )
        record = channel.unary_unary(
            f"/{SERVICES['inventory']}/RecordMovements",
            request_serializer=Request.SerializeToString,
            response_deserializer=Response.FromString,
        )
        own_key = read_key(keyring, warehouse)
        forged = own_key.rsplit(".", 1)[0] + "." + "0" * 64
        cases = [
            ("no key", None, grpc.StatusCode.UNAUTHENTICATED),
            (f"{warehouse} with a wrong secret", forged, grpc.StatusCode.UNAUTHENTICATED),
            (f"{BOOKING_CLIENT} (a booking client)", read_key(keyring, BOOKING_CLIENT), grpc.StatusCode.PERMISSION_DENIED),
            (f"{warehouse} (the site's warehouse system)", own_key, grpc.StatusCode.OK),
        ]
        for who, key, expected in cases:
            metadata = [] if key is None else [("authorization", f"Bearer {key}")]
            try:
                response = record(request, metadata=metadata, timeout=5)
                code = grpc.StatusCode.OK
                detail = f"{len(response.entries)} ledger entries"
                if len(response.entries) != 1 or response.entries[0].sequence < 1:
                    failures.append(f"RecordMovements as {who}: answered {response}")
            except grpc.RpcError as error:
                code, detail = error.code(), error.details()
            if code != expected:
                failures.append(f"RecordMovements as {who}: {code.name} ({detail}), expected {expected.name}")
            else:
                print(f"grpcio: RecordMovements as {who}: {code.name}")
    return failures


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1], "rb") as f:
        network = tomllib.load(f)
    keyring = os.path.join(sys.argv[2], "dev-credentials")
    failures = check_health_and_reflection(network)
    if not failures:
        print(f"grpcio: {sum(1 for _ in endpoints(network))} servers SERVING and reflected")
        failures = check_credentials(network, keyring)
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("grpcio: calls without a valid key are UNAUTHENTICATED, a role the policy does not allow is PERMISSION_DENIED, the right role is served")


if __name__ == "__main__":
    main()
