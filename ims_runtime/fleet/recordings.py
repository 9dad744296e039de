"""What a fleet run replays: the recordings of a folder or of a manifest, each with a stable name and a content
hash (so a rerun can tell unchanged recordings from changed ones, whatever their paths or timestamps)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ims_runtime import errors
from ims_runtime.paths import sha256_file

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}


@dataclass(frozen=True)
class Recording:
    """``name``: unique within the fleet run, used as the folder of its outputs (``DIR/recordings/NAME``)."""

    path: Path
    name: str


def content_sha256(path: Path) -> str:
    """sha256 of a recording's bytes: the file's, or for an image folder the hash of its (name, file hash) list."""
    path = Path(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for item in sorted(p for p in path.iterdir() if p.is_file()):
            digest.update(f"{item.name}\0{sha256_file(item)}\n".encode())
        return digest.hexdigest()
    return sha256_file(path)


def _name(path: Path, root: Path) -> str:
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        relative = Path(path.name)
    return "__".join(relative.parts)


def list_recordings(source: Path) -> list[Recording]:
    """The recordings of ``source``: a folder (its video files, sorted by name) or a manifest (a text file with
    one recording per line, a video file or an image folder, relative to the manifest; ``#`` starts a comment)."""
    source = Path(source)
    if source.is_dir():
        paths = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        root = source
        if not paths:
            raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"no video file ({', '.join(sorted(VIDEO_SUFFIXES))}) "
                                  f"in {source}", "give a folder of recordings or a manifest (one path per line)")
    elif source.is_file():
        root = source.parent
        paths = []
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            path = Path(entry).expanduser()
            path = path if path.is_absolute() else root / path
            if not path.exists():
                raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"{source} line {number}: {path} does not exist",
                                      "fix the manifest line or remove it")
            paths.append(path)
        if not paths:
            raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"manifest {source} lists no recording",
                                  "one video file or image folder per line")
    else:
        raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"{source} does not exist",
                              "give a folder of recordings or a manifest file")
    recordings: list[Recording] = []
    seen: dict[str, int] = {}
    for path in paths:
        name = _name(path, root)
        seen[name] = seen.get(name, 0) + 1
        recordings.append(Recording(path, name if seen[name] == 1 else f"{name}__{seen[name]}"))
    return recordings
