"""The soak's checks must be able to fail: synthetic series that grow, and failures counted
while the backend was up, are caught; the shapes a healthy soak produces pass.

Run by ctest (soak_checks_test) with tools/soak on PYTHONPATH.
"""

import random
import unittest

import soak
from soak_trend import Limit, check_all, check_growth, least_squares_slope

FD_LIMIT = Limit("fds", "fds", 6)
RSS_LIMIT = Limit("rss_kib", "KiB", 4096)


def seconds(n):
    return [float(t) for t in range(1, n + 1)]


class LeastSquaresSlope(unittest.TestCase):
    def test_slope_of_a_line_is_exact(self):
        xs = seconds(50)
        self.assertAlmostEqual(least_squares_slope(xs, [3 * x + 7 for x in xs]), 3.0)

    def test_flat_and_degenerate_inputs_have_zero_slope(self):
        self.assertEqual(least_squares_slope([1.0], [5.0]), 0.0)
        self.assertEqual(least_squares_slope([2.0, 2.0], [1.0, 9.0]), 0.0)
        self.assertAlmostEqual(least_squares_slope(seconds(10), [4.0] * 10), 0.0)

    def test_mismatched_lengths_are_an_error(self):
        with self.assertRaises(ValueError):
            least_squares_slope([1.0, 2.0], [1.0])


class GrowthCheck(unittest.TestCase):
    def test_steady_rss_growth_fails_naming_the_metric(self):
        # A leak of 100 KiB/s: 17 MiB over three minutes.
        times = seconds(180)
        rss = [25000 + 100 * t for t in times]
        message = check_growth(RSS_LIMIT, times, rss, warmup_seconds=36)
        self.assertIsNotNone(message)
        self.assertIn("rss_kib grew", message)
        self.assertIn("least-squares", message)

    def test_one_fd_leaked_per_restart_fails(self):
        # 26 fds with a restart every 10 s; each restart leaks one descriptor.
        times = seconds(180)
        fds = [26 + int(t // 10) for t in times]
        message = check_growth(FD_LIMIT, times, fds, warmup_seconds=36)
        self.assertIsNotNone(message)
        self.assertIn("fds grew", message)

    def test_late_step_fails_on_the_window_check_when_the_trend_is_small(self):
        # Flat for 200 s, then a jump in the last three samples: too short to move the fitted
        # line past the limit, but the last window's peak is far above the first's.
        times = seconds(200)
        fds = [20.0] * 197 + [40.0] * 3
        rise = least_squares_slope(times[10:], fds[10:]) * (times[-1] - times[10])
        self.assertLess(rise, FD_LIMIT.max_rise)
        message = check_growth(FD_LIMIT, times, fds, warmup_seconds=10)
        self.assertIsNotNone(message)
        self.assertIn("peak at 40", message)

    def test_flat_noisy_series_passes(self):
        rng = random.Random(5)
        times = seconds(180)
        rss = [28000 + rng.randint(-600, 600) for _ in times]
        self.assertIsNone(check_growth(RSS_LIMIT, times, rss, warmup_seconds=36))

    def test_restart_sawtooth_passes(self):
        # Pool sockets dropped at every restart and refilled: fds dip from 26 to 18 and back.
        times = seconds(180)
        fds = [18 if int(t) % 10 in (0, 1) else 26 for t in times]
        self.assertIsNone(check_growth(FD_LIMIT, times, fds, warmup_seconds=36))

    def test_growth_during_the_warm_up_is_ignored(self):
        times = seconds(120)
        rss = [20000 + 500 * min(t, 20) for t in times]  # allocator warming up, then flat
        self.assertIsNone(check_growth(RSS_LIMIT, times, rss, warmup_seconds=24))
        self.assertIsNotNone(check_growth(RSS_LIMIT, times, rss, warmup_seconds=0))

    def test_too_few_samples_after_the_warm_up_fail(self):
        times = seconds(12)
        message = check_growth(FD_LIMIT, times, [20] * 12, warmup_seconds=10)
        self.assertIn("only", message)

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
        soak.check_failures_during_outages(rows, self.OUTAGES, 3, failures)
        self.assertEqual(failures, [])

    def test_failures_with_the_backend_up_are_reported(self):
        rows = [row(9), row(10, 5), row(11, 40), row(15, 40), row(16, 41), row(17, 41)]
        failures = []
        soak.check_failures_during_outages(rows, self.OUTAGES, 3, failures)
        self.assertEqual(len(failures), 1)
        self.assertIn("calls_failed rose by 1 between 15.0 s and 16.0 s", failures[0])

    def test_refused_leases_with_no_outage_at_all_are_reported(self):
        rows = [row(1), row(2, 0, 3)]
        failures = []
        soak.check_failures_during_outages(rows, [], 3, failures)
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
        soak.check_load({"call": self.report()}, failures)
        self.assertEqual(failures, [])

    def test_a_wrong_answer_fails(self):
        failures = []
        soak.check_load({"call": self.report(corrupt=1)}, failures)
        self.assertEqual(len(failures), 1)
        self.assertIn("wrong answers", failures[0])

    def test_an_unexplained_code_fails(self):
        failures = []
        soak.check_load({"lease": self.report(errors_by_code={"INTERNAL": 2})}, failures)
        self.assertEqual(len(failures), 1)
        self.assertIn("INTERNAL", failures[0])

    def test_no_progress_fails(self):
        failures = []
        soak.check_load({"call": self.report(ok=0)}, failures)
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
        m = soak.parse_metrics(self.TEXT)
        self.assertEqual(soak.metric_sum(m, "tlsbroker_pool_sockets"), 8)
        self.assertEqual(soak.metric_sum(m, "tlsbroker_pool_sockets", state="idle"), 3)
        self.assertEqual(soak.metric_sum(m, "tlsbroker_calls_total", code="!OK"), 9)
        self.assertEqual(soak.metric_sum(m, "tlsbroker_leases_total"), 0)


if __name__ == "__main__":
    unittest.main()
