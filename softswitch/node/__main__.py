"""`python -m softswitch.node --config FILE`: the node as a program of its own, which `softswitch serve`
becomes (see cli.py); it stops cleanly on SIGTERM/SIGINT and reloads on SIGHUP."""

from __future__ import annotations

import argparse
import sys

from .compose import run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="softswitch serve", description="run a node")
    p.add_argument("--config", required=True, help="YAML config")
    return run(p.parse_args(argv).config)


if __name__ == "__main__":
    sys.exit(main())
