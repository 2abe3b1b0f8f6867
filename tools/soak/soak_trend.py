"""Growth checks for the soak's sampled series (RSS, open fds, pool sockets, ...).

A leak shows as a series that keeps rising after the process has warmed up. Two checks, both
over the samples after the warm-up, and a series passes only if it passes both:

  - slope: the least-squares line through the samples must not rise by more than
    `max_rise` over the measured span (slope * span). A fixed allowance over the span, rather
    than a fixed slope, keeps the check meaningful for short CI runs and long soaks alike;
  - windows: the maximum of the last window must not exceed the maximum of the first window
    by more than `max_rise`. This catches a late step that a long flat start hides from the
    slope, and ignores the sawtooth of sockets dropped and refilled around backend restarts
    because both windows see a full pool.

Pure functions over lists of numbers, so the unit test can feed synthetic series
(tests/soak/soak_trend_test.py).
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence


@dataclass(frozen=True)
class Limit:
    """How much a series may rise after the warm-up, in its own unit."""

    name: str      # what the failure message calls the series, e.g. "broker RSS"
    unit: str      # e.g. "KiB", "fds"
    max_rise: float


def least_squares_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Slope of the least-squares line through (xs, ys); 0 for fewer than two points."""
    n = len(xs)
    if n != len(ys):
        raise ValueError(f"{n} x values but {len(ys)} y values")
    if n < 2:
        return 0.0
    mean_x = sum(xs) / n
    mean_y = sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
    return sxy / sxx


def window_size(samples: int) -> int:
    """A fifth of the measured samples, at least 3 (or all of them when fewer)."""
    return min(samples, max(3, samples // 5))


def check_growth(limit: Limit, times: Sequence[float], values: Sequence[float],
                 warmup_seconds: float) -> Optional[str]:
    """None when the series shows no growth beyond `limit`, else why it failed."""
    if len(times) != len(values):
        raise ValueError(f"{limit.name}: {len(times)} times but {len(values)} values")
    if not times:
        return f"{limit.name}: no samples"
    start = times[0] + warmup_seconds
    pts = [(t, v) for t, v in zip(times, values) if t >= start]
    if len(pts) < 6:
        return (f"{limit.name}: only {len(pts)} samples after the {warmup_seconds:.0f} s "
                f"warm-up; run the soak longer")
    xs = [t for t, _ in pts]
    ys = [v for _, v in pts]
    span = xs[-1] - xs[0]
    slope = least_squares_slope(xs, ys)
    rise = slope * span
    if rise > limit.max_rise:
        return (f"{limit.name} grew: the least-squares trend rises {rise:.1f} {limit.unit} over "
                f"{span:.0f} s ({slope:.3f} {limit.unit}/s), more than the "
                f"{limit.max_rise:g} {limit.unit} allowed")
    w = window_size(len(ys))
    first_max = max(ys[:w])
    last_max = max(ys[-w:])
    if last_max - first_max > limit.max_rise:
        return (f"{limit.name} grew: the last {w} samples peak at {last_max:g} {limit.unit}, "
                f"{last_max - first_max:g} above the first {w} samples' peak of {first_max:g}, "
                f"more than the {limit.max_rise:g} {limit.unit} allowed")
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
