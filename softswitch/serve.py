"""`python -m softswitch.serve --config FILE`: the node as a program of its own, which `softswitch serve`
becomes (see cli.py); it stops cleanly on SIGTERM/SIGINT and reloads on SIGHUP."""

from __future__ import annotations

import gc

# Before the node's imports: they make long-lived objects by the hundred thousand (modules, classes, tables),
# which the cyclic collector would walk again and again while they load (a sixth of the import time).
# run() freezes them with the tenant and turns the collector back on.
gc.disable()

import argparse  # noqa: E402
import sys  # noqa: E402

from .node.compose import run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="softswitch serve", description="run a node")
    p.add_argument("--config", required=True, help="YAML config")
    return run(p.parse_args(argv).config)


if __name__ == "__main__":
    sys.exit(main())
