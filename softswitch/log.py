"""structlog set-up: JSON lines by default, readable console lines for a terminal."""

from __future__ import annotations

import logging
import sys

import structlog


_level = logging.INFO


def setup(level: str = "info", json: bool | None = None) -> None:
    global _level
    _level = getattr(logging, level.upper(), logging.INFO)
    if json is None:
        json = not sys.stderr.isatty()
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get(name: str):
    return structlog.get_logger(name)


def debug_enabled() -> bool:
    """Whether debug lines are written (a caller can skip building their fields)."""
    return _level <= logging.DEBUG
