"""Vehicle speed, an input adapter beside the frame sources: a ZeroMQ subscriber on the vehicle, a time
series or a constant in replay. The policy stays pure: it only ever sees ``speed_kmh`` (km/h, None = unknown).

All sources answer ``speed_at(t_ns)``: the latest speed stamped at or before ``t_ns`` if it is at most
``stale_after_s`` old, else None (unknown — the policy's ``unknown_speed`` setting then decides). Speed ``t_ns``
and frame ``t_capture_ns`` must come from the same monotonic clock (CLOCK_MONOTONIC on the vehicle computer).

Wire format on the vehicle: a two-frame ZeroMQ message ``[b"vehicle", b'{"speed_kmh": 87.5, "t_ns": 123}']``
(topic configurable). A single frame ``b'vehicle {...}'`` is accepted too, for gateways that cannot send
multipart messages.
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path

import structlog

from ims_runtime import errors

log = structlog.get_logger(__name__)


class ConstantSpeed:
    def __init__(self, speed_kmh: float | None) -> None:
        self.speed_kmh = speed_kmh

    def speed_at(self, t_ns: int) -> float | None:
        return self.speed_kmh


class SpeedSeries:
    """Speed samples ``(t_ns, speed_kmh)`` from a file: JSONL lines ``{"t_ns": ..., "speed_kmh": ...}`` or CSV
    ``t_ns,speed_kmh`` (header optional). Sample-and-hold, stale after ``stale_after_s``."""

    def __init__(self, samples: list[tuple[int, float]], stale_after_s: float) -> None:
        samples = sorted(samples)
        self._t_ns = [t for t, _ in samples]
        self._speed = [v for _, v in samples]
        self._stale_ns = int(stale_after_s * 1e9)

    @classmethod
    def from_file(cls, path: Path, stale_after_s: float) -> SpeedSeries:
        if not path.is_file():
            raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"speed file {path} does not exist")
        samples = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith(("#", "t_ns")):
                continue
            try:
                if line.startswith("{"):
                    data = json.loads(line)
                    samples.append((int(data["t_ns"]), float(data["speed_kmh"])))
                else:
                    t, v = line.split(",")[:2]
                    samples.append((int(t), float(v)))
            except (ValueError, KeyError) as exc:
                raise errors.IMSError(errors.SOURCE_UNREADABLE, f"{path}:{number}: not a speed sample ({exc})",
                                      'lines are {"t_ns": ..., "speed_kmh": ...} or t_ns,speed_kmh') from exc
        return cls(samples, stale_after_s)

    def speed_at(self, t_ns: int) -> float | None:
        i = bisect.bisect_right(self._t_ns, t_ns) - 1
        if i < 0 or t_ns - self._t_ns[i] > self._stale_ns:
            return None
        return self._speed[i]


class SpeedSubscriber:
    """ZeroMQ SUB connected to the vehicle gateway; :meth:`speed_at` drains what arrived without blocking."""

    def __init__(self, endpoint: str, topic: str, stale_after_s: float) -> None:
        import zmq

        self._topic = topic.encode()
        self._stale_ns = int(stale_after_s * 1e9)
        self._context = zmq.Context.instance()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, 1000)
        self._socket.setsockopt(zmq.SUBSCRIBE, self._topic)
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close()
            raise errors.IMSError(errors.PUBLISH_ENDPOINT_INVALID, f"cannot connect speed SUB to {endpoint}: {exc}",
                                  "fix policy.speed.endpoint in the spec") from exc
        self._latest: tuple[int, float] | None = None
        self.malformed = 0

    def _parse(self, frames: list[bytes]) -> tuple[int, float] | None:
        if len(frames) >= 2 and frames[0] == self._topic:
            body = frames[1]
        elif len(frames) == 1 and frames[0].startswith(self._topic + b" "):
            body = frames[0][len(self._topic) + 1:]
        else:
            return None
        try:
            data = json.loads(body)
            return int(data["t_ns"]), float(data["speed_kmh"])
        except (ValueError, KeyError, TypeError):
            return None

    def poll(self) -> None:
        """Read every message waiting on the socket (non-blocking); keep the newest by ``t_ns``."""
        import zmq

        while True:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            sample = self._parse(frames)
            if sample is None:
                self.malformed += 1
                if self.malformed in (1, 10, 100, 1000):  # rate-limited: this can fire on every message
                    log.warning("speed_message_malformed", count=self.malformed)
                continue
            if self._latest is None or sample[0] >= self._latest[0]:
                self._latest = sample

    def speed_at(self, t_ns: int) -> float | None:
        self.poll()
        if self._latest is None:
            return None
        stamp_ns, speed = self._latest
        if t_ns - stamp_ns > self._stale_ns or stamp_ns - t_ns > self._stale_ns:
            return None  # too old, or from a clock far ahead of the frames' (not comparable)
        return speed

    def close(self) -> None:
        if self._socket is not None and not self._socket.closed:
            self._socket.close(linger=0)
