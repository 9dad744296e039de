"""Atomic file outputs: written to a temporary file in the target directory and renamed into place on success.

One helper for everyone (runtime outputs, the backend's context cache, the toolchain's artefacts and manifests),
so that a crash, an error or a signal never leaves a half-written file under the real name. The rename is atomic
because the temporary file lives in the same directory (same filesystem) as the target.

``SIGTERM`` is Python's default action (terminate without unwinding), so a long-running writer that must clean up
on ``SIGTERM`` installs :func:`raise_on_sigterm` around its work: the signal then unwinds the stack like
``KeyboardInterrupt`` does, and the ``finally`` below removes the temporary file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ims_runtime import errors

#: permissions of a finished file: artefacts and outputs are meant to be read by other users (mkstemp makes 0600)
FILE_MODE = 0o644


def check_output_path(path: Path, what: str = "output") -> Path:
    """Fail before any work starts when ``path`` cannot become a file: it is a directory, or its directory is
    missing (and cannot be made) or not writable. Returns the path. Raises :class:`errors.IMSError`
    (``OUTPUT_UNWRITABLE``) naming the path and what to do."""
    path = Path(path)
    if path.is_dir():
        raise errors.IMSError(errors.OUTPUT_UNWRITABLE, f"{what} {path} is a directory",
                              "give a file name, e.g. " + str(path / "out.jsonl"))
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise errors.IMSError(errors.OUTPUT_UNWRITABLE, f"cannot create the directory of {what} {path}: "
                              f"{exc.strerror or exc}", "choose a writable location") from exc
    if not os.access(parent, os.W_OK | os.X_OK):
        raise errors.IMSError(errors.OUTPUT_UNWRITABLE, f"{what} directory {parent} is not writable",
                              "choose a writable location or fix its permissions")
    return path


@contextlib.contextmanager
def atomic_output(path: Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; rename it to ``path`` when the block ends normally,
    remove it when the block raises (any exception, ``KeyboardInterrupt`` and :class:`Terminated` included).

    ``mode`` is ``"w"`` (text, ``encoding``) or ``"wb"`` (bytes)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """``path`` holds exactly ``data`` afterwards, or is untouched (never a partial write)."""
    with atomic_output(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_output(path, "w") as handle:
        handle.write(text)


class Terminated(BaseException):
    """Raised in the main thread by :func:`raise_on_sigterm` (a BaseException, like KeyboardInterrupt, so
    ``except Exception`` blocks do not swallow it)."""


@contextlib.contextmanager
def raise_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (so ``finally`` clauses run and temporary files are
    removed); the previous handler is restored afterwards. Main thread only (Python delivers signals there)."""
    def _raise(signum: int, _frame: object) -> None:
        raise Terminated(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, _raise)
    except ValueError:  # not the main thread: signals cannot be handled here, run the block as it is
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
