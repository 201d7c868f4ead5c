"""OpenFlow 1.3 switch driver (Open vSwitch and other OF 1.3 switches), via os-ken.

Same SwitchDriver as the P4Runtime driver and the same counting semantics as
p4src/v1model/scitags.p4; the table layout is in openflow_pipeline.py. os-ken runs in a
child process (openflow_agent.py: its working hub is eventlet's, whose monkey-patching would
break grpc and the controller's threads); openflow_link.py makes its calls synchronous.

Counters live in flow entries, so two things the P4 counter arrays do for free are kept here:
counts of tag entries deleted by sync_tags (flow-removed, reason DELETE) stay with their tag
id (for the life of this driver instance), and final counts of flows that idled out are kept
for remove_flow.

Where OVS cannot match the P4 program exactly:
  * parser_error is always 0: OVS parses what it can and drops nothing as malformed.
  * OVS skips IPv6 extension headers of any length (and reads ports of IPv4 packets with
    options) before matching a firefly 5-tuple; the P4 parser walks 8-byte Hop-by-Hop /
    Destination Options headers only and reads no ports behind IPv4 options, so such packets
    count as firefly traffic here and not there.
  * OVS moves datapath counts into flow entries at each revalidation (every <= 500 ms), so a
    read, and the final counts of remove_flow, can trail the wire by that much.
  * OVS updates its tables before the barrier reply but its datapath flow cache
    asynchronously: packets of an existing megaflow in the first moments after a change
    (a new firefly flow, a tag) may still be counted as before it.
  * idle timeouts are whole seconds (OpenFlow), rounded, at least 1.
  * the scitags IPv6 option (flowd-go's extension headers) is not matched: OpenFlow has no
    match on option data, so such packets count by their flow label; exthdr cells stay 0.
  * no flow-label trust scope (enforces_label_trust False): labels count from every source,
    and the controller reports this switch's label counts as unverified.
"""
from __future__ import annotations

import base64
import logging
import queue
import threading
import time
from collections import defaultdict
from typing import Any

from os_ken.lib.packet import ipv4, ipv6, packet, udp
from os_ken.ofproto import ofproto_v1_3 as OFP

from controller.drivers import openflow_pipeline as pl
from controller.drivers import openflow_wire as wire
from controller.drivers.base import (BUCKETS, ConnectionLost, CounterSnapshot, Counts, DriverError,
                                     EventHandler, FireflyPacket, FlowIdle, FlowKey, FlowRule,
                                     SwitchDriver, SwitchUnreachable, TagRule)
from controller.drivers.openflow_link import AgentError, AgentLink

LOG = logging.getLogger(__name__)
IDLE_FINAL_KEPT = 65536  # final counts of idled flows not yet collected by remove_flow


def _counts(stat: dict[str, Any]) -> Counts:
    return Counts(int(stat["packet_count"]), int(stat["byte_count"]))


class OpenFlowDriver(SwitchDriver):
    """One OpenFlow 1.3 switch.

    target: 'tcp:HOST:PORT' when the switch listens (OVS: set-controller BR ptcp:PORT:HOST),
    'ptcp:PORT[:HOST]' when the switch connects to us (set-controller BR tcp:HOST:PORT).
    """

    def __init__(self, name: str, target: str, connect_timeout_s: float = 10.0,
                 request_timeout_s: float = 30.0) -> None:
        self.name = name
        try:
            wire.parse_target(target)
        except ValueError as exc:
            raise ValueError(f"switch {name}: {exc}") from None
        self.target = target
        self.connect_timeout_s = connect_timeout_s
        self.request_timeout_s = request_timeout_s
        self._link: AgentLink | None = None
        self._handler: EventHandler | None = None
        # Two locks: _lock serialises operations and is held across switch round trips;
        # _state guards the maps below for moments only. The link's reader thread takes
        # _state alone, else an event arriving during an operation would block its reply.
        self._lock = threading.RLock()
        self._state = threading.Lock()
        self._events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._dispatcher: threading.Thread | None = None
        self._flows: dict[FlowKey, tuple[int, FlowRule]] = {}  # key -> (cookie id, rule)
        self._next_flow_id = 1
        self._idle_final: dict[FlowKey, Counts] = {}
        self._removals: dict[int, tuple[threading.Event, list[Counts]]] = {}
        self._retired_tags: dict[int, Counts] = defaultdict(Counts)
        self._consistent: set[tuple[int, int]] = set()
        self._datapath_up = False  # the switch's OpenFlow session, as the agent reports it
        self.malformed_packet_ins = 0  # punted frames that were not UDP fireflies

    # ---- connection ----
    def connect(self) -> None:
        with self._lock:
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(target=self._dispatch, daemon=True,
                                                    name=f"openflow-events {self.name}")
                self._dispatcher.start()
            if self._link is not None and not self._link.alive:
                self._link.close()  # the agent died: start a new one
                self._link = None
            if self._link is None:
                try:
                    self._link = AgentLink(self.target, self._on_agent_event)
                except (OSError, ValueError) as exc:
                    raise SwitchUnreachable(self.name, f"cannot start the os-ken agent: {exc}") from exc
            try:
                self._call("wait_connected", timeout=self.connect_timeout_s)
            except SwitchUnreachable as exc:
                self.close()
                if self.target in str(exc.cause):
                    raise
                # name the address: the operator's first question
                raise SwitchUnreachable(self.name, f"OpenFlow {self.target}: {exc.cause}") from exc
            self._datapath_up = True
            self._reload_flows()

    @property
    def connected(self) -> bool:
        """False once the OpenFlow session or the agent is lost (the controller reconnects)."""
        return self._link is not None and self._link.alive and self._datapath_up

    def close(self) -> None:
        with self._lock:
            if self._link is not None:
                self._link.close()
                self._link = None
            if self._dispatcher is not None:
                self._events.put(None)  # after the link: no more events can arrive
                if self._dispatcher is not threading.current_thread():
                    self._dispatcher.join(timeout=5)
                self._dispatcher = None

    def set_event_handler(self, handler: EventHandler) -> None:
        self._handler = handler

    def _call(self, op: str, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        if self._link is None:
            raise SwitchUnreachable(self.name, "not connected (call connect() first)")
        try:
            return self._link.request(op, timeout=timeout or self.request_timeout_s, **args)
        except AgentError as exc:
            raise SwitchUnreachable(self.name, exc) from exc

    def _send(self, msgs: list[dict[str, Any]], what: str) -> None:
        """Send flow-mods and wait for the barrier; any OpenFlow error becomes DriverError."""
        if not msgs:
            return
        errors = self._call("send", msgs=msgs)["errors"]
        if errors:
            first = errors[0]
            raise DriverError(f"switch {self.name}: {what}: the switch refused "
                              f"{len(errors)} of {len(msgs)} flow-mods (first: message "
                              f"{first['index']}, {first['text']})")

    def _stats(self, kind: int | None = None, table: int = OFP.OFPTT_ALL) -> list[dict[str, Any]]:
        ck, mask = pl.kind_filter(kind) if kind is not None else (pl.cookie(0, 0), pl.MAGIC_MASK)
        return self._call("flow_stats", table_id=table, cookie=ck, cookie_mask=mask)["flows"]

    # ---- pipeline and forwarding ----
    def pipeline_cookie(self) -> int | None:
        """Our layout's version while all its fixed entries are in place; None once someone
        flushed them (the controller polls this to notice and re-sync)."""
        base = [s for s in self._stats(pl.KIND_BASE)
                if pl.cookie_id(s["cookie"]) == pl.PIPELINE_VERSION]
        return pl.PIPELINE_VERSION if len(base) == pl.BASE_ENTRY_COUNT else None

    def ensure_pipeline(self) -> bool:
        with self._lock:
            if self.pipeline_cookie() == pl.PIPELINE_VERSION:
                return False
            # Missing or another version: start clean, as pushing a P4 pipeline does.
            self._send([pl.delete_everything()] + pl.base_entries(), "install the pipeline")
            with self._state:
                self._flows.clear()
                self._idle_final.clear()
                self._retired_tags.clear()
            self._consistent.clear()
            return True

    def set_forwarding(self, mac_ports: dict[str, int], flood_ports: list[int],
                       cpu_port: int | None, monitor_port: int | None) -> None:
        # cpu_port is a P4 notion; OpenFlow reaches the controller through OFPP_CONTROLLER.
        desired = {mac.lower(): int(port) for mac, port in mac_ports.items()}
        with self._lock:
            current: dict[str, list[int]] = {}
            for stat in self._stats(pl.KIND_L2, pl.T_L2):
                if "eth_dst" in stat["match"]:
                    current[str(stat["match"]["eth_dst"]).lower()] = stat["outputs"]
            msgs = [pl.mac_delete(mac) for mac in current if mac not in desired]
            msgs += [pl.mac_add(mac, port) for mac, port in desired.items()
                     if current.get(mac) != [port]]
            msgs.append(pl.flood_add(sorted(set(flood_ports))))
            msgs.append(pl.mirror_add(monitor_port))
            self._send(msgs, "set L2 forwarding")

    def set_port_modes(self, entries) -> None:
        """Placement entries (drivers/base.PortEntry): rewritten as a whole (OpenFlow
        switches are reconciled on connect only)."""
        msgs = [pl.delete_kind(pl.KIND_PORT_MODE)]
        msgs += [m for m in (pl.port_mode_add(e.port, e.action, e.partner) for e in entries)
                 if m is not None]
        with self._lock:
            self._send(msgs, "set port modes")

    # ---- flow-label tags ----
    def sync_tags(self, rules: list[TagRule]) -> None:
        with self._lock:
            self._sync_tags(rules)

    def _sync_tags(self, rules: list[TagRule]) -> None:
        desired: dict[pl.TagEntry, TagRule] = {}
        for rule in rules:
            entry = pl.tag_entry(rule)
            if entry in desired:
                raise DriverError(f"switch {self.name}: tag rules {desired[entry]} and {rule} "
                                  "match the same labels")
            desired[entry] = rule
        current: dict[pl.TagEntry, tuple[int, bool]] = {}
        for stat in self._stats(pl.KIND_TAG, pl.T_CLASSIFY):
            label, mask = stat["match"].get("ipv6_flabel", [None, None])
            entry = pl.TagEntry(stat["priority"], label, mask)
            metadata = (stat["write_metadata"] or [0, 0])[0]
            current[entry] = (pl.cookie_id(stat["cookie"]), bool(metadata & pl.MIRROR_BIT))
        msgs = []
        for entry, (tag_id, _) in current.items():
            rule = desired.get(entry)
            if rule is None or rule.tag_id != tag_id:
                msgs.append(pl.tag_delete(entry))  # flow-removed retires its counts
        for entry, rule in desired.items():
            if current.get(entry) != (rule.tag_id, rule.mirror):
                msgs.append(pl.tag_add(rule))  # replaces an entry in place, keeps its counters
        self._send(msgs, "sync tag rules")

    # ---- firefly flows ----
    def install_flow(self, rule: FlowRule) -> None:
        key = rule.key
        if key.protocol not in (pl.PROTO_TCP, pl.PROTO_UDP):
            raise DriverError(f"switch {self.name}: flow {key}: only tcp and udp flows can be "
                              "matched (the P4 program parses no other transport)")
        if not (0 <= rule.experiment <= pl.FIREFLY_EXPERIMENT_MAX
                and 0 <= rule.activity <= pl.FIREFLY_ACTIVITY_MAX):
            raise DriverError(f"switch {self.name}: flow {key}: experiment {rule.experiment} / "
                              f"activity {rule.activity} exceed 16 / 8 bits")
        with self._lock:
            with self._state:
                known = self._flows.get(key)
            ident = known[0] if known else self._next_flow_id
            msgs = []
            tag = (rule.experiment, rule.activity)
            if pl.consistent_possible(*tag) and tag not in self._consistent:
                msgs.append(pl.consistent_add(*tag))
            msgs.append(pl.firefly_add(key, rule.experiment, rule.activity,
                                       rule.idle_timeout_s, ident))
            self._send(msgs, f"install flow {key}")
            if pl.consistent_possible(*tag):
                self._consistent.add(tag)
            if not known:
                self._next_flow_id += 1
            with self._state:
                self._flows[key] = (ident, rule)
                self._idle_final.pop(key, None)

    def remove_flow(self, key: FlowKey) -> Counts:
        with self._lock:
            with self._state:
                known = self._flows.get(key)
                if known is None:
                    return self._idle_final.pop(key, Counts())
                ident = known[0]
                done, result = threading.Event(), []
                self._removals[ident] = (done, result)
            try:
                self._send([pl.firefly_delete(key)], f"remove flow {key}")
                # The flow-removed message (reason DELETE) carries the final counters.
                done.wait(timeout=5)
            finally:
                with self._state:
                    self._removals.pop(ident, None)
                    self._flows.pop(key, None)
            if result:
                return result[0]
            with self._state:
                return self._idle_final.pop(key, Counts())  # idled out just before the delete

    def installed_flows(self) -> dict[FlowKey, FlowRule]:
        with self._lock:
            self._reload_flows()
            with self._state:
                return {key: rule for key, (_, rule) in self._flows.items()}

    def _reload_flows(self) -> None:
        """Rebuild the flow map from the switch: a new driver instance adopts what it finds."""
        flows: dict[FlowKey, tuple[int, FlowRule]] = {}
        for stat in self._stats(pl.KIND_FIREFLY, pl.T_FIREFLY):
            key = pl.key_from_match(stat["match"])
            if key is None or not stat["write_metadata"]:
                LOG.warning("switch %s: firefly entry %#x not understood: %s", self.name,
                            stat["cookie"], stat["match"])
                continue
            experiment, activity = pl.tag_of_metadata(stat["write_metadata"][0])
            flows[key] = (pl.cookie_id(stat["cookie"]),
                          FlowRule(key, experiment, activity, float(stat["idle_timeout"])))
        with self._state:
            self._flows = flows
        self._next_flow_id = max([self._next_flow_id] + [i + 1 for i, _ in flows.values()])
        self._consistent = {divmod(pl.cookie_id(s["cookie"]), 256)
                            for s in self._stats(pl.KIND_CONSISTENT, pl.T_CROSSCHECK)}

    # ---- counters ----
    def read_counters(self) -> CounterSnapshot:
        stats = self._stats()
        taken_at = time.time()
        with self._state:
            tags: dict[int, Counts] = dict(self._retired_tags)
            buckets = {name: Counts() for name in BUCKETS}
            flows: dict[FlowKey, Counts] = {}
            bucket_names = {v: k for k, v in pl.BUCKET_IDS.items()}
            for stat in stats:
                kind, ident = pl.cookie_kind(stat["cookie"]), pl.cookie_id(stat["cookie"])
                if kind == pl.KIND_TAG:
                    tags[ident] = tags.get(ident, Counts()) + _counts(stat)
                elif kind == pl.KIND_BUCKET and ident in bucket_names:
                    buckets[bucket_names[ident]] += _counts(stat)
                elif kind == pl.KIND_CONSISTENT:
                    buckets["consistent"] += _counts(stat)
                elif kind == pl.KIND_FIREFLY:
                    key = pl.key_from_match(stat["match"])
                    if key is not None:
                        flows[key] = _counts(stat)
            # parser_error stays 0: OVS parses what it can and never drops a frame as malformed.
        return CounterSnapshot(self.name, taken_at, tags, buckets, flows)

    # ---- events from the agent (reader thread) ----
    def _emit(self, event: object) -> None:
        self._events.put(event)

    def _dispatch(self) -> None:
        """Hand events to the controller from a thread of their own, so a handler may call
        back into the driver (remove_flow on FlowIdle) without stalling the link."""
        while (event := self._events.get()) is not None:
            handler = self._handler
            if handler is None:
                continue
            try:
                handler(event)
            except Exception:  # the controller's bug must not end event delivery
                LOG.exception("switch %s: event handler failed on %r", self.name, event)

    def _on_agent_event(self, message: dict[str, Any]) -> None:
        kind = message.get("event")
        if kind == "packet_in":
            self._on_packet_in(message)
        elif kind == "flow_removed":
            self._on_flow_removed(message)
        elif kind == "connected":
            self._datapath_up = True
        elif kind in ("disconnected", "agent_exited"):
            self._datapath_up = False
            reason = ("OpenFlow session lost" if kind == "disconnected"
                      else "os-ken agent exited")
            self._emit(ConnectionLost(self.name, reason))

    def _on_packet_in(self, message: dict[str, Any]) -> None:
        try:
            pkt = packet.Packet(base64.b64decode(message["data"]))
            ip = pkt.get_protocol(ipv4.ipv4) or pkt.get_protocol(ipv6.ipv6)
            l4 = pkt.get_protocol(udp.udp)
            payload = pkt.protocols[-1] if pkt.protocols else b""
            if ip is None or l4 is None or not isinstance(payload, (bytes, bytearray)):
                raise ValueError("not a UDP datagram with a payload")
        except Exception as exc:  # a punted frame from the wire is untrusted input
            self.malformed_packet_ins += 1
            LOG.warning("switch %s: packet-in dropped (%d so far): %s", self.name,
                        self.malformed_packet_ins, exc)
            return
        self._emit(FireflyPacket(self.name, int(message["in_port"]), bytes(payload),
                                 (str(ip.src), int(l4.src_port))))

    def _on_flow_removed(self, message: dict[str, Any]) -> None:
        kind, ident = pl.cookie_kind(message["cookie"]), pl.cookie_id(message["cookie"])
        counts = _counts(message)
        if kind == pl.KIND_TAG and message["reason"] == OFP.OFPRR_DELETE:
            with self._state:
                self._retired_tags[ident] += counts
            return
        if kind != pl.KIND_FIREFLY:
            return
        key = pl.key_from_match(message["match"])
        with self._state:
            waiter = self._removals.get(ident)
            if waiter is not None:  # remove_flow is waiting: its result, whatever the reason
                waiter[1].append(counts)
                waiter[0].set()
                return
            if message["reason"] != OFP.OFPRR_IDLE_TIMEOUT or key is None:
                return
            known = self._flows.get(key)
            if known is not None and known[0] != ident:
                return  # an older entry for a key that has been re-installed
            self._flows.pop(key, None)
            self._idle_final[key] = counts
            while len(self._idle_final) > IDLE_FINAL_KEPT:  # oldest first
                del self._idle_final[next(iter(self._idle_final))]
        self._emit(FlowIdle(self.name, key))


def openflow_target(spec: Any) -> str:
    """Where to reach a topology switch of kind ovs.

    `openflow: tcp:HOST:PORT | ptcp:PORT[:HOST]` in the switch's topology entry wins;
    otherwise the switch listens on grpc_host:grpc_port (OVS: set-controller BR ptcp:PORT).
    """
    target = spec.options.get("openflow") if spec.options else None
    if target is not None:
        wire.parse_target(str(target))  # ValueError names the accepted forms
        return str(target)
    if spec.grpc_port is None:
        raise ValueError(f"switch {spec.name}: kind ovs needs `openflow: tcp:HOST:PORT` "
                         "(or grpc_port: the port OVS listens on for its controller)")
    host = f"[{spec.grpc_host}]" if ":" in spec.grpc_host else spec.grpc_host
    return f"tcp:{host}:{spec.grpc_port}"


def make_driver(spec: Any, cfg: Any = None) -> OpenFlowDriver:
    """The driver for a topology switch with kind: ovs (controller/runtime.py calls this)."""
    return OpenFlowDriver(spec.name, openflow_target(spec))
