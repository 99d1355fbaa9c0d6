"""A throwaway Redis server for tests and local tries: start `redis-server` on a free port of 127.0.0.1 with
a temporary working directory and no persistence, hand out its URL, then stop it and delete the directory.

    from tools.redisserver import redis_server
    with redis_server() as url:       # redis://127.0.0.1:PORT/0
        store = RedisLocationStore(url)

    python tools/redisserver.py       # runs one until Ctrl-C and prints its URL

The binary comes from PATH or /usr/bin/redis-server (Debian package redis-server); `make sysdeps`
(tools/install-sysdeps.sh, which `make test` runs) installs it when root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class RedisNotFound(RuntimeError):
    pass


def find_redis_server() -> str:
    for candidate in (shutil.which("redis-server"), "/usr/bin/redis-server"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RedisNotFound("redis-server not found on PATH nor at /usr/bin/redis-server: install the Debian package "
                        "redis-server (run `make test` as root, which installs it via tools/install-sysdeps.sh)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(start_timeout: float = 10.0) -> Iterator[str]:
    """Yield the URL of a fresh, private, non-persistent Redis server; stop it and delete its files afterwards."""
    binary = find_redis_server()
    base = Path(tempfile.mkdtemp(prefix="softswitch-redis-"))
    log = base / "redis.log"
    proc: subprocess.Popen | None = None
    try:
        for attempt in range(3):  # the free port may be taken between looking and binding
            port = _free_port()
            proc = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(base), "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--logfile", str(log), "--databases", "16"],
                cwd=base, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + start_timeout
            while proc.poll() is None and time.monotonic() < deadline and not _pings(port):
                time.sleep(0.02)
            if proc.poll() is None and _pings(port):
                break
            server_log = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            _stop(proc)
            proc = None
            if attempt == 2:
                raise RuntimeError(f"redis-server did not answer PING on 127.0.0.1:{port}:\n{server_log}")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        try:
            if proc is not None:
                _stop(proc)
        finally:
            shutil.rmtree(base, ignore_errors=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main() -> None:
    with redis_server() as url:
        print(url, flush=True)
        try:
            sys.stdin.read() if not sys.stdin.isatty() else input("running; Enter or Ctrl-C stops it\n")
        except (KeyboardInterrupt, EOFError):
            pass


if __name__ == "__main__":
    main()
