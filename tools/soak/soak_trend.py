"""Growth checks for the soak's sampled series (RSS, open fds, pool sockets, ...).

A leak shows as a series whose level keeps rising after the process has warmed up. Two checks,
both over the samples after the warm-up; a series passes only if it passes both:

  - trend: the Theil-Sen line through the samples must not rise by more than `max_rise` over
    the measured span (slope * span). A fixed allowance over the span, rather than a fixed
    slope, keeps the check meaningful for short CI runs and long soaks alike;
  - windows: the level of the last third of the samples must not exceed the level of the first
    third by more than `max_rise`. This catches a late step that the trend could smooth over.

The series are not smooth, so both checks are robust to brief excursions:

  - fds and pool sockets dip at every backend restart, because the broken sockets are closed
    and then replaced. Their level is the peak of a window: a leaked descriptor raises the
    peaks, and a dip does not lower them. A least-squares fit would turn dips near the start
    or end of a short run into a trend;
  - RSS spikes. At some backend restarts the broker's RSS jumps by 10-40 MiB for about 10 s and
    then falls back over 10-60 s. A 600 s soak saw 5 such bursts in 59 restarts, not tied to how
    many calls failed. The level of RSS is the minimum of a window (its baseline): a leak raises
    the baseline, and a burst does not. A window is a third of the run, longer than a burst and
    its decay.

The trend is the Theil-Sen slope: the median of the slopes between all pairs of samples. It
ignores up to 29% of outlying samples, such as the dips or a burst.

These are pure functions over lists of numbers, so the unit test can feed synthetic series
(tests/soak/soak_checks_test.py).
"""

import statistics
from dataclasses import dataclass
from typing import List, Optional, Sequence


@dataclass(frozen=True)
class Limit:
    """How much a series may rise after the warm-up, in its own unit."""

    name: str      # what the failure message calls the series, e.g. "rss_kib"
    unit: str      # e.g. "KiB", "fds"
    max_rise: float
    # A window's level: "peak" (max) for series that dip, "floor" (min) for series that spike.
    level: str = "peak"


def theil_sen_slope(xs: Sequence[float], ys: Sequence[float], max_points: int = 400) -> float:
    """Median of the slopes between all pairs of points (at most `max_points`, evenly chosen, so
    an hour-long soak stays fast); 0 for fewer than two distinct x values."""
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)} x values but {len(ys)} y values")
    if len(xs) > max_points:
        step = len(xs) / max_points
        picks = [int(i * step) for i in range(max_points)]
        xs = [xs[i] for i in picks]
        ys = [ys[i] for i in picks]
    slopes = [(ys[j] - ys[i]) / (xs[j] - xs[i])
              for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[j] != xs[i]]
    return statistics.median(slopes) if slopes else 0.0


def window_size(samples: int) -> int:
    """A third of the measured samples, at least 3 (or all of them when fewer)."""
    return min(samples, max(3, samples // 3))


def check_growth(limit: Limit, times: Sequence[float], values: Sequence[float],
                 warmup_seconds: float) -> Optional[str]:
    """None when the series shows no growth beyond `limit`, else why it failed."""
    if len(times) != len(values):
        raise ValueError(f"{limit.name}: {len(times)} times but {len(values)} values")
    if limit.level not in ("peak", "floor"):
        raise ValueError(f"{limit.name}: level must be peak or floor, not {limit.level!r}")
    if not times:
        return f"{limit.name}: no samples"
    start = times[0] + warmup_seconds
    pts = [(t, v) for t, v in zip(times, values) if t >= start]
    if len(pts) < 9:
        return (f"{limit.name}: only {len(pts)} samples after the {warmup_seconds:.0f} s "
                f"warm-up; run the soak longer")
    xs = [t for t, _ in pts]
    ys = [v for _, v in pts]
    span = xs[-1] - xs[0]
    slope = theil_sen_slope(xs, ys)
    rise = slope * span
    if rise > limit.max_rise:
        return (f"{limit.name} grew: the trend (Theil-Sen) rises {rise:.1f} {limit.unit} over "
                f"{span:.0f} s ({slope:.3f} {limit.unit}/s), more than the "
                f"{limit.max_rise:g} {limit.unit} allowed")
    w = window_size(len(ys))
    level = max if limit.level == "peak" else min
    first = level(ys[:w])
    last = level(ys[-w:])
    if last - first > limit.max_rise:
        return (f"{limit.name} grew: the {limit.level} of the last {w} samples is {last:g} "
                f"{limit.unit}, {last - first:g} above the {limit.level} of the first {w} "
                f"({first:g}), more than the {limit.max_rise:g} {limit.unit} allowed")
    return None


def check_all(limits: Sequence[Limit], times: Sequence[float], series: dict,
              warmup_seconds: float) -> List[str]:
    """Every failure over `series` (name -> values), one message per grown series."""
    failures = []
    for limit in limits:
        message = check_growth(limit, times, series[limit.name], warmup_seconds)
        if message:
            failures.append(message)
    return failures
