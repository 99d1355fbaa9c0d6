"""SIPVicious (svwar, svcrack) run as real processes, optionally with another User-Agent than its own.

SIPVicious has no option for the User-Agent (it always sends `friendly-scanner`, which the node drops), so a
scanner posing as a phone is svwar/svcrack started with the default of its request builder changed.
svcrack 0.3.8 also ignores its own -b (bind address); the runner passes it on.
"""

from __future__ import annotations

import subprocess
import sys

_RUN = """
import sys
from sipvicious.libs import svhelper
tool, ua = sys.argv[1], sys.argv[2]
del sys.argv[1:3]
if ua:
    code = svhelper.makeRequest.__code__
    names = code.co_varnames[:code.co_argcount]
    defaults = list(svhelper.makeRequest.__defaults__)
    defaults[names.index("useragent") - (len(names) - len(defaults))] = ua
    svhelper.makeRequest.__defaults__ = tuple(defaults)
module = __import__("sipvicious." + tool, fromlist=["main"])
if tool == "svcrack" and "-b" in sys.argv:
    # svcrack's main parses -b but does not hand it on: bind where asked, as svwar does
    bind, init = sys.argv[sys.argv.index("-b") + 1], module.ASipOfRedWine.__init__
    module.ASipOfRedWine.__init__ = lambda self, *a, **kw: init(self, *a, **{**kw, "bindingip": bind})
module.main()
"""


def sipvicious(tool: str, args: list[str], user_agent: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `tool` (svwar, svcrack) with `args`; stdout and stderr together in .stdout."""
    return subprocess.run([sys.executable, "-c", _RUN, tool, user_agent, *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
