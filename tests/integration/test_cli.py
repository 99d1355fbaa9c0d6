"""The command line's own options: --version, and the export's moments as people write them."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import pytest

from softswitch.cli import moment, version


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
