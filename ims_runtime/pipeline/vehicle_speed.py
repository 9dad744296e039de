"""Vehicle speed, an input adapter beside the frame sources: a ZeroMQ subscriber on the vehicle, a time
series or a constant in replay. The policy stays pure: it only ever sees ``speed_kmh`` (km/h, None = unknown).

All sources answer ``speed_at(t_ns)``: the latest speed stamped at or before ``t_ns`` if it is at most
``stale_after_s`` old, else None (unknown — the policy's ``unknown_speed`` setting then decides). Speed ``t_ns``
and frame ``t_capture_ns`` must come from the same monotonic clock (CLOCK_MONOTONIC on the vehicle computer).

Wire format on the vehicle: a two-frame ZeroMQ message ``[b"vehicle", b'{"speed_kmh": 87.5, "t_ns": 123}']``
(topic configurable). A single frame ``b'vehicle {...}'`` is accepted too, for gateways that cannot send
multipart messages.

Every value is checked by :mod:`ims_runtime.inputs`: ``speed_kmh`` a finite JSON number in 0..400 km/h,
``t_ns`` integer nanoseconds. A live message must also be stamped within ``stale_after_s`` of the receiver's
clock when it arrives: a message from a clock far ahead would otherwise be "the newest" for good and make every
later valid message look old. A rejected message never raises: it is counted by reason
(:attr:`SpeedInbox.rejected`), logged at most every 5 s (``speed_message_rejected``), and changes nothing — the
speed stays what the last valid message said, or unknown.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from ims_runtime import errors, inputs
from ims_runtime.logs import RateLimited

log = structlog.get_logger(__name__)


class ConstantSpeed:
    """One speed for the whole replay (km/h, 0..400), or None = unknown."""

    def __init__(self, speed_kmh: float | None) -> None:
        self.speed_kmh = None if speed_kmh is None else inputs.finite_number(
            speed_kmh, "speed_kmh", 0.0, inputs.SPEED_KMH_MAX)

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
        """Read a speed file; any bad line is a coded error naming ``file:line`` (a replay must not guess)."""
        samples = []
        for number, line in inputs.text_lines(Path(path), "speed file"):
            line = line.strip()
            if not line or line.startswith(("#", "t_ns")):
                continue
            try:
                if line.startswith("{"):
                    sample = inputs.speed_sample(inputs.json_value(line))
                else:
                    fields = line.split(",")
                    if len(fields) < 2:
                        raise inputs.InputRejected("malformed", "expected t_ns,speed_kmh")
                    sample = inputs.speed_sample({"t_ns": inputs.json_value(fields[0]),
                                                  "speed_kmh": inputs.json_value(fields[1])})
            except inputs.InputRejected as exc:
                raise inputs.file_error(path, number, f"not a speed sample ({exc})",
                                        hint='lines are {"t_ns": ..., "speed_kmh": ...} or t_ns,speed_kmh') \
                    from exc
            samples.append((sample.t_ns, sample.speed_kmh))
        if not samples:  # the speed would be unknown throughout: almost certainly the wrong file
            raise errors.IMSError(errors.SOURCE_UNREADABLE, f"{path}: the speed file holds no sample",
                                  'lines are {"t_ns": ..., "speed_kmh": ...} or t_ns,speed_kmh')
        return cls(samples, stale_after_s)

    def speed_at(self, t_ns: int) -> float | None:
        i = bisect.bisect_right(self._t_ns, t_ns) - 1
        if i < 0 or t_ns - self._t_ns[i] > self._stale_ns:
            return None
        return self._speed[i]


class SpeedInbox:
    """What the subscriber does with each message, without the socket (so it can be tested on any bytes):
    validate, keep the newest valid sample by ``t_ns``, count and log what is rejected. Never raises.

    ``clock_ns``: the receiver's clock, the same CLOCK_MONOTONIC the gateway stamps with."""

    def __init__(self, topic: str, stale_after_s: float, clock_ns: Callable[[], int] = time.monotonic_ns,
                 log_interval_s: float = 5.0) -> None:
        self._topic = topic.encode()
        self._stale_ns = int(stale_after_s * 1e9)
        self._clock_ns = clock_ns
        self._warnings = RateLimited(log, interval_s=log_interval_s)
        self.latest: inputs.SpeedSample | None = None
        self.accepted = 0
        #: rejected messages by reason (``wrong_topic``, ``malformed``, ``wrong_type``, ``missing_field``,
        #: ``non_finite``, ``out_of_range``, ``implausible_time``)
        self.rejected: Counter[str] = Counter()

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def _body(self, frames: list[bytes]) -> bytes:
        if len(frames) >= 2 and frames[0] == self._topic:
            return frames[1]
        if len(frames) == 1 and frames[0].startswith(self._topic + b" "):
            return frames[0][len(self._topic) + 1:]
        # the SUB filter matches by prefix: "vehicle_other" arrives too
        raise inputs.InputRejected("wrong_topic", f"not a {self._topic.decode()!r} message")

    def offer(self, frames: list[bytes]) -> inputs.SpeedSample | None:
        """Take one received message; returns the sample if it was valid (it may still be older than the newest
        one kept, and then changes nothing)."""
        try:
            sample = inputs.speed_message(self._body(frames))
            inputs.check_plausible_time(sample.t_ns, self._clock_ns(), self._stale_ns)
        except inputs.InputRejected as exc:
            self._reject(exc.reason, str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 — live input must never stop the frame loop; counted and logged
            self._reject("internal", repr(exc))
            return None
        self.accepted += 1
        if self.latest is None or sample.t_ns >= self.latest.t_ns:
            self.latest = sample
        return sample

    def _reject(self, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        self._warnings.warning("speed_message_rejected", reason=reason, detail=detail[:200],
                               rejected=dict(self.rejected), accepted=self.accepted)

    def speed_at(self, t_ns: int) -> float | None:
        if self.latest is None:
            return None
        stamp_ns, speed = self.latest.t_ns, self.latest.speed_kmh
        if t_ns - stamp_ns > self._stale_ns or stamp_ns - t_ns > self._stale_ns:
            return None  # too old, or from a clock far ahead of the frames' (not comparable)
        return speed

    def stats(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejected": dict(self.rejected)}


class SpeedSubscriber:
    """ZeroMQ SUB connected to the vehicle gateway; :meth:`speed_at` drains what arrived without blocking."""

    def __init__(self, endpoint: str, topic: str, stale_after_s: float,
                 clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        import zmq

        self.inbox = SpeedInbox(topic, stale_after_s, clock_ns)
        self._context = zmq.Context.instance()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        # only the newest message matters and the frame loop drains the socket every frame: 100 queued messages
        # are seconds of a gateway's output. With MAXMSGSIZE this bounds what a broken or hostile gateway can make
        # us buffer (100 × 256 KiB); a message over 64 KiB is rejected unparsed, one over 256 KiB makes ZeroMQ drop
        # the connection (it reconnects), so the limit is well above what the length check rejects
        self._socket.setsockopt(zmq.RCVHWM, 100)
        self._socket.setsockopt(zmq.MAXMSGSIZE, 256 * 1024)
        self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close()
            raise errors.IMSError(errors.PUBLISH_ENDPOINT_INVALID, f"cannot connect speed SUB to {endpoint}: {exc}",
                                  "fix policy.speed.endpoint in the spec") from exc

    @property
    def rejected(self) -> Counter[str]:
        return self.inbox.rejected

    def poll(self) -> None:
        """Read every message waiting on the socket (non-blocking); keep the newest valid one by ``t_ns``."""
        import zmq

        while True:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError as exc:  # socket closed under us (shutdown): nothing more to read
                log.warning("speed_socket_error", error=str(exc))
                return
            self.inbox.offer(frames)

    def speed_at(self, t_ns: int) -> float | None:
        self.poll()
        return self.inbox.speed_at(t_ns)

    def stats(self) -> dict[str, Any]:
        return self.inbox.stats()

    def close(self) -> None:
        if self._socket is not None and not self._socket.closed:
            self._socket.close(linger=0)
