"""Shared fixtures: a real node running on its own event loop thread, on free ports of 127.0.0.1."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import threading
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, settings

from softswitch.aio import finish_tasks
from softswitch.node.compose import Listen, Node, NodeOptions, new_loop

# Hypothesis's per-example deadline (200 ms) and its too-slow health check time examples on the wall
# clock: on a busy host they fail good code. Examples are checked for what they compute, not how fast.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")


def _handout_range() -> range:
    """Ports no one else in the run binds: below the kernel's ephemeral range (where ports bound to 0 by the
    nodes, phones and SIPp land, and where a port once handed out could be taken before its user binds it) and
    below the RTP ranges the tests configure (20000 up)."""
    try:
        low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    top = min(low, 20000)
    return range(10000, top) if top - 10000 >= 2000 else range(0)


_HANDOUT = _handout_range()
_next = [os.getpid() * 7919 % len(_HANDOUT)] if _HANDOUT else [0]


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP on 127.0.0.1, never handed out twice in a run."""
    for _ in range(len(_HANDOUT) if _HANDOUT else 0):
        port = _HANDOUT[_next[0] % len(_HANDOUT)]
        _next[0] += 1
        if _bindable(port):
            return port
    for _ in range(50):                 # a kernel whose ephemeral range leaves no room below it
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
        if _bindable(port):
            return port
    raise RuntimeError("no free port")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket(socket.AF_INET) as t:
        try:
            u.bind(("127.0.0.1", port))
            t.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class NodeThread:
    """Runs a Node on a private loop in a thread; `call` runs a function inside that loop."""

    def __init__(self, node_factory) -> None:
        self.loop = new_loop()
        self.node: Node | None = None
        self._factory = node_factory
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.node = self._factory(self.loop)
            # Admission by load (loop lag, SIP busy share, re-sends) answers new calls 503 when the host is
            # busy: a verdict of the machine, not of the code under test. Off in the suite's in-process
            # nodes; admission by max_calls stays (test_calls_sipp).
            calls = getattr(self.node, "calls", None)
            if calls is not None:
                calls.max_loop_lag = calls.max_busy = calls.max_resend_ratio = float("inf")
            self.loop.run_until_complete(self.node.start())
        except BaseException as exc:  # surfaced in start()
            self._error = exc
            if self.node is not None:     # let go of what it did bind
                try:
                    self.loop.run_until_complete(self.node.stop())
                except BaseException:  # noqa: BLE001 - the start error is the one to report
                    pass
            self.loop.close()
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.node.stop())
        finish_tasks(self.loop)
        self.loop.close()

    def start(self) -> Node:
        self._thread.start()
        assert self._ready.wait(60), "the node did not start"      # bounds a hang; a busy host starts slowly
        if self._error:
            raise self._error
        return self.node

    def call(self, fn, *args):
        """Run fn(*args) (or await it, if it is a coroutine function) in the node's loop; return its result."""
        async def wrapper():
            res = fn(*args)
            if asyncio.iscoroutine(res):
                res = await res
            return res
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(30)     # bounds a hang

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def port_taken(exc: BaseException) -> bool:
    """A port free_port() picked was bound by another process before the node got it (a busy shared host)."""
    return isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE


def start_with_free_ports(make, attempts: int = 5):
    """make() -> (NodeThread, extra) on fresh ports; started, and made again on new ports while a port
    turns out taken."""
    for attempt in range(attempts):
        nt, extra = make()
        try:
            nt.start()
        except BaseException as exc:
            if not port_taken(exc) or attempt == attempts - 1:
                raise
            continue
        return nt, extra


@contextmanager
def running_node(make=None, credentials=None, **opts):
    fixed = "listen" in opts

    def build():
        port = free_port()
        listen = opts["listen"] if fixed else [Listen("udp", "127.0.0.1", port), Listen("tcp", "127.0.0.1", port)]
        options = NodeOptions(**{**opts, "listen": listen})
        factory = make or (lambda loop: Node(options, None, loop, credentials=credentials))
        return NodeThread(factory), port
    nt, port = start_with_free_ports(build, 1 if fixed or make else 5)
    nt.port = port
    try:
        yield nt
    finally:
        nt.stop()


@pytest.fixture
def sip_node():
    with running_node(partial_timeout=1.0) as nt:
        yield nt


def pytest_sessionfinish(session, exitstatus):
    """pjsua2 must be destroyed before interpreter exit tears its Python objects down."""
    import sys
    if "softswitch.phone.softphone" in sys.modules:     # tools.softphone is a name for the same module
        sys.modules["softswitch.phone.softphone"].shutdown()
