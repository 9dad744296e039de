"""Time-binned ring buffers: per-frame samples land in fixed-width time bins chosen by their timestamp.

Indexing by ``t_ns // bin_ns`` (not by frame count) makes every window mean the same span of time whatever the
frame rate, and dropped frames or face-lost gaps simply leave bins empty (``valid == False``) instead of being
filled with invented values. :func:`bin_series` is the vectorised equivalent the training code uses on whole
generated sequences, so the network sees exactly what the runtime feeds it.
"""

from __future__ import annotations

import numpy as np


class TimeBinRing:
    """The last ``n_bins`` bins of ``bin_s`` seconds, each holding the mean of the samples that fell into it.

    ``add`` is O(channels); ``window`` returns the bins oldest → newest ending at a given time.
    """

    def __init__(self, window_s: float, bin_s: float, channels: int) -> None:
        if bin_s <= 0 or window_s < bin_s:
            raise ValueError("need 0 < bin_s <= window_s")
        self.bin_ns = round(bin_s * 1e9)
        self.n_bins = round(window_s / bin_s)
        self.channels = channels
        self._sums = np.zeros((self.n_bins, channels), dtype=np.float64)
        self._counts = np.zeros(self.n_bins, dtype=np.int64)
        #: absolute bin number each slot currently holds (-1 = never written)
        self._bin_id = np.full(self.n_bins, -1, dtype=np.int64)

    def add(self, t_ns: int, values: np.ndarray | list[float]) -> None:
        """Add one sample (``channels`` values) at time ``t_ns``."""
        absolute = t_ns // self.bin_ns
        slot = absolute % self.n_bins
        if self._bin_id[slot] != absolute:  # the slot holds an older bin: recycle it
            self._bin_id[slot] = absolute
            self._sums[slot] = 0.0
            self._counts[slot] = 0
        self._sums[slot] += values
        self._counts[slot] += 1

    def window(self, end_t_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """Bins covering ``(end_t_ns - window, end_t_ns]``: means ``(n_bins, channels)`` float32 (0 where empty)
        and ``valid`` ``(n_bins,)`` bool, oldest first."""
        sums, counts, valid = self._window(end_t_ns)
        means = np.where(valid[:, None], sums / np.maximum(counts, 1)[:, None], 0.0)
        return means.astype(np.float32), valid

    def window_sums(self, end_t_ns: int) -> np.ndarray:
        """Per-channel totals over the window, ``(channels,)`` float64 (for durations accumulated per bin)."""
        sums, _, valid = self._window(end_t_ns)
        return sums[valid].sum(axis=0)

    def _window(self, end_t_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        last = end_t_ns // self.bin_ns
        wanted = np.arange(last - self.n_bins + 1, last + 1, dtype=np.int64)
        slots = wanted % self.n_bins
        valid = (self._bin_id[slots] == wanted) & (self._counts[slots] > 0)
        return self._sums[slots], self._counts[slots], valid

    def clear(self) -> None:
        self._bin_id[:] = -1
        self._counts[:] = 0
        self._sums[:] = 0.0


def bin_series(t_ns: np.ndarray, values: np.ndarray, end_t_ns: int, window_s: float,
               bin_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :meth:`TimeBinRing.window` for a whole recorded series.

    ``t_ns`` (N,) int64, ``values`` (N, C). Returns the same ``(means (n_bins, C) float32, valid (n_bins,))``
    that a ring fed with these samples one by one would return at ``end_t_ns``.
    """
    bin_ns = round(bin_s * 1e9)
    n_bins = round(window_s / bin_s)
    last = end_t_ns // bin_ns
    index = t_ns // bin_ns - (last - n_bins + 1)
    keep = (index >= 0) & (index < n_bins)
    index = index[keep]
    vals = np.asarray(values, dtype=np.float64)[keep]
    counts = np.bincount(index, minlength=n_bins)
    sums = np.stack([np.bincount(index, weights=vals[:, c], minlength=n_bins) for c in range(vals.shape[1])],
                    axis=1) if vals.shape[1] else np.zeros((n_bins, 0))
    valid = counts > 0
    means = np.where(valid[:, None], sums / np.maximum(counts, 1)[:, None], 0.0)
    return means.astype(np.float32), valid
