#!/usr/bin/env python3
"""Checks a running network with an independent gRPC implementation (Python grpcio):
every server answers grpc.health.v1.Health/Check with SERVING and lists its coldchain
service through grpc.reflection.v1.ServerReflection.

usage: interop_check.py NETWORK_TOML
"""
import sys
import time
import tomllib

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2  # message shapes are identical in v1

SERVICES = {
    "inventory": "coldchain.inventory.v1.InventoryService",
    "telemetry": "coldchain.telemetry.v1.TelemetryService",
    "booking": "coldchain.booking.v1.BookingService",
}


def endpoints(network):
    host = network["gateway"]["listen"]
    yield host.replace("0.0.0.0", "127.0.0.1"), "coldchain.network.v1.NetworkService"
    for site in network["site"]:
        for kind, name in SERVICES.items():
            yield f"127.0.0.1:{site['ports'][kind]}", name


def list_services_v1(channel):
    """grpc.reflection.v1 ServerReflectionInfo, called by its full method name."""
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    for response in call(iter([request]), timeout=5):
        return [s.name for s in response.list_services_response.service]
    return []


def main():
    with open(sys.argv[1], "rb") as f:
        network = tomllib.load(f)
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
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print(f"grpcio: {sum(1 for _ in endpoints(network))} servers SERVING and reflected")


if __name__ == "__main__":
    main()
