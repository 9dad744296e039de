"""Synthetic per-frame eye-openness sequences with a known sleepiness level (KSS 1..9).

No KSS-labelled drives are available to the project, so the classifier is trained on sequences generated from
published relationships between self-rated sleepiness and eye behaviour. The *directions* and rough magnitudes
come from the literature below; the exact tables are this project's assumptions, chosen inside the reported
ranges, and are what the classifier learns — an OEM with KSS-labelled drives retrains on those instead
(docs/policy.md).

Sources
-------
* KSS, the 1–9 scale itself: Åkerstedt T., Gillberg M. (1990) "Subjective and objective sleepiness in the
  active individual", Int J Neurosci 52:29–37.
* Blink duration rises with KSS: Ingre M., Åkerstedt T., Peters B., Anund A., Kecklund G. (2006) "Subjective
  sleepiness, simulated driving performance and blink duration: examining individual differences", J Sleep Res
  15:47–53; Schleicher R., Galley N., Briest S., Galley L. (2008) "Blinks and saccades as indicators of fatigue
  in sleepiness warnings: looking tired?", Ergonomics 51:982–1010; Caffier P.P., Erdmann U., Ullsperger P.
  (2003) "Experimental evaluation of eye-blink parameters as a drowsiness measure", Eur J Appl Physiol
  89:319–325. Alert ≈ 100–150 ms, drowsy often > 200–300 ms (../shared/docs/dms-requirements.md).
* Blink rate rises with time on task / fatigue: Stern J.A., Boyer D., Schroeder D. (1994) "Blink rate: a
  possible measure of fatigue", Human Factors 36:285–297.
* PERCLOS (share of time ≥ 80 % closed) tracks lapses; > 0.15 over a minute is widely used as drowsy:
  Wierwille W.W. et al. (1994) NHTSA DOT HS 808 247; Dinges D.F., Grace R. (1998) "PERCLOS: a valid
  psychophysiological measure of alertness as assessed by psychomotor vigilance", FHWA-MCRT-98-006.
* Closures ≥ 500 ms (microsleeps / long closures) appear as sleepiness approaches KSS 8–9 (Ingre et al. 2006;
  Schleicher et al. 2008).

Realism added on purpose: per-driver variation of every rate and duration, measurement noise, spurious
single-frame errors, dropped frames, face-lost gaps, timestamp jitter and several frame rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ims_runtime.stages.fatigue import LEVELS, level_for_kss

# KSS → behaviour tables (interpolated linearly; see the module docstring for where the shapes come from)
KSS_POINTS = np.array([1.0, 5.0, 6.0, 7.0, 8.0, 9.0])
#: mean duration of ordinary blinks, milliseconds
BLINK_MS = np.array([110.0, 140.0, 165.0, 200.0, 250.0, 320.0])
#: ordinary blinks per minute
BLINK_RATE_PER_MIN = np.array([14.0, 17.0, 18.0, 20.0, 22.0, 24.0])
#: long closures (0.5 s and longer) per minute
LONG_CLOSURES_PER_MIN = np.array([0.0, 0.0, 0.1, 0.6, 1.6, 3.2])
#: longest long closure, seconds (durations are uniform between 0.5 s and this)
LONG_CLOSURE_MAX_S = np.array([1.0, 1.0, 1.0, 1.5, 2.2, 3.0])
#: lid droop: the open level falls by this much (0..1 openness)
DROOP = np.array([0.0, 0.0, 0.02, 0.05, 0.10, 0.15])


def level_index(kss: float) -> int:
    """Ground-truth class of a KSS value, the runtime's own boundaries: 0 alert, 1 drowsy, 2 severe."""
    return LEVELS.index(level_for_kss(kss))


@dataclass(frozen=True)
class GeneratorConfig:
    duration_s: float = 65.0
    fps_choices: tuple[float, ...] = (10.0, 15.0, 20.0, 25.0, 30.0)
    timestamp_jitter_ms: float = 3.0
    max_drop_rate: float = 0.15
    gap_probability: float = 0.4
    max_gaps: int = 3
    gap_s: tuple[float, float] = (0.5, 8.0)
    openness_noise: float = 0.06
    spurious_rate: float = 0.01
    #: per-driver spread of rates and durations (lognormal sigma)
    driver_sigma: float = 0.2


@dataclass
class Sequence:
    """One generated stretch of driving: frames (t_ns, openness with NaN where the face was lost)."""

    t_ns: np.ndarray
    openness: np.ndarray
    kss: float
    fps: float

    @property
    def level(self) -> int:
        return level_index(self.kss)


def _closure_intervals(rng: np.random.Generator, kss: float, duration_s: float,
                       sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping eye closures (start_s, end_s) for one driver at one sleepiness level."""
    blink_rate = np.interp(kss, KSS_POINTS, BLINK_RATE_PER_MIN) * rng.lognormal(0, sigma)
    long_rate = np.interp(kss, KSS_POINTS, LONG_CLOSURES_PER_MIN) * rng.lognormal(0, sigma)
    blink_s = np.interp(kss, KSS_POINTS, BLINK_MS) / 1000 * rng.lognormal(0, sigma * 0.75)
    long_max_s = np.interp(kss, KSS_POINTS, LONG_CLOSURE_MAX_S)
    total_rate_per_s = (blink_rate + long_rate) / 60.0
    p_long = long_rate / (blink_rate + long_rate)
    starts, ends = [], []
    t_s = rng.uniform(0, 60.0 / max(blink_rate, 1.0))
    while t_s < duration_s:
        if rng.random() < p_long:
            length_s = rng.uniform(0.5, max(0.51, long_max_s))
        else:
            length_s = float(np.clip(rng.lognormal(np.log(blink_s), 0.3), 0.05, 0.45))
        starts.append(t_s)
        ends.append(t_s + length_s)
        t_s += length_s + 0.15 + rng.exponential(1.0 / total_rate_per_s)
    return np.array(starts), np.array(ends)


def generate(rng: np.random.Generator, kss: float, config: GeneratorConfig | None = None) -> Sequence:
    """One sequence of ``config.duration_s`` seconds for a random driver at sleepiness ``kss``."""
    c = config or GeneratorConfig()
    fps = float(rng.choice(c.fps_choices))
    t_s = np.arange(0.0, c.duration_s, 1.0 / fps)
    t_s = t_s + rng.normal(0, c.timestamp_jitter_ms / 1000, t_s.size)
    keep = rng.random(t_s.size) >= rng.uniform(0, c.max_drop_rate)
    t_s = np.sort(t_s[keep & (t_s > 0)])
    starts, ends = _closure_intervals(rng, kss, c.duration_s, c.driver_sigma)
    idx = np.searchsorted(starts, t_s, side="right") - 1
    closed = (idx >= 0) & (t_s < ends[np.maximum(idx, 0)])
    open_level = rng.uniform(0.75, 1.0) - np.interp(kss, KSS_POINTS, DROOP)
    openness = np.where(closed, rng.normal(0.05, 0.03, t_s.size),
                        rng.normal(open_level, c.openness_noise, t_s.size))
    spurious = rng.random(t_s.size) < c.spurious_rate
    openness[spurious] = rng.random(int(spurious.sum()))
    openness = np.clip(openness, 0.0, 1.0)
    if rng.random() < c.gap_probability:  # face lost (hand, turned head, sun): no eye data
        for _ in range(rng.integers(1, c.max_gaps + 1)):
            gap_start = rng.uniform(0, c.duration_s)
            lost = (t_s >= gap_start) & (t_s < gap_start + rng.uniform(*c.gap_s))
            openness[lost] = np.nan
    t_ns = np.round(t_s * 1e9).astype(np.int64)
    # jitter could tie two timestamps after rounding; the runtime rejects non-increasing times
    unique = np.concatenate([[True], np.diff(t_ns) > 0])
    return Sequence(t_ns=t_ns[unique], openness=openness[unique].astype(np.float32), kss=float(kss), fps=fps)


def sample_kss(rng: np.random.Generator) -> float:
    """KSS drawn so the three classes are roughly balanced (half the draws from KSS 6–9)."""
    return float(rng.uniform(1.0, 9.0) if rng.random() < 0.5 else rng.uniform(6.0, 9.0))
