#!/usr/bin/env python3
"""The gRPC side of scripts/compose_e2e.sh: calls the containers of a running compose
deployment with Python grpcio (an implementation independent of ours), through stubs
generated from proto/ by grpcio-tools.

Site services are not published on the host; they are reached at their container's address
on the site's own network (`docker inspect`), as the site's local clients would. The gateway is
reached on its published port.

Every call goes over TLS, trusting the deployment's CA (`--secrets DIR`: `tls/ca.pem`), and
carries the API key of the role that may make it (`keyring/keys/<id>.key`, sent as
`authorization: Bearer <key>`): operations for the gateway's views and transfers, a site's
warehouse for its movements, its sensor gateway for readings. A site service is reached by IP
address, so its certificate is checked against its container name. Health checks are open and
are called without a key.

Every command prints what it checked and exits 0 when every check passed, 1 when one failed,
and 3 (PENDING) when a service answered UNIMPLEMENTED: the feature is not built yet. Nothing
here skips silently.

usage: e2e.py --stubs DIR --project NAME COMMAND ...   (see `e2e.py --help`)
"""
import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time

import grpc

PENDING = 3


class Pending(Exception):
    """A service answered UNIMPLEMENTED."""


class Failed(Exception):
    """A check failed."""


def say(text):
    print(f"  {text}", flush=True)


def check(condition, text):
    if not condition:
        raise Failed(text)
    say(f"ok: {text}")


def call(what, fn, *args, **kwargs):
    """Calls an RPC; UNIMPLEMENTED becomes Pending, anything else propagates."""
    try:
        return fn(*args, **kwargs)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise Pending(f"{what} answers UNIMPLEMENTED") from None
        raise


def messages(what, stream):
    """Iterates a server stream; UNIMPLEMENTED (raised on the first read) becomes Pending."""
    try:
        yield from stream
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise Pending(f"{what} answers UNIMPLEMENTED") from None
        raise


# ------------------------------------------------------------------------------------------
# Stubs and addresses


def load_stubs(directory):
    sys.path.insert(0, directory)
    global common_pb2, inv_pb2, inv_grpc, tel_pb2, tel_grpc, net_pb2, net_grpc, health_pb2, health_grpc
    from coldchain.common.v1 import common_pb2
    from coldchain.inventory.v1 import inventory_pb2 as inv_pb2
    from coldchain.inventory.v1 import inventory_pb2_grpc as inv_grpc
    from coldchain.telemetry.v1 import telemetry_pb2 as tel_pb2
    from coldchain.telemetry.v1 import telemetry_pb2_grpc as tel_grpc
    from coldchain.network.v1 import network_pb2 as net_pb2
    from coldchain.network.v1 import network_pb2_grpc as net_grpc
    from grpc_health.v1 import health_pb2
    from grpc_health.v1 import health_pb2_grpc as health_grpc


PORTS = {}  # (site, kind) -> port, from the network file


def load_network(path):
    import tomllib

    with open(path, "rb") as f:
        network = tomllib.load(f)
    for site in network["site"]:
        for kind, port in site["ports"].items():
            PORTS[(site["id"], kind)] = port
    return network


class Deployment:
    """The containers of one compose project."""

    def __init__(self, project):
        self.project = project

    def container(self, service):
        out = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}",
             "--filter", f"label=com.docker.compose.service={service}"],
            check=True, capture_output=True, text=True).stdout.split()
        if len(out) != 1:
            raise Failed(f"expected one container of service {service}, found {len(out)}")
        return out[0]

    def address(self, site, kind):
        """host:port of a site service on its site network (changes when a container restarts)."""
        service = f"{kind}-{site}"
        fmt = "{{json .NetworkSettings.Networks}}"
        out = subprocess.run(["docker", "inspect", "-f", fmt, self.container(service)],
                             check=True, capture_output=True, text=True).stdout
        networks = json.loads(out) or {}
        for name, net in networks.items():
            if name.endswith(f"_site-{site}") and net.get("IPAddress"):
                return f"{net['IPAddress']}:{PORTS[(site, kind)]}"
        raise Failed(f"{service} has no address on its site network ({sorted(networks)})")

    def channel(self, site, kind, caller):
        """A TLS channel to a site service, its certificate checked against its container name."""
        return channel(self.address(site, kind), caller, host=f"{kind}-{site}")


SECRETS = None  # the deployment's secrets directory on this host (--secrets)


def key(caller):
    """The API key of the credential `caller` (e.g. operations, la-vientiane-warehouse)."""
    with open(os.path.join(SECRETS, "keyring", "keys", f"{caller}.key")) as f:
        return f.read().strip()


def ca():
    with open(os.path.join(SECRETS, "tls", "ca.pem"), "rb") as f:
        return f.read()


OPERATIONS = "operations"


def warehouse(site):
    return f"{site}-warehouse"


def sensors(site):
    return f"{site}-sensors"


def channel(address, caller, host=None, api_key=None):
    """A TLS channel trusting the deployment's CA, calling as `caller` (a credential id; None
    sends no key). `host` is the name the server's certificate must carry when `address` is an
    IP address (a container's name); `api_key` replaces the caller's key (to test refusals)."""
    credentials = grpc.ssl_channel_credentials(root_certificates=ca())
    if api_key is None and caller is not None:
        api_key = key(caller)
    if api_key is not None:
        # Sends `authorization: Bearer <key>` with every call on the channel.
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(api_key))
    options = [("grpc.enable_retries", 0)]
    if host is not None:
        options.append(("grpc.ssl_target_name_override", host))
    return grpc.secure_channel(address, credentials, options=options)


def today():
    return dt.date.today()


def date_msg(day):
    return common_pb2.Date(year=day.year, month=day.month, day=day.day)


def ts(when):
    from google.protobuf.timestamp_pb2 import Timestamp

    t = Timestamp()
    t.FromDatetime(when.astimezone(dt.timezone.utc).replace(tzinfo=None))
    return t


def receipt(sku, lot, qty, zone="chilled-a", booking_id=""):
    return inv_pb2.Movement(
        kind=inv_pb2.MOVEMENT_KIND_RECEIPT, sku=sku,
        lot=inv_pb2.LotInfo(lot_id=lot, expiry=common_pb2.Date(year=2099, month=12, day=31),
                            origin="compose e2e"),
        zone_id=zone, quantity=qty, unit="kg", booking_id=booking_id)


def stock_on_hand(stub, sku):
    try:
        response = call("InventoryService/GetStock", stub.GetStock,
                        inv_pb2.GetStockRequest(sku=sku), timeout=5)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.NOT_FOUND:
            return 0
        raise
    return response.totals.on_hand


def ledger(stub, head_timeout=10):
    """Every ledger entry from sequence 1 to the head, read with WatchLedger."""
    entries = []
    stream = call("InventoryService/WatchLedger", stub.WatchLedger,
                  inv_pb2.WatchLedgerRequest(from_sequence=1), timeout=head_timeout)
    try:
        for message in messages("InventoryService/WatchLedger", stream):
            entries.extend(message.entries)
            if entries and entries[-1].sequence >= message.head_sequence:
                break
            if not entries and message.head_sequence == 0:
                break
    finally:
        stream.cancel()
    return entries


# ------------------------------------------------------------------------------------------
# Commands


def cmd_flows(args, dep):
    """The demo's flows through the gateway, until `coldchain demo` exists (TODO in the script)."""
    run = args.run
    gateway = net_grpc.NetworkServiceStub(channel(args.gateway, OPERATIONS))
    # 1. Every site listed, every endpoint SERVING.
    deadline = time.time() + 60
    while True:
        sites = call("NetworkService/ListSites", gateway.ListSites, net_pb2.ListSitesRequest(), timeout=10).sites
        unhealthy = [(s.site_id, e.endpoint) for s in sites for e in s.endpoints
                     if e.health != net_pb2.ENDPOINT_HEALTH_SERVING]
        if len(sites) == len(args.sites) and not unhealthy:
            break
        if time.time() > deadline:
            raise Failed(f"ListSites: {len(sites)} sites, not serving: {unhealthy}")
        time.sleep(1)
    check(len(sites) == len(args.sites), f"gateway ListSites: {len(sites)} sites, every endpoint SERVING")
    endpoints = {e.endpoint for s in sites for e in s.endpoints}
    check(all("://" in e and "127.0.0.1" not in e for e in endpoints),
          "endpoints are container names, e.g. " + sorted(endpoints)[0])

    # 2. A receipt at a warehouse, found through the gateway.
    source, destination = args.source, args.destination
    sku, lot = f"BANANA-{run}", f"LOT-{run}"
    inv = inv_grpc.InventoryServiceStub(dep.channel(source, "inventory", warehouse(source)))
    call("InventoryService/RecordMovements", inv.RecordMovements,
         inv_pb2.RecordMovementsRequest(request_id=f"flows-{run}-receipt",
                                        movements=[receipt(sku, lot, 120, zone="cool-a")]), timeout=10)
    found = call("NetworkService/FindStock", gateway.FindStock, net_pb2.FindStockRequest(sku=sku), timeout=10)
    check(not found.failures, f"FindStock {sku}: no site failed ({list(found.failures)})")
    at = {s.site_id: sum(z.on_hand for z in s.zones) for s in found.sites}
    check(at.get(source) == 120, f"FindStock {sku}: 120 on hand at {source} (got {at})")

    # 3. Free space across the network.
    space = call("NetworkService/FindSpace", gateway.FindSpace, net_pb2.FindSpaceRequest(
        temperature_class=common_pb2.TEMPERATURE_CLASS_CHILLED, pallets=10,
        first_day=date_msg(today() + dt.timedelta(days=1)), last_day=date_msg(today() + dt.timedelta(days=3))),
        timeout=10)
    check(not space.failures and len({o.site_id for o in space.offers}) == len(args.sites),
          f"FindSpace CHILLED: offers from all {len(args.sites)} sites, no failure")
    check(space.offers[0].fits, f"FindSpace: best offer fits ({space.offers[0].site_id}/{space.offers[0].zone_id})")

    # 4. A corridor transfer on the China–Laos train: out of the source, into the destination.
    started = call("NetworkService/StartTransfer", gateway.StartTransfer, net_pb2.StartTransferRequest(
        request_id=f"flows-{run}-start", transfer_id=f"TR-{run}", source_site_id=source,
        destination_site_id=destination, train_or_route="China-Laos express X8011",
        lines=[net_pb2.TransferLine(sku=sku, lot_id=lot, source_zone_id="cool-a",
                                    destination_zone_id="cool-a", quantity=40, unit="kg")]), timeout=15)
    check(started.state == net_pb2.TRANSFER_STATE_IN_TRANSIT, f"StartTransfer TR-{run}: IN_TRANSIT")
    check(stock_on_hand(inv, sku) == 80, f"{source}: 80 on hand after the transfer left")
    received = call("NetworkService/ReceiveTransfer", gateway.ReceiveTransfer, net_pb2.ReceiveTransferRequest(
        request_id=f"flows-{run}-receive", transfer_id=f"TR-{run}"), timeout=15)
    check(received.state == net_pb2.TRANSFER_STATE_COMPLETED, f"ReceiveTransfer TR-{run}: COMPLETED")
    dest = inv_grpc.InventoryServiceStub(dep.channel(destination, "inventory", warehouse(destination)))
    check(stock_on_hand(dest, sku) == 40, f"{destination}: 40 on hand after the transfer arrived")


def cmd_load(args, dep):
    """RecordMovements in a loop until the stop file appears; logs every outcome (JSON lines)."""
    stop = args.stop
    log = open(args.log, "a", buffering=1)
    lock = threading.Lock()
    counter = iter(range(10**9))

    def request(n):
        qty = n % 7 + 1
        return inv_pb2.RecordMovementsRequest(
            request_id=f"load-{args.run}-{n}",
            movements=[receipt(args.sku, f"LOT-{n % 3}", qty), receipt(args.sku, f"LOT-{n % 3}", qty)]), 2 * qty

    def worker():
        stub = None
        while not os.path.exists(stop):
            with lock:
                n = next(counter)
            req, qty = request(n)
            if stub is None:
                try:
                    stub = inv_grpc.InventoryServiceStub(
                        dep.channel(args.site, "inventory", warehouse(args.site)))
                except (Failed, subprocess.CalledProcessError):
                    log.write(json.dumps({"id": req.request_id, "n": n, "qty": qty, "ok": False,
                                          "code": "NO_ADDRESS"}) + "\n")
                    time.sleep(0.2)
                    continue
            try:
                response = stub.RecordMovements(req, timeout=3)
                log.write(json.dumps({"id": req.request_id, "n": n, "qty": qty, "ok": True,
                                      "seqs": [e.sequence for e in response.entries]}) + "\n")
            except grpc.RpcError as err:
                log.write(json.dumps({"id": req.request_id, "n": n, "qty": qty, "ok": False,
                                      "code": err.code().name}) + "\n")
                if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                    return
                stub = None  # re-resolve: the container may come back with another address
                time.sleep(0.1)

    threads = [threading.Thread(target=worker) for _ in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def cmd_load_progress(args, dep):
    """Prints the acknowledged count of a load log; exits 1 if below --at-least."""
    records = read_log(args.log)
    acked = sum(1 for r in records if r["ok"])
    codes = sorted({r.get("code") for r in records if not r["ok"]} - {None})
    print(acked)
    if any(r.get("code") == "UNIMPLEMENTED" for r in records):
        raise Pending("InventoryService/RecordMovements answers UNIMPLEMENTED")
    if acked < args.at_least:
        raise Failed(f"only {acked} requests acknowledged (errors: {codes})")


def cmd_verify_load(args, dep):
    """Every acknowledged movement is in the ledger; retrying the others applies each once."""
    records = read_log(args.log)
    acked = {r["id"]: r for r in records if r["ok"]}
    failed = {r["id"]: r for r in records if not r["ok"] and r["id"] not in acked}
    check(acked, f"{len(acked)} RecordMovements acknowledged, {len(failed)} failed while the container was down")
    stub = inv_grpc.InventoryServiceStub(dep.channel(args.site, "inventory", warehouse(args.site)))
    entries = ledger(stub)
    by_request = {}
    for e in entries:
        by_request.setdefault(e.request_id, []).append(e)
    missing = [i for i, r in acked.items()
               if sorted(e.sequence for e in by_request.get(i, [])) != sorted(r["seqs"])]
    check(not missing, f"every acknowledged request is in the ledger with its sequences "
                       f"({len(acked)} requests; missing or different: {missing[:5]})")
    seqs = [e.sequence for e in entries]
    check(seqs == list(range(1, len(seqs) + 1)), f"the ledger is gapless: sequences 1..{len(seqs)}")
    # Retry every request that failed: idempotency makes each apply exactly once.
    for request_id, record in failed.items():
        n = record["n"]
        qty = n % 7 + 1
        req = inv_pb2.RecordMovementsRequest(
            request_id=request_id,
            movements=[receipt(args.sku, f"LOT-{n % 3}", qty), receipt(args.sku, f"LOT-{n % 3}", qty)])
        stub.RecordMovements(req, timeout=10)
        stub.RecordMovements(req, timeout=10)  # and once more: a replay changes nothing
    distinct = {r["id"]: r["qty"] for r in records}
    expected = sum(distinct.values())
    on_hand = stock_on_hand(stub, args.sku)
    check(on_hand == expected, f"GetStock {args.sku}: on hand {on_hand} == every request applied once ({expected})")
    print(json.dumps({"on_hand": on_hand, "head": len(ledger(stub))}), file=open(args.snapshot, "w"))


def cmd_sites_answer(args, dep):
    """Every site but --except answers (health SERVING and a GetStock) within 3 s."""
    for site in args.sites:
        if site in args.skip:
            continue
        started = time.time()
        for kind in ("inventory", "telemetry", "booking"):
            health = health_grpc.HealthStub(dep.channel(site, kind, None))  # open: no key
            status = health.Check(health_pb2.HealthCheckRequest(), timeout=3).status
            if status != health_pb2.HealthCheckResponse.SERVING:
                raise Failed(f"{kind}-{site}: health {status}")
        inv = inv_grpc.InventoryServiceStub(dep.channel(site, "inventory", OPERATIONS))
        stock_on_hand(inv, f"NOTHING-{args.run}")
        say(f"ok: {site} answers (3 services SERVING, GetStock) in {time.time() - started:.2f} s")


def cmd_snapshot(args, dep):
    """Prints on hand of a sku and the ledger head at a site, as JSON."""
    stub = inv_grpc.InventoryServiceStub(dep.channel(args.site, "inventory", OPERATIONS))
    print(json.dumps({"on_hand": stock_on_hand(stub, args.sku), "head": len(ledger(stub))}))


def excursion(dep, site, sensor, run):
    """Registers a sensor in chilled-a and pushes readings above its limit: an excursion alarm."""
    tel = tel_grpc.TelemetryServiceStub(dep.channel(site, "telemetry", OPERATIONS))
    sensor_gateway = tel_grpc.TelemetryServiceStub(dep.channel(site, "telemetry", sensors(site)))
    from google.protobuf.duration_pb2 import Duration

    call("TelemetryService/RegisterSensor", tel.RegisterSensor, tel_pb2.RegisterSensorRequest(
        request_id=f"reg-{run}-{sensor}", sensor_id=sensor, zone_id="chilled-a",
        profile=tel_pb2.SensorProfile(min_excursion_duration=Duration(seconds=0))), timeout=5)
    now = dt.datetime.now(dt.timezone.utc)
    readings = [tel_pb2.Reading(sensor_id=sensor, time=ts(now - dt.timedelta(seconds=s)), celsius=9.5)
                for s in (30, 20, 10, 0)]
    summary = call("TelemetryService/PushReadings", sensor_gateway.PushReadings, tel_pb2.PushReadingsRequest(
        request_id=f"push-{run}-{sensor}", readings=readings), timeout=5)
    if summary.accepted != len(readings):
        raise Failed(f"{site} PushReadings: {summary}")
    deadline = time.time() + 10
    while time.time() < deadline:
        alarms = call("TelemetryService/ListAlarms", tel.ListAlarms,
                      tel_pb2.ListAlarmsRequest(sensor_id=sensor), timeout=5).alarms
        if alarms:
            return alarms[0].alarm_id
        time.sleep(0.5)
    raise Failed(f"{site}: no alarm for sensor {sensor} after 10 s of readings at 9.5 °C in chilled-a")


def site_feed(dep, site):
    """The site's own alarm feed, sequence 1 to head: the ground truth for the gateway's."""
    tel = tel_grpc.TelemetryServiceStub(dep.channel(site, "telemetry", OPERATIONS))
    events = []
    stream = call("TelemetryService/WatchAlarms", tel.WatchAlarms,
                  tel_pb2.WatchAlarmsRequest(from_sequence=1), timeout=10)
    try:
        for message in messages("TelemetryService/WatchAlarms", stream):
            events.extend(message.events)
            if (events and events[-1].sequence >= message.head_sequence) or message.head_sequence == 0:
                break
    finally:
        stream.cancel()
    return [(e.sequence, e.alarm.alarm_id, e.kind) for e in events]


class AlarmWatcher(threading.Thread):
    """The gateway's merged WatchAlarms, recorded."""

    def __init__(self, gateway_address):
        super().__init__(daemon=True)
        self.stub = net_grpc.NetworkServiceStub(channel(gateway_address, OPERATIONS))
        self.events = []  # (site, sequence, alarm_id, kind)
        self.status = []  # (time, site, connected)
        self.error = None
        self.stream = None
        self.opened = threading.Event()

    def run(self):
        try:
            self.stream = self.stub.WatchAlarms(net_pb2.WatchAlarmsRequest(), timeout=600)
            # Headers, or the end of a call refused at once (UNIMPLEMENTED, ...): then reading
            # raises its status, recorded below before `opened` is set.
            self.stream.initial_metadata()
            if self.stream.done():
                for _ in self.stream:
                    pass
            self.opened.set()
            for message in self.stream:
                for e in message.events:
                    self.events.append((e.site_id, e.event.sequence, e.event.alarm.alarm_id, e.event.kind))
                for s in message.feed_status:
                    self.status.append((time.time(), s.site_id, s.connected))
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                self.error = err
        finally:
            self.opened.set()

    def stop(self):
        if self.stream is not None:
            self.stream.cancel()


def gateway_view(gateway, site, down, deadline):
    """ListSites and FindStock: `site` UNREACHABLE/failed iff `down`, the others fine, in time."""
    started = time.time()
    sites = call("NetworkService/ListSites", gateway.ListSites, net_pb2.ListSitesRequest(),
                 timeout=deadline).sites
    list_time = time.time() - started
    unhealthy = [(s.site_id, e) for s in sites for e in s.endpoints
                 if e.health != net_pb2.ENDPOINT_HEALTH_SERVING]
    bad = {site_id for site_id, _ in unhealthy}
    why = "; ".join(f"{site_id} {net_pb2.EndpointHealth.Name(e.health)} {e.endpoint}: {e.error}"
                    for site_id, e in unhealthy)
    started = time.time()
    found = call("NetworkService/FindStock", gateway.FindStock, net_pb2.FindStockRequest(sku="ANY"),
                 timeout=deadline)
    find_time = time.time() - started
    failed = {f.site_id for f in found.failures}
    want = {site} if down else set()
    return bad == want and failed == want, (
        f"ListSites not serving {sorted(bad)} in {list_time:.2f} s, "
        f"FindStock failures {sorted(failed)} in {find_time:.2f} s (want {sorted(want)})"
        + (f" [{why}]" if why else ""))


def cmd_gateway_sees(args, dep):
    """After a site service restarted: the gateway's ListSites and FindStock see every site
    serving again within --hold seconds (a stale connection to the dead process must not
    leave the site reported down)."""
    gateway = net_grpc.NetworkServiceStub(channel(args.gateway, OPERATIONS))
    started = time.time()
    while True:
        ok, text = gateway_view(gateway, args.site, False, args.deadline)
        if ok:
            say(f"ok: the gateway sees {args.site} serving {time.time() - started:.1f} s after its restart")
            return
        if time.time() - started > args.hold:
            raise Failed(f"the gateway does not see {args.site} serving within {args.hold:.0f} s: {text}")
        time.sleep(0.5)


def reach(dep, from_service, site, kind, timeout_ms=2000):
    """Whether `from_service`'s container reaches a site service by its name (coldchain healthcheck)."""
    url = f"http://{kind}-{site}:{PORTS[(site, kind)]}"
    result = subprocess.run(
        ["docker", "exec", dep.container(from_service), "coldchain", "healthcheck", url,
         "--timeout-ms", str(timeout_ms)], capture_output=True, text=True, timeout=30)
    return result.returncode == 0


def cmd_partition(args, dep):
    """A site cut off the backbone for --hold seconds (the script's --disconnect/--reconnect
    commands): the gateway reports it unavailable in time and answers for the others, the site
    keeps serving its local clients, and after reconnection the gateway's views and its merged
    alarm stream recover with no alarm event lost or repeated. Checks that need a service still
    answering UNIMPLEMENTED are reported PENDING at the end; every other check still runs."""
    gateway = net_grpc.NetworkServiceStub(channel(args.gateway, OPERATIONS))
    site, other = args.site, args.other
    pending = []

    def optional(fn, *a):
        try:
            return fn(*a)
        except Pending as p:
            if str(p) not in pending:
                pending.append(str(p))
                say(f"PENDING: {p}")
            return None

    watcher = AlarmWatcher(args.gateway)
    watcher.start()
    watcher.opened.wait(10)
    if watcher.error is not None:
        if watcher.error.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise Failed(f"gateway WatchAlarms: {watcher.error}")
        pending.append("NetworkService/WatchAlarms answers UNIMPLEMENTED")
        say(f"PENDING: {pending[-1]}")
        watcher = None

    def view(down):
        ok, text = gateway_view(gateway, site, down, args.deadline)
        return ok, text

    result = optional(view, False)
    if result:
        check(result[0], "before: " + result[1])
    for kind in ("inventory", "telemetry", "booking"):
        check(reach(dep, "gateway", site, kind), f"before: the gateway container reaches {kind}-{site}")
    before = optional(excursion, dep, site, f"E2E-{args.run}-BEFORE", args.run)
    if before:
        say(f"ok: alarm {before} raised at {site} before the partition")

    subprocess.run(args.disconnect, shell=True, check=True, timeout=60)
    cut = time.time()
    say(f"{site} disconnected from the backbone")
    for kind in ("inventory", "telemetry", "booking"):
        check(not reach(dep, "gateway", site, kind), f"during: the gateway container cannot reach {kind}-{site}")
    check(reach(dep, f"telemetry-{site}", site, "inventory"), f"during: telemetry-{site} still reaches inventory-{site} on the site LAN")
    check(reach(dep, f"inventory-{site}", site, "booking"), f"during: inventory-{site} still reaches booking-{site} on the site LAN")
    # The gateway reports the site unavailable within its deadline, and answers for the others.
    deadline = cut + args.deadline + 10
    result = None
    while True:
        result = optional(view, True)
        if result is None or result[0] or time.time() > deadline:
            break
        time.sleep(1)
    if result:
        check(result[0], f"during ({time.time() - cut:.1f} s after the cut): " + result[1])
    # The site keeps serving its local clients over its own LAN.
    inv = inv_grpc.InventoryServiceStub(dep.channel(site, "inventory", warehouse(site)))
    call("InventoryService/RecordMovements", inv.RecordMovements, inv_pb2.RecordMovementsRequest(
        request_id=f"part-{args.run}", movements=[receipt(f"LOCAL-{args.run}", "L1", 5)]), timeout=5)
    check(stock_on_hand(inv, f"LOCAL-{args.run}") == 5, f"during: {site} records a receipt from a local client")
    for s in args.sites:
        if s != site:
            health = health_grpc.HealthStub(dep.channel(s, "inventory", None))
            status = health.Check(health_pb2.HealthCheckRequest(), timeout=3).status
            check(status == health_pb2.HealthCheckResponse.SERVING, f"during: inventory-{s} answers SERVING")
    during = optional(excursion, dep, site, f"E2E-{args.run}-DURING", args.run)
    if during:
        say(f"ok: alarm {during} raised at {site} while cut off")
    elsewhere = optional(excursion, dep, other, f"E2E-{args.run}-OTHER", args.run)
    if watcher and elsewhere:
        time.sleep(3)
        check(any(a == elsewhere for _, _, a, _ in watcher.events),
              f"during: the gateway's stream delivers {other}'s alarm {elsewhere}")
    if watcher and during:
        check(not any(a == during for _, _, a, _ in watcher.events),
              f"during: {site}'s alarm {during} is not in the stream yet (the site is unreachable)")
    remaining = args.hold - (time.time() - cut)
    if remaining > 0:
        time.sleep(remaining)

    subprocess.run(args.reconnect, shell=True, check=True, timeout=60)
    joined = time.time()
    say(f"{site} reconnected after {joined - cut:.1f} s cut off")
    for kind in ("inventory", "telemetry", "booking"):
        deadline = joined + 30
        while not reach(dep, "gateway", site, kind) and time.time() < deadline:
            time.sleep(1)
        check(reach(dep, "gateway", site, kind), f"after: the gateway container reaches {kind}-{site} again")
    deadline = joined + 60
    result = None
    while True:
        result = optional(view, False)
        arrived = watcher is None or during is None or any(a == during for _, _, a, _ in watcher.events)
        if result is None or (result[0] and arrived) or time.time() > deadline:
            break
        time.sleep(1)
    if result:
        check(result[0], f"after ({time.time() - joined:.1f} s): " + result[1])
    if watcher and during:
        check(arrived, f"after: {site}'s alarm {during}, raised while cut off, reaches the stream")
    if watcher:
        # No alarm event lost or repeated: per site, the stream equals the site's own feed.
        # The feeds are read first and the stream is given time to catch up with them:
        # events a site adds later (escalations, holds) may reach the stream or not, but
        # those that do must continue the feed with no gap and no repeat.
        truths = {s: optional(site_feed, dep, s) for s in (site, other)}
        deadline = time.time() + 15

        def seen_of(s):
            return [(seq, alarm, kind) for (st, seq, alarm, kind) in list(watcher.events) if st == s]

        def caught_up():
            return all(not t or any(e[0] >= t[-1][0] for e in seen_of(s)) for s, t in truths.items())

        while not caught_up() and time.time() < deadline:
            time.sleep(0.5)
        watcher.stop()
        for s, truth in truths.items():
            if truth is None:
                continue
            seen = seen_of(s)
            head = truth[-1][0] if truth else 0
            later = [e[0] for e in seen if e[0] > head]
            ok = ([e for e in seen if e[0] <= head] == truth
                  and later == list(range(head + 1, head + 1 + len(later))))
            detail = "" if ok else f": the stream had {seen}, the site's feed {truth}"
            check(ok, f"after: the gateway delivered {s}'s {len(truth)} alarm events once each, in order{detail}")
        flaps = [(s, c) for _, s, c in watcher.status if s == site]
        say(f"feed status of {site} seen in the stream: {flaps}")
    if pending:
        raise Pending("; ".join(pending))


def refused(what, fn, request, expect):
    """Calls `fn`; the call must fail with one of the status codes `expect`."""
    try:
        fn(request, timeout=10)
    except grpc.RpcError as err:
        check(err.code() in expect, f"{what}: {err.code().name} ({err.details()})")
        return
    raise Failed(f"{what}: the call succeeded")


def cmd_security(args, dep):
    """TLS and authentication as a client outside the deployment sees them: the gateway's
    published port refuses plaintext, a call without a key or with a forged one is
    UNAUTHENTICATED, a key of the wrong role is PERMISSION_DENIED, the right key is served;
    likewise at a site service, where the warehouse of another site is refused."""
    site, other = args.site, args.other
    sites = net_pb2.ListSitesRequest()
    plaintext = net_grpc.NetworkServiceStub(
        grpc.insecure_channel(args.gateway, options=[("grpc.enable_retries", 0)]))
    # A TLS server answers a plaintext HTTP/2 preface by closing the connection.
    refused("gateway, plaintext (no TLS)", plaintext.ListSites, sites, {grpc.StatusCode.UNAVAILABLE})
    anonymous = net_grpc.NetworkServiceStub(channel(args.gateway, None))
    refused("gateway over TLS without a key: ListSites", anonymous.ListSites, sites,
            {grpc.StatusCode.UNAUTHENTICATED})
    real = key(OPERATIONS)
    forged = real[:-1] + ("A" if real[-1] != "A" else "B")
    impostor = net_grpc.NetworkServiceStub(channel(args.gateway, None, api_key=forged))
    refused("gateway over TLS with a forged operations key: ListSites", impostor.ListSites, sites,
            {grpc.StatusCode.UNAUTHENTICATED})
    wms = net_grpc.NetworkServiceStub(channel(args.gateway, warehouse(site)))
    refused(f"gateway as {warehouse(site)}: FindStock (operations only)", wms.FindStock,
            net_pb2.FindStockRequest(sku="ANY"), {grpc.StatusCode.PERMISSION_DENIED})
    gateway = net_grpc.NetworkServiceStub(channel(args.gateway, OPERATIONS))
    listed = gateway.ListSites(sites, timeout=10).sites
    check(len(listed) == len(args.sites), f"gateway over TLS as operations: ListSites lists {len(listed)} sites")
    listed = wms.ListSites(sites, timeout=10).sites
    check(len(listed) == len(args.sites), f"gateway over TLS as {warehouse(site)}: ListSites allowed")

    movement = inv_pb2.RecordMovementsRequest(
        request_id=f"security-{args.run}", movements=[receipt(f"SEC-{args.run}", "L1", 1)])
    anonymous = inv_grpc.InventoryServiceStub(dep.channel(site, "inventory", None))
    refused(f"inventory-{site} without a key: RecordMovements", anonymous.RecordMovements, movement,
            {grpc.StatusCode.UNAUTHENTICATED})
    foreign = inv_grpc.InventoryServiceStub(dep.channel(site, "inventory", warehouse(other)))
    refused(f"inventory-{site} as {warehouse(other)}: RecordMovements", foreign.RecordMovements, movement,
            {grpc.StatusCode.PERMISSION_DENIED})
    own = inv_grpc.InventoryServiceStub(dep.channel(site, "inventory", warehouse(site)))
    own.RecordMovements(movement, timeout=10)
    check(stock_on_hand(own, f"SEC-{args.run}") == 1,
          f"inventory-{site} as {warehouse(site)}: RecordMovements applied")
    health = health_grpc.HealthStub(dep.channel(site, "inventory", None))
    status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
    check(status == health_pb2.HealthCheckResponse.SERVING, f"inventory-{site}: health is open (no key)")


# ------------------------------------------------------------------------------------------
# Backup, wipe, restore (step 7 of the script)


def backup_request(args, tag, i):
    """Receipt i of a batch `tag` (before, after, new): a distinct request_id, i + 1 kg."""
    return inv_pb2.RecordMovementsRequest(
        request_id=f"backup-{args.run}-{tag}-{i}",
        movements=[receipt(args.sku, f"LOT-{tag}", i + 1)]), i + 1


def ledger_state(stub, sku, run):
    """On hand of `sku`, the ledger head, a digest of every entry, and this run's backup requests."""
    import hashlib

    entries = ledger(stub)
    digest = hashlib.sha256()
    for e in entries:
        digest.update(e.SerializeToString(deterministic=True))
    ids = sorted({e.request_id for e in entries if e.request_id.startswith(f"backup-{run}-")})
    return {"on_hand": stock_on_hand(stub, sku), "head": entries[-1].sequence if entries else 0,
            "entries": len(entries), "digest": digest.hexdigest(), "requests": ids}


def cmd_receipts(args, dep):
    """--count receipts of --sku at --site (batch --tag), each acknowledged; then prints the
    site's ledger state (on hand, head, digest, this run's backup requests) as JSON."""
    stub = inv_grpc.InventoryServiceStub(dep.channel(args.site, "inventory", warehouse(args.site)))
    sequences = []
    for i in range(args.count):
        req, _ = backup_request(args, args.tag, i)
        response = call("InventoryService/RecordMovements", stub.RecordMovements, req, timeout=10)
        sequences.extend(e.sequence for e in response.entries)
    check(len(sequences) == args.count,
          f"{args.site}: {args.count} receipts of {args.sku} ({args.tag}) acknowledged, sequences {sequences}")
    print(json.dumps(ledger_state(stub, args.sku, args.run)))


def cmd_after_restore(args, dep):
    """The restored inventory equals the state at the backup (--snapshot: the JSON of
    `receipts` before it); the receipts written after the backup are not there; a new write
    continues the ledger after the backup's sequence; the gateway sees the site again."""
    with open(args.snapshot) as f:
        expected = json.load(f)
    stub = inv_grpc.InventoryServiceStub(dep.channel(args.site, "inventory", warehouse(args.site)))
    state = ledger_state(stub, args.sku, args.run)
    check(state["requests"] == expected["requests"],
          f"{args.site}: the ledger holds exactly the {len(expected['requests'])} backup requests "
          f"written before the backup, none of those after it")
    check(state == expected,
          f"{args.site}: on hand {state['on_hand']}, ledger head {state['head']}, "
          f"{state['entries']} entries with digest {state['digest'][:12]}… equal the state at the backup")
    req, qty = backup_request(args, "new", 0)
    response = call("InventoryService/RecordMovements", stub.RecordMovements, req, timeout=10)
    sequences = [e.sequence for e in response.entries]
    check(sequences == [expected["head"] + 1],
          f"{args.site}: a new receipt is recorded at sequence {sequences}, right after the backup's "
          f"{expected['head']}")
    check(stock_on_hand(stub, args.sku) == expected["on_hand"] + qty,
          f"{args.site}: GetStock {args.sku} {expected['on_hand'] + qty} after it")
    gateway = net_grpc.NetworkServiceStub(channel(args.gateway, OPERATIONS))
    deadline = time.time() + args.deadline
    while True:
        sites = call("NetworkService/ListSites", gateway.ListSites, net_pb2.ListSitesRequest(), timeout=10).sites
        serving = all(e.health == net_pb2.ENDPOINT_HEALTH_SERVING
                      for s in sites if s.site_id == args.site for e in s.endpoints)
        found = call("NetworkService/FindStock", gateway.FindStock, net_pb2.FindStockRequest(sku=args.sku),
                     timeout=10)
        at = {s.site_id: sum(z.on_hand for z in s.zones) for s in found.sites}
        if serving and not found.failures and at.get(args.site) == expected["on_hand"] + qty:
            break
        if time.time() > deadline:
            raise Failed(f"the gateway after the restore: {args.site} serving {serving}, FindStock "
                         f"{args.sku} {at.get(args.site)} (want {expected['on_hand'] + qty}), "
                         f"failures {[f.site_id for f in found.failures]}")
        time.sleep(1)
    check(True, f"the gateway: {args.site} SERVING, FindStock {args.sku} {at[args.site]} there, no site failed")


COMMANDS = {
    "security": cmd_security,
    "flows": cmd_flows,
    "load": cmd_load,
    "load-progress": cmd_load_progress,
    "verify-load": cmd_verify_load,
    "sites-answer": cmd_sites_answer,
    "snapshot": cmd_snapshot,
    "partition": cmd_partition,
    "gateway-sees": cmd_gateway_sees,
    "receipts": cmd_receipts,
    "after-restore": cmd_after_restore,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stubs", required=True)
    parser.add_argument("--secrets", required=True, help="tls/ca.pem and keyring/keys/<id>.key")
    parser.add_argument("--project", required=True)
    parser.add_argument("--network", required=True, help="deploy/network.toml")
    parser.add_argument("--run", default=str(int(time.time())))
    parser.add_argument("--gateway", default="127.0.0.1:50051")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--site")
    parser.add_argument("--other")
    parser.add_argument("--source")
    parser.add_argument("--destination")
    parser.add_argument("--sku")
    parser.add_argument("--log")
    parser.add_argument("--stop")
    parser.add_argument("--snapshot")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--at-least", type=int, default=1)
    parser.add_argument("--skip", action="append", default=[])
    parser.add_argument("--deadline", type=float, default=5.0)
    parser.add_argument("--hold", type=float, default=30.0)
    parser.add_argument("--disconnect")
    parser.add_argument("--reconnect")
    parser.add_argument("--tag")
    parser.add_argument("--count", type=int, default=3)
    args = parser.parse_args()
    load_stubs(args.stubs)
    global SECRETS
    SECRETS = args.secrets
    network = load_network(args.network)
    args.sites = [s["id"] for s in network["site"]]
    dep = Deployment(args.project)
    try:
        COMMANDS[args.command](args, dep)
    except Pending as pending:
        print(f"PENDING: {pending}", flush=True)
        sys.exit(PENDING)
    except Failed as failed:
        print(f"FAILED: {failed}", flush=True)
        sys.exit(1)
    except grpc.RpcError as err:
        import traceback

        traceback.print_exc()
        print(f"FAILED: {err.code().name}: {err.details()}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
