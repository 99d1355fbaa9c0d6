"""A throwaway PostgreSQL server for tests and local tries: initdb a cluster in a temporary directory, start
it on a free port of 127.0.0.1 (its unix socket in that directory too), create a database, hand out its URL,
then stop the server and delete everything.

    from tools.pgserver import pg_server
    with pg_server() as url:          # postgresql://softswitch:PASSWORD@127.0.0.1:PORT/records
        store = RecordStore(url)

    python tools/pgserver.py          # runs one until Ctrl-C and prints its URL

PostgreSQL refuses to run as root, so when this runs as root the cluster belongs to, and the server runs as,
the `postgres` system user (made by Debian's postgresql package), or `nobody` when there is none. The
cluster trades durability for speed (fsync=off): it is for tests only. The server binaries come from PATH
or /usr/lib/postgresql/*/bin; `make sysdeps` (tools/install-sysdeps.sh) installs them when root.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

USER, DATABASE = "softswitch", "records"


class PostgresNotFound(RuntimeError):
    pass


def find_bindir() -> Path:
    """The directory holding initdb and pg_ctl: PATH first, then the newest /usr/lib/postgresql/N/bin."""
    on_path = shutil.which("initdb")
    candidates = [Path(os.path.realpath(on_path)).parent] if on_path else []
    candidates += sorted((Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
                         key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    for d in candidates:
        if all((d / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return d
    raise PostgresNotFound("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH nor in "
                           "/usr/lib/postgresql/*/bin: install the postgresql package "
                           "(as root: bash tools/install-sysdeps.sh, which `make test` runs)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_user() -> str | None:
    """Who runs the server: None (ourselves) unless we are root, which PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    raise RuntimeError("running as root and neither a `postgres` nor a `nobody` user exists to run PostgreSQL")


def _as_user(user: str | None) -> list[str]:
    if user is None:
        return []
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--"]
    return ["su", user, "-s", "/bin/sh", "-c", '"$0" "$@"', "--"]  # su runs one shell command line


def _chown_tree(path: Path, user: str) -> None:
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, pw.pw_uid, pw.pw_gid)


@contextmanager
def pg_server(database: str = DATABASE, start_timeout: int = 30) -> Iterator[str]:
    """Yield the URL of a database on a fresh, private PostgreSQL server; stop and delete it afterwards."""
    bindir = find_bindir()
    user = _server_user()
    prefix = _as_user(user)
    base = Path(tempfile.mkdtemp(prefix="softswitch-pg-"))
    data, sock, log = base / "data", base / "sock", base / "server.log"
    password = secrets.token_hex(12)
    started = False

    def run(*cmd: str) -> None:
        proc = subprocess.run([*prefix, *cmd], cwd=base, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode:
            server_log = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
                               f"{server_log}")

    try:
        sock.mkdir()
        (base / "pw").write_text(password + "\n")
        if user is not None:  # the unprivileged user must own the cluster (mkdtemp made it 0700)
            _chown_tree(base, user)
        # password over TCP (the URL carries it), trust on the private unix socket for our own createdb
        run(str(bindir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={base / 'pw'}", "-E", "UTF8",
            "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions")
        (base / "pw").unlink()
        for attempt in range(3):  # the free port may be taken between looking and binding
            port = _free_port()
            opts = (f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
                    f"-c synchronous_commit=off -c max_connections=50")
            try:
                run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", str(start_timeout),
                    "-o", opts, "start")
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        started = True
        run(str(bindir / "createdb"), "-h", str(sock), "-p", str(port), "-U", USER, database)
        yield f"postgresql://{USER}:{password}@127.0.0.1:{port}/{database}"
    finally:
        try:
            if started:
                run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    with pg_server() as url:
        print(url, flush=True)
        try:
            sys.stdin.read() if not sys.stdin.isatty() else input("running; Enter or Ctrl-C stops it\n")
        except (KeyboardInterrupt, EOFError):
            pass


if __name__ == "__main__":
    main()
