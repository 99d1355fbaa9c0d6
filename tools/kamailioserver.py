"""Kamailio as a SIP provider for trunk tests and benchmarks: a registrar with digest auth (a static password checked by
`pv_www_authenticate`), `usrloc` in memory, OPTIONS answered, and requests for a registered user relayed to its
contact. Started on a free port of 127.0.0.1 with a config written per test; `restart` keeps the port and
loses the registrations, as a provider's restart does."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"

CONFIG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
auto_aliases=no
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
mpath="{modules}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "siputils.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
modparam("registrar", "min_expires", 2)
modparam("auth", "algorithm", "{algorithm}")
request_route {{
  if (method == "OPTIONS" && $rU == $null) {{ sl_send_reply("200", "OK"); exit; }}
  if (method == "REGISTER") {{
    if ($au != "{user}" || !pv_www_authenticate("$td", "{password}", "0")) {{ www_challenge("$td", "1"); exit; }}
    if (!save("location")) {{ sl_reply_error(); exit; }}
    xlog("L_NOTICE", "REGISTERED $tu contact=$ct expires=$hdr(Expires)\\n");
    exit;
  }}
  if (!lookup("location")) {{ sl_send_reply("404", "Not registered"); exit; }}
  t_relay();
}}
"""


def kamailio_binary() -> str | None:
    return shutil.which("kamailio") or ("/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").exists() else None)


class Kamailio:
    def __init__(self, workdir: Path, port: int, user: str = "trunk1", password: str = "S3cret-Trunk",
                 algorithm: str = "MD5") -> None:
        self.workdir, self.port = workdir, port
        self.config = workdir / f"kamailio-{port}.cfg"
        self.config.write_text(CONFIG.format(port=port, modules=MODULES, user=user, password=password,
                                             algorithm=algorithm))
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []       # stderr of the current run
        self.runs = 0

    def start(self) -> None:
        binary = kamailio_binary()
        assert binary, "kamailio is not installed (tools/install-sysdeps.sh installs it)"
        self.lines = []
        self.runs += 1
        self.proc = subprocess.Popen([binary, "-f", str(self.config), "-DD", "-E", "-w", str(self.workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, args=(self.proc, self.lines), daemon=True).start()
        deadline = time.monotonic() + 30          # bounds a hang
        while options(self.port, timeout=0.5) != 200:
            assert self.proc.poll() is None, "kamailio exited:\n" + "\n".join(self.lines[-20:])
            assert time.monotonic() < deadline, "kamailio did not answer OPTIONS"

    @staticmethod
    def _read(proc, lines) -> None:
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))

    def registered(self) -> int:
        """REGISTERs this run accepted (saved in usrloc)."""
        return sum("REGISTERED" in line for line in self.lines)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def options(port: int, user: str | None = None, timeout: float = 2.0) -> int | None:
    """Send one OPTIONS to 127.0.0.1:port (to `user` there, or to the server itself); its status, or None."""
    return request(port, user, timeout)[0]


def request(port: int, user: str | None = None, timeout: float = 2.0) -> tuple[int | None, str]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        me = s.getsockname()[1]
        target = f"sip:{user + '@' if user else ''}127.0.0.1:{port}"
        msg = (f"OPTIONS {target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <{target}>\r\n"
               f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        s.sendto(msg.encode(), ("127.0.0.1", port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = s.recv(65535).decode("utf-8", "replace")
            except OSError:
                return None, ""
            status = int(data.split(" ", 2)[1])
            if status >= 200:
                return status, data
        return None, ""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
