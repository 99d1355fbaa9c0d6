"""`softswitch serve` as a real process on free ports, for tests that need the whole program."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"


def example_on_free_ports(tmp_path: Path) -> tuple[Path, int]:
    """The shipped example config moved to free ports and a private database."""
    port = free_port()
    text = EXAMPLE.read_text()
    text = text.replace("udp:127.0.0.1:5060, tcp:127.0.0.1:5060", f"udp:127.0.0.1:{port}, tcp:127.0.0.1:{port}")
    text = text.replace("127.0.0.1:8080", f"127.0.0.1:{free_port()}")
    text = text.replace("ws:127.0.0.1:5066", f"ws:127.0.0.1:{free_port()}")
    text = text.replace("sqlite:///var/softswitch/cdr.db", f"sqlite:///{tmp_path}/cdr.db")
    text = text.replace("prompts/", f"{EXAMPLE.parent}/prompts/")       # the shipped prompts, from the copy
    path = tmp_path / "node.yaml"
    path.write_text(text)
    return path, port


def wait_admitting(http_port: int, timeout: float = 30) -> None:
    """Wait until a served node would admit a new call: its load admission (loop lag, SIP busy share,
    re-sends; as in softswitch.b2bua.control) answers 503 for a while after a burst of work such as a reload on a busy
    host. The timeout bounds a hang."""
    import json
    import urllib.request
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=10) as r:
            h = json.loads(r.read())
        if h["loop_lag_ms"] < 50 and h["sip_busy"] < 0.5 and h["resend_ratio"] < 0.05:
            return
        assert time.monotonic() < deadline, f"the node stays loaded: {h}"
        time.sleep(0.1)


class Served:
    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "softswitch.cli", "serve", "--config", str(config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        # stderr (the JSON log) is read as it comes, so a test can wait for what the node says it did
        self._err: list[str] = []
        self._err_seen = threading.Condition()
        self._err_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._err_reader.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.strip())
            if line.startswith("records "):     # the last line the node prints when it has started
                return
        self.proc.kill()
        self.proc.wait(10)
        raise RuntimeError(f"node did not start: {self.lines} {self.stderr()}")

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            with self._err_seen:
                self._err.append(line)
                self._err_seen.notify_all()

    def wait_log(self, text: str, timeout: float = 30, after: int = 0) -> int:
        """Wait until a line of the node's log from line `after` on contains `text`; its index + 1. The
        timeout bounds a hang (the node died or never says it)."""
        deadline = time.monotonic() + timeout
        with self._err_seen:
            while True:
                for i in range(after, len(self._err)):
                    if text in self._err[i]:
                        return i + 1
                after = len(self._err)
                left = deadline - time.monotonic()
                assert left > 0, f"the node never logged {text!r}"
                self._err_seen.wait(min(left, 0.5))

    def stderr(self) -> str:
        """The node's whole log, once it has exited."""
        self.proc.wait()
        self._err_reader.join(10)
        return "".join(self._err)

    def stop(self, sig=signal.SIGTERM, timeout: float = 15) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            tail = "".join(self.stderr().splitlines(True)[-40:])     # why it did not stop: the log's end
            raise AssertionError(f"the node did not stop within {timeout} s; its log ends:\n{tail}") from None
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
