"""One ZeroMQ PUB socket for every topic. Sending never blocks the frame loop.

PUB sockets already drop messages for a subscriber whose queue is at the high-water mark; we also send with
``NOBLOCK`` so that a full queue (or a transport hiccup) costs one counted drop, never a stall.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Any

import zmq

from ims_runtime import errors, messages
from ims_runtime.publish.security import CurveServer, private_ipc_socket


def _ipc_in_use(endpoint: str) -> bool:
    """ZeroMQ silently replaces an ipc socket file that another process listens on; check for a listener."""
    path = endpoint.removeprefix("ipc://")
    if not Path(path).exists():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False  # stale file from a crashed run: safe to rebind
    finally:
        probe.close()


class Publisher:
    def __init__(self, endpoint: str, send_hwm_msgs: int = 64, context: zmq.Context | None = None,
                 curve: CurveServer | None = None) -> None:
        """``curve``: make the socket a CURVE server (encryption + client authentication) before binding."""
        self.endpoint = endpoint
        self.curve = curve
        self._context = context or zmq.Context.instance()
        ipc_path = Path(endpoint.removeprefix("ipc://")) if endpoint.startswith("ipc://") else None
        if ipc_path is not None and ipc_path.is_dir():  # ZeroMQ would say "address in use", which misleads
            raise errors.IMSError(errors.PUBLISH_ENDPOINT_INVALID, f"{endpoint}: {ipc_path} is a directory",
                                  "give publish.endpoint a socket file name, e.g. ipc:///run/ims-runtime/ims.sock")
        if ipc_path is not None and not ipc_path.parent.is_dir():
            raise errors.IMSError(errors.PUBLISH_ENDPOINT_INVALID, f"{endpoint}: directory {ipc_path.parent} "
                                  "does not exist", "create it or fix publish.endpoint")
        if endpoint.startswith("ipc://") and _ipc_in_use(endpoint):
            raise errors.IMSError(errors.PUBLISH_ENDPOINT_IN_USE, f"{endpoint} is already in use by another "
                                  "process", "stop the other ims-runtime or set publish.endpoint")
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, send_hwm_msgs)
        self._socket.setsockopt(zmq.LINGER, 0)  # never hang on exit waiting for a subscriber
        if curve is not None:
            curve.apply(self._socket)
        try:
            with private_ipc_socket(endpoint):
                self._socket.bind(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close(0)
            if curve is not None:
                curve.close()
            if exc.errno == errno.EADDRINUSE:
                raise errors.IMSError(errors.PUBLISH_ENDPOINT_IN_USE, f"{endpoint} is already in use",
                                      "stop the other process or set publish.endpoint") from exc
            raise errors.IMSError(errors.PUBLISH_ENDPOINT_INVALID, f"cannot bind {endpoint}: {exc}",
                                  "check publish.endpoint (ipc:///path or tcp://host:port)") from exc
        self.sent = 0
        self.dropped = 0

    @property
    def socket(self) -> zmq.Socket:
        return self._socket

    def publish(self, topic: str, message: dict[str, Any]) -> bool:
        """Send ``[topic, json]`` without blocking; False (and counted) if it had to be dropped."""
        try:
            self._socket.send_multipart(messages.encode(topic, message), flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        if self._socket is not None and not self._socket.closed:
            self._socket.close(0)
        if self.curve is not None:
            self.curve.close()
            self.curve = None
