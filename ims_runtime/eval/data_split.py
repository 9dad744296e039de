"""A deterministic two-way split of an evaluation set: one part may steer decisions, the other is only reported.

Why: the accuracy-aware mixed-precision search picks which layers stay float by the accuracy it measures; if the
report then quotes the accuracy on the same images, the quoted drop is selected on its own test data and is
optimistic. Every image is assigned by a hash of its *file name* (not its position, not its content), so the
assignment is the same on every machine and in every run, does not depend on the order of the ground-truth file,
and an image added later does not move any other image between the parts.

``part_of(name) == "search"`` when the first 8 bytes of ``sha256(salt + "/" + basename)`` read as an integer are
below ``search_share * 2**64``; otherwise ``"report"``. Changing ``salt`` draws a new, independent split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal, TypeVar

Part = Literal["search", "report"]
PARTS: tuple[Part, ...] = ("search", "report")

T = TypeVar("T")


@dataclass(frozen=True)
class HashSplit:
    """``search_share``: the fraction (0..1) of images the search may see; ``salt``: names the split."""

    search_share: float = 0.5
    salt: str = "ims-wider-split-v1"

    def __post_init__(self) -> None:
        if not 0.0 < self.search_share < 1.0:
            raise ValueError(f"search_share must lie strictly between 0 and 1, got {self.search_share}")

    def part_of(self, name: str) -> Part:
        """The part ``name`` (a path or file name; only the file name counts) belongs to."""
        digest = hashlib.sha256(f"{self.salt}/{PurePath(name).name}".encode()).digest()
        return "search" if int.from_bytes(digest[:8], "big") < self.search_share * 2**64 else "report"

    def select(self, items: Iterable[T], part: Part, name: Callable[[T], str]) -> list[T]:
        """The items of ``part``, in their original order. ``name(item)`` gives the item's file name."""
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}")
        return [item for item in items if self.part_of(name(item)) == part]
