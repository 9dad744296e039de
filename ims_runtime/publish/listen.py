"""A subscriber that prints messages as JSON lines (``ims-runtime listen``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import zmq

from ims_runtime import errors, messages
from ims_runtime.publish.security import client_socket_options


def listen(endpoint: str, topics: list[str], out: TextIO = sys.stdout, count: int | None = None,
           timeout_s: float | None = None, pretty: bool = False,
           should_stop: Callable[[], bool] = lambda: False,
           curve_keys: tuple[Path, Path] | None = None) -> int:
    """Print ``{"topic": ..., "message": {...}}`` per line. Returns how many were printed.

    ``curve_keys``: (server public certificate, this client's secret certificate) for a CURVE endpoint.
    """
    context = zmq.Context.instance()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    if curve_keys is not None:
        client_socket_options(sub, *curve_keys)
    for topic in topics or [""]:
        sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
    try:
        sub.connect(endpoint)
    except zmq.ZMQError as exc:
        sub.close(0)
        raise errors.IMSError(errors.PUBLISH_ENDPOINT_INVALID, f"cannot connect to {endpoint}: {exc}",
                              "e.g. ipc:///tmp/ims-runtime.sock or tcp://127.0.0.1:5555") from exc
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    printed = 0
    waited_ms = 0
    try:
        while not should_stop() and (count is None or printed < count):
            if timeout_s is not None and waited_ms >= timeout_s * 1000:
                break
            if not dict(poller.poll(100)):
                waited_ms += 100
                continue
            waited_ms = 0
            parts = sub.recv_multipart()
            try:
                topic, message = messages.decode(parts)
            except (ValueError, RecursionError) as exc:  # not an ims-runtime message (another publisher?)
                print(f"skipped a message that is not [topic, JSON]: {str(exc)[:120]}", file=sys.stderr)
                continue
            record = {"topic": topic, "message": message}
            out.write(json.dumps(record, indent=2 if pretty else None) + "\n")
            out.flush()
            printed += 1
    finally:
        sub.close(0)
    return printed
