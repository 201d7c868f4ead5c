"""os-ken agent: the OpenFlow side of the OpenFlow driver, run as a child process.

os-ken 4 defaults to a threading ("native") hub whose kill() does nothing, so a lost switch
connection never reaches DEAD_DISPATCHER; its eventlet hub works but needs eventlet's
monkey-patching, which replaces socket/threading for the whole interpreter and would break
grpc and the thread-based controller. So os-ken runs here, in its own process, with
OSKEN_HUB_TYPE=eventlet. The driver (openflow.py, via openflow_link.py) starts it with
openflow_link.BOOTSTRAP, which patches before anything else is imported, and talks to it over
an inherited socketpair (openflow_wire framing):

  request  {"id": n, "op": "wait_connected"|"send"|"flow_stats"|"ping", ...}
  reply    {"id": n, "ok": true, "result": {...}} | {"id": n, "ok": false, "error": "..."}
  event    {"event": "connected"|"disconnected"|"packet_in"|"flow_removed", ...}

The driver builds and serialises OpenFlow messages with os-ken's parser classes
(openflow_pipeline); they cross the channel as base64 and the agent stamps an xid into each
before sending it. The agent exits when the channel closes, so it never outlives its driver.
"""
from __future__ import annotations

import argparse
import base64
import logging
import os
import socket
import struct
import sys
from typing import Any

from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import ofp_event, ofp_handler
from os_ken.controller.controller import OpenFlowController
from os_ken.controller.handler import (CONFIG_DISPATCHER, DEAD_DISPATCHER, HANDSHAKE_DISPATCHER,
                                       MAIN_DISPATCHER, set_ev_cls)
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3

from controller.drivers import openflow_wire as wire

LOG = logging.getLogger("scitags.openflow_agent")
_XID = struct.Struct("!I")  # the xid field of the OpenFlow header, at offset 4
OFP = ofproto_v1_3

# Reverse maps for error messages: OFPET_* numbers to names.
_ERROR_TYPES = {v: k for k, v in vars(OFP).items() if k.startswith("OFPET_") and isinstance(v, int)}


class _Handler(ofp_handler.OFPHandler):
    """os-ken's handshake app, started for exactly one connect or listen target."""

    target: tuple[str, str, int] = ("connect", "127.0.0.1", 6653)

    def start(self) -> Any:
        app_manager.OSKenApp.start(self)  # the event loop; skip OFPHandler's default listener
        self.controller = OpenFlowController()
        kind, host, port = self.target
        if kind == "connect":
            self.controller.spawn_client_loop((host, port), interval=1)
            return None
        cfg.CONF.set_override("ofp_listen_host", host)
        return hub.spawn(self.controller.server_loop, port, None)


class _Pending:
    """A request waiting for replies from the switch (barrier or multipart)."""

    def __init__(self) -> None:
        self.done = hub.Event()
        self.errors: list[dict[str, Any]] = []
        self.parts: list[dict[str, Any]] = []
        self.index_of: dict[int, int] = {}  # xid -> position in the request's message list


def _plain(value: Any) -> Any:
    """Match values as JSON: masked fields arrive as (value, mask) tuples."""
    return list(value) if isinstance(value, tuple) else value


def _match_dict(match: Any) -> dict[str, Any]:
    return {k: _plain(v) for k, v in match.items()}


class ScitagsAgent(app_manager.OSKenApp):
    OFP_VERSIONS = [OFP.OFP_VERSION]

    def __init__(self, *args: Any, channel: socket.socket, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.channel = channel
        self.send_lock = hub.Semaphore()
        self.dp: Any = None
        self.connected = hub.Event()
        self.pending: dict[int, _Pending] = {}

    # ---- channel to the driver ----
    def emit(self, message: dict[str, Any]) -> None:
        with self.send_lock:
            try:
                self.channel.sendall(wire.encode(message))
            except OSError:
                os._exit(0)  # the driver is gone

    def serve_channel(self) -> None:
        while True:
            try:
                request = wire.read_message(self.channel)
            except (wire.WireError, OSError):
                os._exit(0)
            hub.spawn(self._serve, request)

    def _serve(self, request: dict[str, Any]) -> None:
        rid = request.get("id")
        handler = getattr(self, f"op_{request.get('op')}", None)
        if handler is None:
            self.emit({"id": rid, "ok": False, "error": f"unknown op {request.get('op')!r}"})
            return
        try:
            result = handler(request)
        except Exception as exc:  # reported to the driver, never kills the agent
            LOG.debug("op %s failed", request.get("op"), exc_info=True)
            self.emit({"id": rid, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        else:
            self.emit({"id": rid, "ok": True, "result": result})

    # ---- ops ----
    def _datapath(self, timeout: float) -> Any:
        if self.dp is None and not self.connected.wait(timeout=timeout):
            raise ConnectionError(f"no OpenFlow 1.3 switch connected within {timeout:g}s")
        if self.dp is None:
            raise ConnectionError("switch disconnected")
        return self.dp

    def op_ping(self, request: dict[str, Any]) -> dict[str, Any]:
        return {}

    def op_wait_connected(self, request: dict[str, Any]) -> dict[str, Any]:
        dp = self._datapath(float(request.get("timeout", 10)))
        return {"dpid": dp.id}

    def _wait(self, dp: Any, xids: list[int], pending: _Pending, timeout: float, what: str) -> None:
        try:
            if not pending.done.wait(timeout=timeout):
                raise TimeoutError(f"no {what} reply from the switch within {timeout:g}s")
            if self.dp is not dp:
                raise ConnectionError(f"switch disconnected before the {what} reply")
        finally:
            for xid in xids:
                self.pending.pop(xid, None)

    def op_send(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send messages, then a barrier; report the errors the switch raised for them."""
        timeout = float(request.get("timeout", 30))
        dp = self._datapath(timeout)
        bufs = [bytearray(base64.b64decode(text, validate=True)) for text in request["msgs"]]
        pending = _Pending()
        xids: list[int] = []
        try:
            for index, buf in enumerate(bufs):
                xid = dp.xid = (dp.xid + 1) & OFP.MAX_XID  # what Datapath.set_xid does
                _XID.pack_into(buf, 4, xid)
                pending.index_of[xid] = index
                self.pending[xid] = pending
                xids.append(xid)
                if not dp.send(bytes(buf)):
                    raise ConnectionError("switch disconnected while sending")
            barrier = dp.ofproto_parser.OFPBarrierRequest(dp)
            xids.append(dp.set_xid(barrier))
            self.pending[xids[-1]] = pending
            if not dp.send_msg(barrier):
                raise ConnectionError("switch disconnected while sending")
        except BaseException:
            for xid in xids:
                self.pending.pop(xid, None)
            raise
        self._wait(dp, xids, pending, timeout, "barrier")
        return {"errors": pending.errors}

    def op_flow_stats(self, request: dict[str, Any]) -> dict[str, Any]:
        timeout = float(request.get("timeout", 30))
        dp = self._datapath(timeout)
        parser = dp.ofproto_parser
        req = parser.OFPFlowStatsRequest(
            dp, 0, int(request.get("table_id", OFP.OFPTT_ALL)), OFP.OFPP_ANY, OFP.OFPG_ANY,
            int(request.get("cookie", 0)), int(request.get("cookie_mask", 0)), parser.OFPMatch())
        xid = dp.set_xid(req)
        pending = _Pending()
        self.pending[xid] = pending
        dp.send_msg(req)
        self._wait(dp, [xid], pending, timeout, "flow-stats")
        if pending.errors:
            raise RuntimeError(f"flow-stats request refused: {pending.errors[0]['text']}")
        return {"flows": pending.parts}

    # ---- switch events ----
    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev: Any) -> None:
        dp = ev.datapath
        LOG.info("datapath %s at %s: state %s", dp.id, dp.address, ev.state)
        if ev.state == MAIN_DISPATCHER:
            self._enable_async(dp)
            self.dp = dp
            self.connected.set()
            self.emit({"event": "connected", "dpid": dp.id, "address": list(dp.address)})
        elif ev.state == DEAD_DISPATCHER and dp is self.dp:
            self.dp = None
            self.connected.clear()
            for pending in set(self.pending.values()):
                pending.done.set()  # waiters see self.dp changed and fail
            self.emit({"event": "disconnected"})

    @staticmethod
    def _enable_async(dp: Any) -> None:
        """Ask for packet-ins and flow-removed messages explicitly: OVS sends none on a
        connection it accepted as a listener (a "service" connection) unless told to."""
        packet_in = 1 << OFP.OFPR_NO_MATCH | 1 << OFP.OFPR_ACTION
        removed = (1 << OFP.OFPRR_IDLE_TIMEOUT | 1 << OFP.OFPRR_HARD_TIMEOUT
                   | 1 << OFP.OFPRR_DELETE)
        ports = 1 << OFP.OFPPR_ADD | 1 << OFP.OFPPR_DELETE | 1 << OFP.OFPPR_MODIFY
        dp.send_msg(dp.ofproto_parser.OFPSetAsync(dp, [packet_in, packet_in], [ports, ports],
                                                  [removed, removed]))

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [HANDSHAKE_DISPATCHER, CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev: Any) -> None:
        msg = ev.msg
        type_name = _ERROR_TYPES.get(msg.type, str(msg.type))
        pending = self.pending.get(msg.xid)
        error = {"index": pending.index_of.get(msg.xid, -1) if pending else -1,
                 "type": msg.type, "code": msg.code, "text": f"{type_name} code {msg.code}"}
        if pending is None:
            LOG.warning("unsolicited OpenFlow error: %s", error["text"])
            return
        pending.errors.append(error)
        if msg.xid not in pending.index_of:  # an error for the request itself (stats)
            pending.done.set()

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def _barrier_reply(self, ev: Any) -> None:
        pending = self.pending.get(ev.msg.xid)
        if pending is not None:
            pending.done.set()

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats_reply(self, ev: Any) -> None:
        msg = ev.msg
        pending = self.pending.get(msg.xid)
        if pending is None:
            return
        for stat in msg.body:
            metadata = None
            goto = None
            outputs: list[int] = []
            for inst in stat.instructions:
                if isinstance(inst, msg.datapath.ofproto_parser.OFPInstructionWriteMetadata):
                    metadata = [inst.metadata, inst.metadata_mask]
                elif isinstance(inst, msg.datapath.ofproto_parser.OFPInstructionGotoTable):
                    goto = inst.table_id
                elif isinstance(inst, msg.datapath.ofproto_parser.OFPInstructionActions):
                    outputs += [a.port for a in inst.actions if hasattr(a, "port")]
            pending.parts.append({
                "table_id": stat.table_id, "priority": stat.priority, "cookie": stat.cookie,
                "packet_count": stat.packet_count, "byte_count": stat.byte_count,
                "idle_timeout": stat.idle_timeout, "flags": stat.flags,
                "match": _match_dict(stat.match), "write_metadata": metadata, "goto": goto,
                "outputs": outputs})
        if not msg.flags & OFP.OFPMPF_REPLY_MORE:
            pending.done.set()

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev: Any) -> None:
        msg = ev.msg
        self.emit({"event": "packet_in", "in_port": msg.match.get("in_port", 0),
                   "table_id": msg.table_id, "cookie": msg.cookie, "reason": msg.reason,
                   "data": base64.b64encode(bytes(msg.data)).decode()})

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def _flow_removed(self, ev: Any) -> None:
        msg = ev.msg
        self.emit({"event": "flow_removed", "cookie": msg.cookie, "table_id": msg.table_id,
                   "priority": msg.priority, "reason": msg.reason,
                   "packet_count": msg.packet_count, "byte_count": msg.byte_count,
                   "idle_timeout": msg.idle_timeout, "match": _match_dict(msg.match)})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="os-ken agent of the scitags OpenFlow driver")
    parser.add_argument("--fd", type=int, required=True, help="inherited socket to the driver")
    parser.add_argument("--target", required=True, help="tcp:HOST:PORT or ptcp:PORT[:HOST]")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="openflow-agent %(levelname)s %(name)s: %(message)s")

    target = wire.parse_target(args.target)
    cfg.CONF(args=[], project="os_ken", default_config_files=[])
    # Any port: it only keeps OpenFlowController() from opening its default 6633 listener.
    cfg.CONF.set_override("ofp_tcp_listen_port", target[2])
    channel = socket.socket(fileno=args.fd)

    _Handler.target = target
    manager = app_manager.AppManager.get_instance()
    handler = manager.instantiate(_Handler)
    agent = manager.instantiate(ScitagsAgent, channel=channel)
    threads = [t for t in (handler.start(), agent.start()) if t is not None]
    threads.append(hub.spawn(agent.serve_channel))
    hub.joinall(threads)


if __name__ == "__main__":
    main()
