"""The boundary for values that come from outside: every external number, boolean, timestamp and text file is
parsed here, once, into a typed value — or rejected with a reason.

Who uses it: the vehicle-speed adapter (live ZeroMQ messages and replay files), the policy-replay signals reader
(:meth:`~ims_runtime.temporal.signals.FrameSignals.from_dict`), the ground-truth reader of ``eval-detector``, the
spec loader (reading the file) and the command-line options (``argparse`` types below).

Rules, the same everywhere:

* numbers must be JSON numbers (``true`` is not 1), finite (no NaN / ±Infinity: ``null`` says *not measured*) and
  inside the field's physical range;
* booleans must be JSON booleans (the string ``"false"`` is not false);
* timestamps are integer nanoseconds in ``[0, 2**63)``; a live message's stamp must also lie within a plausible
  window around the receiver's clock (:func:`check_plausible_time`), so one message from a broken clock cannot
  make every later message look old;
* text files must exist, be regular files, be readable and be UTF-8.

Live input (a message on a socket) is never allowed to raise out of the adapter: it is rejected, counted and
logged at a limited rate, and the value stays *unknown* — which the policy treats fail-safe. File input raises
:class:`~ims_runtime.errors.IMSError` naming ``file:line`` (:func:`file_error`).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ims_runtime import errors

#: timestamps are signed 64-bit nanoseconds on the wire (CLOCK_MONOTONIC); larger is not a time
T_NS_MAX = 2**63 - 1
#: above any road vehicle's speed: a larger value is a broken gateway, not a speed (km/h)
SPEED_KMH_MAX = 400.0
#: a speed message is tens of bytes; a longer one is not a speed message (and costs parsing time)
_JSON_MAX_BYTES = 64 * 1024


class InputRejected(ValueError):
    """An external value failed validation. ``reason`` is a short tag used for counting and log events:
    ``malformed``, ``wrong_type``, ``missing_field``, ``non_finite``, ``out_of_range``, ``implausible_time``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def strict_bool(value: Any, name: str) -> bool:
    """A JSON boolean; anything else (``"false"``, ``0``, ``null``) is rejected."""
    if isinstance(value, bool):
        return value
    raise InputRejected("wrong_type", f"{name} must be true or false, got {value!r}")


def finite_number(value: Any, name: str, min_value: float | None = None, max_value: float | None = None) -> float:
    """A finite JSON number within ``[min_value, max_value]`` (bounds inclusive; None = unbounded)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputRejected("wrong_type", f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer with hundreds of digits
        raise InputRejected("out_of_range", f"{name} is out of range") from None
    if not math.isfinite(number):
        raise InputRejected("non_finite", f"{name} must be finite, got {value!r} (use null for not measured)")
    if (min_value is not None and number < min_value) or (max_value is not None and number > max_value):
        if min_value is not None and max_value is not None:
            allowed = f"in [{min_value:g}, {max_value:g}]"
        else:
            allowed = f">= {min_value:g}" if min_value is not None else f"<= {max_value:g}"
        raise InputRejected("out_of_range", f"{name} must be {allowed}, got {number:g}")
    return number


def timestamp_ns(value: Any, name: str = "t_ns") -> int:
    """Integer nanoseconds in ``[0, 2**63)``. A float is accepted only when it is a whole number (some JSON
    writers print 1.7e18); ``1e400`` (infinite once parsed) is rejected, never an ``OverflowError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputRejected("wrong_type", f"{name} must be an integer (nanoseconds), got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputRejected("non_finite", f"{name} must be finite, got {value!r}")
        if not value.is_integer():
            raise InputRejected("wrong_type", f"{name} must be a whole number of nanoseconds, got {value!r}")
        value = int(value)
    if not 0 <= value <= T_NS_MAX:
        raise InputRejected("out_of_range", f"{name} must be in [0, 2**63), got {value}")
    return value


def check_plausible_time(t_ns: int, now_ns: int, window_ns: int, name: str = "t_ns") -> int:
    """``t_ns`` must be within ``window_ns`` of the receiver's clock ``now_ns`` (same clock); else rejected."""
    if abs(t_ns - now_ns) > window_ns:
        ahead = "ahead of" if t_ns > now_ns else "behind"
        raise InputRejected("implausible_time", f"{name} is {abs(t_ns - now_ns) / 1e9:.3g} s {ahead} the "
                            f"receiver's clock (allowed ±{window_ns / 1e9:g} s)")
    return t_ns


def json_value(text: str | bytes, max_bytes: int | None = None) -> Any:
    """Parse JSON. Raises :class:`InputRejected` (``malformed``) on anything that is not JSON, including bytes
    that are not UTF-8 and nesting deep enough to exhaust the parser. ``NaN`` / ``Infinity`` literals (which
    Python's writer emits) parse as floats so that the field they are in rejects them *by name*."""
    if max_bytes is not None and len(text) > max_bytes:
        raise InputRejected("malformed", f"message of {len(text)} bytes is longer than {max_bytes}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InputRejected("malformed", f"not JSON: {exc}") from None


# ---------------------------------------------------------------------------------------------- vehicle speed


@dataclass(frozen=True)
class SpeedSample:
    """One vehicle speed reading: ``speed_kmh`` (km/h, 0..400) stamped ``t_ns`` (CLOCK_MONOTONIC ns)."""

    t_ns: int
    speed_kmh: float


def speed_sample(data: Any) -> SpeedSample:
    """``{"t_ns": ..., "speed_kmh": ...}`` (other keys are ignored: gateways may add theirs)."""
    if not isinstance(data, dict):
        raise InputRejected("wrong_type", f"expected a JSON object, got {type(data).__name__}")
    missing = [key for key in ("t_ns", "speed_kmh") if key not in data]
    if missing:
        raise InputRejected("missing_field", f"missing {', '.join(missing)}")
    return SpeedSample(timestamp_ns(data["t_ns"]),
                       finite_number(data["speed_kmh"], "speed_kmh", 0.0, SPEED_KMH_MAX))


def speed_message(body: bytes) -> SpeedSample:
    """One speed message body as it arrives on the socket (UTF-8 JSON)."""
    return speed_sample(json_value(body, _JSON_MAX_BYTES))


# ---------------------------------------------------------------------------------------------- files


def file_error(path: Path | str, line: int | None, problem: object,
               code: errors.ErrorCode = errors.SOURCE_UNREADABLE, hint: str | None = None) -> errors.IMSError:
    """The coded error for a bad value in a file: ``PATH:LINE: what is wrong`` (``problem``: a message or the
    :class:`InputRejected` itself)."""
    where = f"{path}:{line}" if line is not None else str(path)
    return errors.IMSError(code, f"{where}: {problem}", hint)


def check_readable_file(path: Path, what: str, not_found: errors.ErrorCode = errors.SOURCE_NOT_FOUND,
                        unreadable: errors.ErrorCode = errors.SOURCE_UNREADABLE) -> Path:
    """``path`` exists, is a regular file and can be opened for reading; else a coded error that says which."""
    path = Path(path)
    if path.is_dir():
        raise errors.IMSError(unreadable, f"{what} {path} is a directory, not a file", f"pass the {what} itself")
    if not path.exists():
        raise errors.IMSError(not_found, f"{what} {path} does not exist", "check the path")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise errors.IMSError(unreadable, f"cannot read {what} {path}: {exc.strerror or exc}",
                              "check the file's permissions") from exc
    return path


def read_text(path: Path, what: str, not_found: errors.ErrorCode = errors.SOURCE_NOT_FOUND,
              unreadable: errors.ErrorCode = errors.SOURCE_UNREADABLE) -> str:
    """The whole file as UTF-8 text, or a coded error (missing, a directory, permission denied, not UTF-8 —
    naming the line of the first bad byte)."""
    check_readable_file(path, what, not_found, unreadable)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise errors.IMSError(unreadable, f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise errors.IMSError(unreadable, f"{path}:{line}: {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} "
                              f"at offset {exc.start})", "save the file as UTF-8") from exc


def text_lines(path: Path, what: str) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` for each line of a UTF-8 file, streamed (signal files can be long); a line that
    is not UTF-8 raises a coded error naming it."""
    check_readable_file(path, what)
    with Path(path).open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise errors.IMSError(errors.SOURCE_UNREADABLE, f"{path}:{number}: not UTF-8 text (byte "
                                      f"0x{raw[exc.start]:02x})", "save the file as UTF-8") from exc


# ---------------------------------------------------------------------------------------------- CLI options


def cli_number(min_value: float | None = None, max_value: float | None = None,
               integer: bool = False) -> Callable[[str], float | int]:
    """An ``argparse`` ``type=`` that accepts a finite number in range (``nan``, ``inf``, ``-5`` where a count
    is expected are refused with a one-line usage error, exit 2)."""
    def parse(text: str) -> float | int:
        try:
            value: float | int = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if integer else 'a number'}, "
                                             f"got {text!r}") from None
        try:
            finite_number(value, "value", min_value, max_value)
        except InputRejected as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("value ")) from None
        return value

    parse.__name__ = "integer" if integer else "number"  # argparse names the type in its messages
    return parse


def cli_list(item: Callable[[str], Any], separator: str = ",") -> Callable[[str], list[Any]]:
    """An ``argparse`` ``type=`` for a comma-separated list whose items ``item`` parses (blank items skipped);
    a bad item is a usage error naming it."""
    def parse(text: str) -> list[Any]:
        return [item(part.strip()) for part in text.split(separator) if part.strip()]

    parse.__name__ = "list"
    return parse


def cli_size_px(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` in pixels, each 32..4096 (an ``argparse`` type)."""
    width, sep, height = text.lower().partition("x")
    try:
        size = (int(width), int(height)) if sep else None
    except ValueError:
        size = None
    if size is None or not all(32 <= v <= 4096 for v in size):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels (32..4096 each), got {text!r}")
    return size
