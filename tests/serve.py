"""`softswitch serve` as a real process on free ports, for tests that need the whole program."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import free_port

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "example.yaml"


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


class Served:
    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "softswitch.cli", "serve", "--config", str(config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.strip())
            if line.startswith("records "):     # the last line the node prints when it has started
                return
        self.proc.kill()
        raise RuntimeError(f"node did not start: {self.lines} {self.proc.stderr.read()}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 15) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
