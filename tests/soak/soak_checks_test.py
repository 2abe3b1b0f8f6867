"""The soak's checks must be able to fail: synthetic series that grow, and failures counted
while the backend was up, are caught; the shapes a healthy soak produces pass.

Run by ctest (soak_checks_test) with tools/soak on PYTHONPATH.
"""

import random
import unittest

import soak_checks
import soak_metrics
from soak_trend import Limit, check_all, check_growth, theil_sen_slope

# As soak.py checks them: fds and sockets by their peaks, RSS by its floor.
FD_LIMIT = Limit("fds", "fds", 6)
RSS_LIMIT = Limit("rss_kib", "KiB", 4096, level="floor")


def seconds(n):
    return [float(t) for t in range(1, n + 1)]


def restart_sawtooth(times, base=26, dip=18, every=10):
    """fds or sockets: full, except the two samples after each backend restart."""
    return [float(dip if int(t) % every in (0, 1) else base) for t in times]


def bursty_rss(times):
    """28 MiB with bursts like those seen at restarts in a 600 s soak (soak_trend.py): +40 MiB
    for 10 s at 100 s, falling back at once; +20 MiB for 10 s at 150 s, then down from +11 MiB
    over 40 s."""
    rss = []
    for t in times:
        v = 28000.0
        if 100 <= t < 110:
            v = 69000.0
        if 150 <= t < 160:
            v = 48000.0
        elif 160 <= t < 200:
            v = 28000.0 + 11000.0 * (200 - t) / 40
        rss.append(v)
    return rss


class TheilSenSlope(unittest.TestCase):
    def test_slope_of_a_line_is_exact(self):
        xs = seconds(50)
        self.assertAlmostEqual(theil_sen_slope(xs, [3 * x + 7 for x in xs]), 3.0)

    def test_a_burst_and_restart_dips_do_not_tilt_it(self):
        xs = seconds(100)
        flat_with_burst = [30000.0] * 100
        for i in range(80, 92):
            flat_with_burst[i] = 60000.0
        self.assertAlmostEqual(theil_sen_slope(xs, flat_with_burst), 0.0)
        self.assertAlmostEqual(theil_sen_slope(xs, restart_sawtooth(xs)), 0.0)

    def test_long_series_are_subsampled_and_still_exact(self):
        xs = seconds(3000)
        self.assertAlmostEqual(theil_sen_slope(xs, [0.5 * x for x in xs]), 0.5)

    def test_degenerate_inputs_have_zero_slope(self):
        self.assertEqual(theil_sen_slope([1.0], [5.0]), 0.0)
        self.assertEqual(theil_sen_slope([2.0, 2.0], [1.0, 9.0]), 0.0)

    def test_mismatched_lengths_are_an_error(self):
        with self.assertRaises(ValueError):
            theil_sen_slope([1.0, 2.0], [1.0])


class GrowthCheck(unittest.TestCase):
    def test_steady_rss_growth_fails_naming_the_metric(self):
        # A leak of 100 KiB/s: 17 MiB over three minutes.
        times = seconds(180)
        rss = [25000 + 100 * t for t in times]
        message = check_growth(RSS_LIMIT, times, rss, warmup_seconds=36)
        self.assertIsNotNone(message)
        self.assertIn("rss_kib grew", message)
        self.assertIn("Theil-Sen", message)

    def test_slow_rss_leak_under_restart_bursts_fails(self):
        # 40 KiB/s of leak (5.6 MiB over the measured span) under the bursts.
        times = seconds(180)
        rss = [v + 40 * t for t, v in zip(times, bursty_rss(times))]
        message = check_growth(RSS_LIMIT, times, rss, warmup_seconds=36)
        self.assertIsNotNone(message)
        self.assertIn("rss_kib grew", message)

    def test_rss_baseline_step_fails_on_the_window_floors(self):
        times = seconds(180)
        rss = [28000.0 if t < 130 else 34000.0 for t in times]
        message = check_growth(RSS_LIMIT, times, rss, warmup_seconds=36)
        self.assertIsNotNone(message)
        self.assertIn("floor of the last 48 samples is 34000", message)

    def test_restart_bursts_in_rss_pass(self):
        times = seconds(180)
        self.assertIsNone(check_growth(RSS_LIMIT, times, bursty_rss(times), warmup_seconds=36))
        # Judged by its peaks, the same series would fail: why RSS is judged by its floor.
        by_peak = Limit("rss_kib", "KiB", 4096, level="peak")
        self.assertIsNotNone(check_growth(by_peak, times, bursty_rss(times), warmup_seconds=36))

    def test_one_fd_leaked_per_restart_fails(self):
        # The restart sawtooth, and each restart leaks one descriptor.
        times = seconds(180)
        fds = [v + int(t // 10) for t, v in zip(times, restart_sawtooth(times))]
        message = check_growth(FD_LIMIT, times, fds, warmup_seconds=36)
        self.assertIsNotNone(message)
        self.assertIn("fds grew", message)

    def test_late_fd_step_fails_on_the_window_peaks(self):
        # Flat for 190 s, then a jump in the last 10 samples: too few to move the trend, but
        # the last window's peak is far above the first's.
        times = seconds(200)
        fds = [20.0] * 190 + [40.0] * 10
        self.assertLess(theil_sen_slope(times[10:], fds[10:]) * 190, FD_LIMIT.max_rise)
        message = check_growth(FD_LIMIT, times, fds, warmup_seconds=10)
        self.assertIsNotNone(message)
        self.assertIn("peak of the last 63 samples is 40", message)

    def test_flat_noisy_series_passes(self):
        rng = random.Random(5)
        times = seconds(180)
        rss = [28000 + rng.randint(-600, 600) for _ in times]
        self.assertIsNone(check_growth(RSS_LIMIT, times, rss, warmup_seconds=36))

    def test_restart_sawtooth_passes_wherever_the_run_starts_and_ends(self):
        # Dips at the start or end of a short run must not read as growth.
        for length in range(30, 60):
            times = seconds(length)
            fds = restart_sawtooth(times)
            self.assertIsNone(check_growth(FD_LIMIT, times, fds, warmup_seconds=10),
                              f"{length} s run")

    def test_growth_during_the_warm_up_is_ignored(self):
        times = seconds(120)
        rss = [20000 + 1000 * min(t, 20) for t in times]  # allocator warming up, then flat
        self.assertIsNone(check_growth(RSS_LIMIT, times, rss, warmup_seconds=24))
        self.assertIsNotNone(check_growth(RSS_LIMIT, times, rss, warmup_seconds=0))

    def test_too_few_samples_after_the_warm_up_fail(self):
        times = seconds(12)
        message = check_growth(FD_LIMIT, times, [20] * 12, warmup_seconds=10)
        self.assertIn("only", message)

    def test_unknown_level_is_an_error(self):
        with self.assertRaises(ValueError):
            check_growth(Limit("x", "x", 1, level="mean"), seconds(20), [1] * 20, 0)

    def test_check_all_reports_each_grown_series(self):
        times = seconds(60)
        series = {"rss_kib": [30000.0] * 60, "fds": [20 + t for t in times]}
        failures = check_all([RSS_LIMIT, FD_LIMIT], times, series, warmup_seconds=10)
        self.assertEqual(len(failures), 1)
        self.assertTrue(failures[0].startswith("fds grew"), failures[0])


def row(t, calls_failed=0, leases_refused=0):
    return {"time": float(t), "calls_failed": calls_failed, "leases_refused": leases_refused}


class FailuresOnlyDuringOutages(unittest.TestCase):
    OUTAGES = [(10.0, 11.2), (20.0, 21.3)]

    def test_failures_while_the_backend_is_away_are_allowed(self):
        rows = [row(9), row(10, 5, 7), row(11, 40, 50), row(12, 41, 52), row(13, 41, 52),
                row(20, 41, 52), row(21, 90, 99), row(22, 90, 99)]
        failures = []
        soak_checks.check_failures_during_outages(rows, self.OUTAGES, 3, failures)
        self.assertEqual(failures, [])

    def test_failures_with_the_backend_up_are_reported(self):
        rows = [row(9), row(10, 5), row(11, 40), row(15, 40), row(16, 41), row(17, 41)]
        failures = []
        soak_checks.check_failures_during_outages(rows, self.OUTAGES, 3, failures)
        self.assertEqual(len(failures), 1)
        self.assertIn("calls_failed rose by 1 between 15.0 s and 16.0 s", failures[0])

    def test_refused_leases_with_no_outage_at_all_are_reported(self):
        rows = [row(1), row(2, 0, 3)]
        failures = []
        soak_checks.check_failures_during_outages(rows, [], 3, failures)
        self.assertEqual(len(failures), 1)
        self.assertIn("leases_refused", failures[0])


class LoadReportCheck(unittest.TestCase):
    def report(self, **kw):
        r = {"operations": 100, "ok": 95, "exchanges": 95, "corrupt": 0, "errors": 5,
             "errors_by_code": {"UNAVAILABLE": 4, "ABORTED": 1}}
        r.update(kw)
        return r

    def test_restart_codes_pass(self):
        failures = []
        soak_checks.check_load({"call": self.report()}, failures)
        self.assertEqual(failures, [])

    def test_a_wrong_answer_fails(self):
        failures = []
        soak_checks.check_load({"call": self.report(corrupt=1)}, failures)
        self.assertEqual(len(failures), 1)
        self.assertIn("wrong answers", failures[0])

    def test_an_unexplained_code_fails(self):
        failures = []
        soak_checks.check_load({"lease": self.report(errors_by_code={"INTERNAL": 2})}, failures)
        self.assertEqual(len(failures), 1)
        self.assertIn("INTERNAL", failures[0])

    def test_no_progress_fails(self):
        failures = []
        soak_checks.check_load({"call": self.report(ok=0)}, failures)
        self.assertIn("no operation succeeded", failures[0])


class MetricsParsing(unittest.TestCase):
    TEXT = """# HELP tlsbroker_pool_sockets Sockets by state.
# TYPE tlsbroker_pool_sockets gauge
tlsbroker_pool_sockets{backend="soak",state="idle"} 3
tlsbroker_pool_sockets{backend="soak",state="leased"} 5
tlsbroker_pool_sockets{backend="other",state="idle"} 100
tlsbroker_calls_total{backend="soak",code="OK"} 1000
tlsbroker_calls_total{backend="soak",code="UNAVAILABLE"} 7
tlsbroker_calls_total{backend="soak",code="ABORTED"} 2
"""

    def test_sums_by_label_for_the_soak_backend_only(self):
        m = soak_metrics.parse(self.TEXT)
        self.assertEqual(soak_metrics.total(m, "soak", "tlsbroker_pool_sockets"), 8)
        self.assertEqual(soak_metrics.total(m, "soak", "tlsbroker_pool_sockets", state="idle"), 3)
        self.assertEqual(soak_metrics.total(m, "soak", "tlsbroker_calls_total", code="!OK"), 9)
        self.assertEqual(soak_metrics.total(m, "soak", "tlsbroker_leases_total"), 0)


if __name__ == "__main__":
    unittest.main()
