"""The command line's own options: --version, and the export's moments as people write them."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import pytest

from softswitch.cli import moment, version
from tests.support.serve import Served, example_on_free_ports


def test_version_is_the_installed_package_version():
    out = subprocess.run([sys.executable, "-m", "softswitch.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.strip() == f"softswitch {version()}"
    assert version() != "unknown"


@pytest.fixture
def zone(monkeypatch):
    def set_zone(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()
    yield set_zone
    monkeypatch.undo()
    time.tzset()


def test_moments_as_dates_iso_times_and_unix_seconds(zone):
    zone("UTC")
    assert moment("1796083200") == 1796083200.0
    assert moment("1796083200.5") == 1796083200.5
    assert moment("2026-12-01") == 1796083200.0                       # midnight, local time (here UTC)
    assert moment("2026-12-01T09:30") == 1796083200.0 + 9.5 * 3600
    assert moment("2026-12-01T09:30:00+02:00") == 1796083200.0 + 7.5 * 3600   # an offset wins over local time
    for bad in ("yesterday", "2026-13-01", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            moment(bad)


def test_a_date_is_local_time_without_an_offset(zone):
    zone("Europe/Berlin")
    assert moment("2026-12-01") == 1796083200.0 - 3600
    assert moment("2026-12-01T00:00Z") == 1796083200.0


def test_serve_drains_on_a_sigterm_sent_as_soon_as_it_says_it_listens(tmp_path):
    """A supervisor may stop the node the moment it reads the listening lines: the signal is handled (drain,
    exit 0), not lost nor fatal; a config with a problem is refused with its line before anything listens."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: {sip: {listen: [udp:127.0.0.1:1], domain: x}, bogus: 1}\n")
    proc = subprocess.run([sys.executable, "-m", "softswitch.cli", "serve", "--config", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and f"{bad}:1: server.bogus: unknown key" in proc.stderr, proc.stderr
    config, _ = example_on_free_ports(tmp_path)
    node = Served(config)          # returns once the node says it listens
    assert node.stop() == 0
    assert "stopped" in node.stderr()
