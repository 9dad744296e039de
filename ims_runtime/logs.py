"""Structured logging: JSON lines when stderr is not a terminal (journald, files), readable text on a terminal.

Anything that can fire every frame goes through :class:`RateLimited`, so a stuck condition logs once per
interval with a count of what was suppressed instead of flooding the journal and slowing the frame loop.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import structlog


def configure(level: str = "info", json_logs: bool | None = None) -> None:
    if json_logs is None:
        json_logs = not sys.stderr.isatty()
    renderer = structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # sys.stderr is looked up when a logger is made, not captured now: a caller that swaps stderr (a test
        # harness capturing output, a daemon redirecting it) must not leave loggers writing to a closed file
        logger_factory=lambda *_: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


class RateLimited:
    """Log an event at most once per ``interval_s`` per key; report how many were suppressed meanwhile."""

    def __init__(self, logger: Any, interval_s: float = 5.0) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, event: str, **fields: Any) -> bool:
        now = time.monotonic()
        last = self._last.get(event)
        if last is not None and now - last < self.interval_s:
            self._suppressed[event] = self._suppressed.get(event, 0) + 1
            return False
        suppressed = self._suppressed.pop(event, 0)
        self._last[event] = now
        self.logger.warning(event, suppressed=suppressed, **fields)
        return True
