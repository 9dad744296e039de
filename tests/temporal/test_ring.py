"""Time-binned ring buffer: bins by timestamp, gaps stay empty, and the vectorised twin agrees with it."""

from __future__ import annotations

import numpy as np
import pytest

from ims_runtime.temporal.ring import TimeBinRing, bin_series

NS = 1_000_000_000


def test_samples_average_within_a_bin_and_empty_bins_are_invalid():
    ring = TimeBinRing(window_s=1.0, bin_s=0.1, channels=1)
    ring.add(0, [1.0])
    ring.add(50_000_000, [0.0])   # same 100 ms bin
    ring.add(350_000_000, [1.0])  # bins 1, 2 stay empty (dropped frames)
    means, valid = ring.window(350_000_000)
    assert valid.tolist()[-4:] == [True, False, False, True]
    assert means[-4, 0] == pytest.approx(0.5) and means[-1, 0] == 1.0
    assert valid.sum() == 2


def test_bins_older_than_the_window_are_forgotten_when_their_slot_is_reused():
    ring = TimeBinRing(window_s=1.0, bin_s=0.1, channels=1)
    ring.add(0, [1.0])
    ring.add(2 * NS, [0.0])  # 2 s later: the first sample is out of the window
    means, valid = ring.window(2 * NS)
    assert valid.sum() == 1 and means[valid, 0].tolist() == [0.0]
    # slot 0 is reused by bin 20; asking for the window at 0.05 s must not return bin 20's data as bin 0's
    assert not ring.window(50_000_000)[1].any()


@pytest.mark.parametrize("fps", [10.0, 24.0, 30.0, 60.0])
def test_vectorised_binning_equals_the_incremental_ring(fps):
    rng = np.random.default_rng(int(fps))
    t_ns = np.sort(rng.choice(np.arange(0, 70 * NS, int(NS / fps)), size=int(60 * fps), replace=False))
    values = rng.random((t_ns.size, 2))
    ring = TimeBinRing(window_s=60.0, bin_s=0.05, channels=2)
    for t, v in zip(t_ns.tolist(), values):
        ring.add(t, v)
    end = int(t_ns[-1])
    want_means, want_valid = ring.window(end)
    got_means, got_valid = bin_series(t_ns, values, end, 60.0, 0.05)
    np.testing.assert_array_equal(got_valid, want_valid)
    np.testing.assert_allclose(got_means, want_means, atol=1e-6)
