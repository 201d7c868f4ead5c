"""Driver-side end of the os-ken agent: starts the child process and makes calls synchronous.

Thread-based and free of eventlet: any controller thread may call request(); a reader thread
matches replies to callers and hands events (packet-in, flow-removed, connection changes)
to the callback given at construction.
"""
from __future__ import annotations

import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from controller.drivers import openflow_wire as wire

LOG = logging.getLogger(__name__)
_REPO_ROOT = Path(__file__).resolve().parents[2]
# Patch first, import the agent after: nothing in the child may see unpatched sockets.
BOOTSTRAP = ("import warnings; warnings.filterwarnings('ignore', r'\\s*Eventlet is deprecated'); "
             "import eventlet; eventlet.monkey_patch(); "
             "from controller.drivers.openflow_agent import main; main()")


class AgentError(RuntimeError):
    """The agent refused a request, timed out, or is gone; the message says which."""


class _Call:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: dict[str, Any] | None = None


class AgentLink:
    def __init__(self, target: str, on_event: Callable[[dict[str, Any]], None],
                 log_level: str = "WARNING") -> None:
        self.target = target
        self._on_event = on_event
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
        # os-ken 4 defaults to its "native" (threading) hub, whose kill() is a no-op: a lost
        # switch connection then never reaches DEAD_DISPATCHER. Its eventlet hub works.
        env["OSKEN_HUB_TYPE"] = "eventlet"
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", BOOTSTRAP, "--fd", str(theirs.fileno()),
                 "--target", target, "--log-level", log_level],
                pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self._sock = ours
        self._send_lock = threading.Lock()
        self._calls: dict[int, _Call] = {}
        self._calls_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, name=f"openflow-link {target}",
                                        daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        """The agent runs and the channel is open."""
        return not self._closed and self._reader.is_alive()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def request(self, op: str, timeout: float = 30.0, **args: Any) -> dict[str, Any]:
        """Run one agent op and return its result; AgentError on refusal or silence."""
        if self._closed:
            raise AgentError(f"agent for {self.target} is closed")
        rid = next(self._ids)
        call = _Call()
        with self._calls_lock:
            self._calls[rid] = call
        try:
            with self._send_lock:
                self._sock.sendall(wire.encode({"id": rid, "op": op, "timeout": timeout, **args}))
            # The agent enforces `timeout` itself; the margin covers a wedged agent.
            if not call.done.wait(timeout + 5):
                raise AgentError(f"agent for {self.target}: no answer to {op} in {timeout + 5:g}s")
        except OSError as exc:
            raise AgentError(f"agent for {self.target} is gone: {exc}") from None
        finally:
            with self._calls_lock:
                self._calls.pop(rid, None)
        reply = call.reply
        if reply is None:
            raise AgentError(f"agent for {self.target} exited (code {self._proc.poll()})")
        if not reply.get("ok"):
            raise AgentError(str(reply.get("error", "unknown agent error")))
        return reply.get("result") or {}

    def _read_loop(self) -> None:
        try:
            while True:
                message = wire.read_message(self._sock)
                if "event" in message:
                    try:
                        self._on_event(message)
                    except Exception:  # a handler bug must not stop reply delivery
                        LOG.exception("OpenFlow event handler failed on %s", message.get("event"))
                    continue
                with self._calls_lock:
                    call = self._calls.get(message.get("id"))
                if call is not None:
                    call.reply = message
                    call.done.set()
        except (wire.WireError, OSError) as exc:
            if not self._closed:
                LOG.warning("agent for %s: channel lost: %s", self.target, exc)
        finally:
            with self._calls_lock:
                for call in self._calls.values():
                    call.done.set()  # reply stays None: callers raise "exited"
            if not self._closed:
                try:
                    self._on_event({"event": "agent_exited"})
                except Exception:
                    LOG.exception("OpenFlow event handler failed on agent_exited")

    def close(self) -> None:
        """Stop the agent (closing the channel makes it exit) and reap it."""
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._reader.join(timeout=5)
