#!/usr/bin/env python3
"""tlsbroker soak: the real broker under steady load and periodic faults, watched for growth.

Started by scripts/soak.sh (`make soak`), which builds the binaries and makes the test PKI.
For SECONDS it runs, all on 127.0.0.1 with ports chosen at run time:

  - tlsbroker with a pooled framed-echo backend (tlsb-test-backend, client certificates
    required) whose config names a CRL and rotated client credentials;
  - steady load: tlsbroker-load in Call mode and in Lease mode (every answer verified);
  - faults on a schedule: the backend killed (SIGKILL) and restarted on the same port; the
    CRL re-issued (a new CRL number) and written over the configured file; the backend client
    certificate and key re-written, alternating between two identities; config reloads,
    alternating SIGHUP and the admin Reload RPC (tlsbrokerctl reload).

Every second it samples the broker's RSS and open fds (/proc/PID/status, /proc/PID/fd) and
scrapes /metrics (pool sockets by state, waiters, failed calls and leases, failed handshakes),
printing one table row per sample. At the end it checks (soak_trend.py, soak_checks.py) that
RSS, fds, fds not held by pool sockets and pool sockets show no growth after the warm-up, that
the load saw no wrong answer and failed only with the codes a backend restart explains, that
every reload was applied, that no lease or waiter is left once the load stops, and that SIGTERM
drains cleanly.
Exit code 0 when all of that holds, 1 with a message per broken check, 2 on a setup error.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak_checks  # noqa: E402  (next to this file)
import soak_metrics  # noqa: E402
import soak_trend  # noqa: E402

BACKEND = "soak"
MAX_SOCKETS = 8


class SetupError(Exception):
    pass


def log(msg):
    print(f"soak: {msg}", flush=True)


def wait_for(seconds, what, predicate, interval=0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(interval)
    raise SetupError(f"timed out after {seconds} s waiting for {what}")


def http_get(port, path, timeout=5):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, r.read().decode("utf-8", "replace")


def proc_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise OSError(f"no VmRSS for pid {pid}")


def proc_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def write_atomically(path, data):
    """Replaces `path` in one rename, as a Kubernetes Secret projection does."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class Soak:
    def __init__(self, args):
        self.a = args
        self.work = os.path.abspath(args.work)
        self.procs = []
        self.backend = None
        self.backend_port = 0
        self.events = []          # this second's event letters, cleared per sample
        self.counts = {"kill": 0, "crl": 0, "creds": 0, "sighup": 0, "admin_reload": 0,
                       "reload_failed": 0}
        self.failures = []
        self.outages = []         # (killed, listening again) per backend restart, soak seconds
        self.start = time.monotonic()
        self.quiet_state = "no answer from /metrics"
        self.audit_lines = 0
        self.load_results = {}

    # ---- setup -------------------------------------------------------------------------------

    def prepare_files(self):
        # Only a directory this script made (it holds the marker) or an empty one is emptied:
        # a mistyped SOAK_DIR must not wipe anything else.
        marker = os.path.join(self.work, ".tlsb-soak")
        if os.path.isdir(self.work) and os.listdir(self.work):
            if not os.path.exists(marker):
                raise SetupError(f"{self.work} is not empty and was not made by the soak; "
                                 "choose another working directory")
            shutil.rmtree(self.work)
        os.makedirs(self.work, exist_ok=True)
        open(marker, "w").close()
        # A private copy of the PKI: the soak re-issues CRLs with its CA database and must not
        # touch the shared test PKI.
        self.pki = os.path.join(self.work, "pki")
        shutil.copytree(self.a.pki, self.pki, symlinks=True)
        self.creds = os.path.join(self.work, "creds")
        os.makedirs(self.creds)
        self.crl = os.path.join(self.creds, "backend.crl.pem")
        self.client_cert = os.path.join(self.creds, "client.pem")
        self.client_key = os.path.join(self.creds, "client.key")
        shutil.copy(os.path.join(self.pki, "int.crl.pem"), self.crl)
        self.identity = 0
        self.rotate_credentials(count=False)
        self.config = os.path.join(self.work, "config.yaml")
        p = self.pki
        with open(self.config, "w") as f:
            f.write(f"""# Written by tools/soak/soak.py.
listen:
  grpc: 127.0.0.1:0
  metrics: 127.0.0.1:0
  tls:
    cert: {p}/server.fullchain.pem
    key: {p}/server.key
    client_ca: {p}/ca-chain.pem
  admin_callers: ["spiffe://example.org/ns/payments/sa/app1"]
  drain_grace_period: 5s
backends:
  - name: {BACKEND}
    address: 127.0.0.1:{{port}}
    server_name: localhost
    tls:
      ca: {p}/ca-chain.pem
      cert: {self.client_cert}
      key: {self.client_key}
      crl: ["{self.crl}"]
    pool:
      min_idle: 2
      max_sockets: {MAX_SOCKETS}
      acquire_timeout: 5s
      max_lifetime: 20s
      max_leases_per_socket: 2000
      backoff_initial: 50ms
      backoff_max: 500ms
    client_id: {{prefix: "SOAK", width: 8}}
    framing:
      length_field: {{offset: 0, size: 4, big_endian: true, adjustment: -4}}
    allowed_callers: ["spiffe://example.org/ns/payments/sa/*"]
""")

    def start_backend(self):
        """Starts (or restarts, on the same port) the framed echo backend."""
        out = open(os.path.join(self.work, "backend.out"), "w")
        err = open(os.path.join(self.work, "backend.err"), "a")
        cmd = [self.a.backend_bin, "--pki", self.pki, "--mode", "framed", "--response-prefix",
               "re:", "--port", str(self.backend_port)]
        for attempt in range(100):  # up to ~10 s for a port another process briefly holds
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=err)
            try:
                wait_for(10, "the backend to listen", lambda: proc.poll() is not None or
                         "LISTENING" in open(out.name).read())
            except SetupError:
                proc.kill()
                raise
            if proc.poll() is None:
                break
            # The port may still be held for a moment after a kill; try again shortly.
            time.sleep(0.1)
        else:
            raise SetupError(f"the backend could not listen again on port {self.backend_port}; "
                             f"see {err.name}")
        m = re.search(r"LISTENING (\d+)", open(out.name).read())
        self.backend_port = int(m.group(1))
        self.backend = proc
        self.procs.append(proc)

    def start_broker(self):
        text = open(self.config).read().replace("{port}", str(self.backend_port))
        with open(self.config, "w") as f:
            f.write(text)
        self.broker_log = os.path.join(self.work, "broker.log")
        self.broker = subprocess.Popen(
            [self.a.broker_bin, "--config", self.config], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.procs.append(self.broker)
        self.log_thread = threading.Thread(target=self.copy_broker_log, daemon=True)
        self.log_thread.start()

        def serving():
            if self.broker.poll() is not None:
                raise SetupError(f"tlsbroker exited ({self.broker.returncode}); its log:\n" +
                                 open(self.broker_log).read())
            return "tlsbroker serving" in open(self.broker_log).read()
        wait_for(20, "tlsbroker to serve", serving)
        line = next(l for l in open(self.broker_log) if "tlsbroker serving" in l)
        self.target = re.search(r"grpc=(\S+)", line).group(1)
        self.metrics_port = int(re.search(r"\(port (\d+)\)", line).group(1))
        wait_for(20, "/readyz", lambda: http_get(self.metrics_port, "/readyz")[0] == 200)

    def copy_broker_log(self):
        """Copies the broker's log to broker.log without the audit lines ("lease ended", one per
        lease: hundreds of MB in a long soak), which are only counted."""
        with open(self.broker_log, "wb") as out:
            for line in self.broker.stdout:
                if b'msg="lease ended"' in line:
                    self.audit_lines += 1
                    continue
                out.write(line)
                out.flush()

    def caller_flags(self):
        p = self.pki
        return ["--target", self.target, "--ca", f"{p}/root.crt",
                "--cert", f"{p}/client.fullchain.pem", "--key", f"{p}/client.key"]

    def start_load(self):
        seconds = self.a.seconds
        common = self.caller_flags() + ["--backend", BACKEND, "--count", "1000000000",
                                        "--duration", f"{seconds}s", "--timeout", "10s",
                                        "--json"]
        self.loads = {}
        for mode, extra in (("call", ["--callers", "6", "--channels", "2", "--size-min", "1",
                                      "--size-max", "4000"]),
                            ("lease", ["--callers", "2", "--exchanges-per-lease", "20",
                                       "--size-min", "1", "--size-max", "2000", "--seed",
                                       "7"])):
            out = os.path.join(self.work, f"load-{mode}.json")
            proc = subprocess.Popen(
                [self.a.load_bin] + common + ["--mode", mode] + extra,
                stdin=subprocess.DEVNULL, stdout=open(out, "w"),
                stderr=open(os.path.join(self.work, f"load-{mode}.err"), "w"))
            self.procs.append(proc)
            self.loads[mode] = (proc, out)

    # ---- faults ------------------------------------------------------------------------------

    def kill_backend(self):
        killed = time.monotonic() - self.start
        self.backend.send_signal(signal.SIGKILL)
        self.backend.wait()
        self.counts["kill"] += 1
        self.events.append("K")
        time.sleep(self.a.backend_down)
        self.start_backend()
        self.outages.append((killed, time.monotonic() - self.start))

    def reissue_crl(self):
        tmp = os.path.join(self.work, "new.crl.pem")
        r = subprocess.run(
            ["openssl", "ca", "-gencrl", "-config", "int-db/ca.cnf", "-keyfile", "int.key",
             "-cert", "int.crt", "-crlexts", "crl_ext", "-out", tmp],
            cwd=self.pki, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise SetupError(f"openssl ca -gencrl failed:\n{r.stdout}")
        with open(tmp, "rb") as f:
            write_atomically(self.crl, f.read())
        os.remove(tmp)
        self.counts["crl"] += 1
        self.events.append("L")

    def rotate_credentials(self, count=True):
        """Writes the backend client credentials again, alternating app1 and app2."""
        name = ("client", "client2")[self.identity % 2]
        self.identity += 1
        with open(os.path.join(self.pki, f"{name}.fullchain.pem"), "rb") as f:
            cert = f.read()
        with open(os.path.join(self.pki, f"{name}.key"), "rb") as f:
            key = f.read()
        write_atomically(self.client_key, key)
        write_atomically(self.client_cert, cert)
        if count:
            self.counts["creds"] += 1
            self.events.append("C")

    def reload(self):
        """SIGHUP and the admin Reload RPC, in turn."""
        if (self.counts["sighup"] + self.counts["admin_reload"]) % 2 == 0:
            self.broker.send_signal(signal.SIGHUP)
            self.counts["sighup"] += 1
            self.events.append("H")
            return
        r = subprocess.run([self.a.ctl_bin] + self.caller_flags() + ["--timeout", "10s",
                                                                      "reload"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        self.counts["admin_reload"] += 1
        self.events.append("A")
        if r.returncode != 0:
            self.counts["reload_failed"] += 1
            self.failures.append(f"admin Reload failed (exit {r.returncode}): {r.stdout.strip()}")

    # ---- sampling ----------------------------------------------------------------------------

    COLUMNS = [("t", 5), ("rss_kib", 8), ("fds", 4), ("fds_other", 9), ("sockets", 7),
               ("idle", 4), ("leased", 6), ("connecting", 10), ("waiters", 7),
               ("calls_failed", 12), ("leases_refused", 14), ("hs_failed", 9), ("events", 6)]

    def sample(self, t):
        pid = self.broker.pid
        row = {"time": t, "t": round(t), "rss_kib": proc_rss_kib(pid), "fds": proc_fds(pid)}
        _, text = http_get(self.metrics_port, "/metrics")
        m = soak_metrics.parse(text)
        states = {s: soak_metrics.total(m, BACKEND, "tlsbroker_pool_sockets", state=s)
                  for s in ("connecting", "idle", "leased", "retiring")}
        row["sockets"] = int(sum(states.values()))
        row["idle"] = int(states["idle"])
        row["leased"] = int(states["leased"])
        row["connecting"] = int(states["connecting"])
        # The fds the pool does not explain: listeners, gRPC connections, files. Flat unless
        # something leaks a descriptor.
        row["fds_other"] = row["fds"] - row["sockets"]
        def total(name, **match):
            return int(soak_metrics.total(m, BACKEND, name, **match))
        row["waiters"] = total("tlsbroker_pool_waiters")
        row["calls_failed"] = total("tlsbroker_calls_total", code="!OK")
        row["leases_refused"] = total("tlsbroker_leases_total", code="!OK")
        row["hs_failed"] = total("tlsbroker_tls_handshakes_total", result="!ok")
        row["events"] = "".join(self.events) or "-"
        self.events = []
        return row

    def print_header(self):
        print(" ".join(name.rjust(width) for name, width in self.COLUMNS), flush=True)

    def print_row(self, row):
        print(" ".join(str(row[name]).rjust(width) for name, width in self.COLUMNS), flush=True)

    # ---- run ---------------------------------------------------------------------------------

    def run(self):
        a = self.a
        self.prepare_files()
        self.start_backend()
        self.start_broker()
        log(f"broker pid {self.broker.pid}, gRPC {self.target}, metrics "
            f"http://127.0.0.1:{self.metrics_port}/metrics, backend port {self.backend_port}")
        log(f"{a.seconds} s: backend killed every {a.restart_every} s, CRL re-issued and config "
            f"reloaded every {a.reload_every} s, credentials re-written every {a.creds_every} s; "
            f"warm-up {a.warmup} s")
        log("events: K backend killed and restarted, L CRL re-issued, C credentials re-written, "
            "H SIGHUP, A admin Reload")
        self.start_load()
        self.print_header()
        rows = []
        start = self.start = time.monotonic()
        next_sample = start + 1
        next_kill = start + a.restart_every
        next_reload = start + a.reload_every
        next_creds = start + a.creds_every
        end = start + a.seconds
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now >= next_kill:
                self.kill_backend()
                next_kill += a.restart_every
            if now >= next_creds:
                self.rotate_credentials()
                next_creds += a.creds_every
                next_reload = now  # apply them now
            if now >= next_reload:
                self.reissue_crl()
                self.reload()
                next_reload = max(next_reload + a.reload_every, now + 1)
            if now >= next_sample:
                if self.broker.poll() is not None:
                    self.failures.append(f"tlsbroker exited during the soak "
                                         f"({self.broker.returncode}); see {self.broker_log}")
                    break
                try:
                    # Fresh time: a restart above may have taken a second or more.
                    row = self.sample(time.monotonic() - start)
                    rows.append(row)
                    self.print_row(row)
                except OSError as e:
                    self.failures.append(f"sampling the broker at {now - start:.0f} s failed: {e}")
                next_sample += 1
            time.sleep(max(0.0, min(next_sample, next_kill, next_reload, next_creds, end)
                           - time.monotonic()))
        self.rows = rows
        self.finish()
        return rows

    def finish(self):
        # The load generators stop by themselves at --duration.
        results = {}
        for mode, (proc, out) in self.loads.items():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                self.failures.append(f"tlsbroker-load ({mode}) did not stop within 60 s of its "
                                     "--duration (a stuck RPC)")
                continue
            if proc.returncode not in (0, 1):
                err = open(os.path.join(self.work, f"load-{mode}.err")).read()
                self.failures.append(f"tlsbroker-load ({mode}) failed to run (exit "
                                     f"{proc.returncode}): {err.strip()}")
                continue
            results[mode] = json.load(open(out))
        self.load_results = results
        if self.broker.poll() is not None:
            return
        # Once the load has stopped no lease may stay open and no caller may still wait.
        try:
            wait_for(15, "every lease to end and no waiter to remain", self.pool_quiet,
                     interval=0.2)
        except SetupError as e:
            self.failures.append(f"{e} (last sample: {self.quiet_state})")
        # The reloads were all applied: "configuration reloaded" once per SIGHUP or Reload.
        expected = self.counts["sighup"] + self.counts["admin_reload"] - self.counts[
            "reload_failed"]
        try:
            wait_for(10, f"{expected} reloads in the broker log",
                     lambda: self.reload_counts()[0] >= expected)
        except SetupError:
            pass
        applied, rejected = self.reload_counts()
        self.reloads_applied = applied
        if rejected or applied < expected:
            self.failures.append(f"reloads: {applied} applied and {rejected} rejected of "
                                 f"{expected} requested; see {self.broker_log}")
        # SIGTERM drains and exits 0.
        self.broker.send_signal(signal.SIGTERM)
        try:
            rc = self.broker.wait(timeout=20)
            if rc != 0:
                self.failures.append(f"tlsbroker exited {rc} on SIGTERM, expected 0")
        except subprocess.TimeoutExpired:
            self.failures.append("tlsbroker did not exit within 20 s of SIGTERM")
        self.log_thread.join(timeout=10)

    def pool_quiet(self):
        _, text = http_get(self.metrics_port, "/metrics")
        m = soak_metrics.parse(text)
        leased = soak_metrics.total(m, BACKEND, "tlsbroker_pool_sockets", state="leased")
        waiters = soak_metrics.total(m, BACKEND, "tlsbroker_pool_waiters")
        self.quiet_state = f"leased {leased:g}, waiters {waiters:g}"
        return leased == 0 and waiters == 0

    def reload_counts(self):
        text = open(self.broker_log).read()
        return text.count("configuration reloaded"), text.count("reload rejected")

    def cleanup(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def trend_limits(args):
    return [
        soak_trend.Limit("rss_kib", "KiB", args.rss_rise_kib, level="floor"),
        soak_trend.Limit("fds", "fds", args.fd_rise),
        soak_trend.Limit("fds_other", "fds", args.fd_other_rise),
        soak_trend.Limit("sockets", "sockets", args.socket_rise),
    ]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--broker-bin", required=True)
    p.add_argument("--backend-bin", required=True)
    p.add_argument("--load-bin", required=True)
    p.add_argument("--ctl-bin", required=True)
    p.add_argument("--pki", required=True, help="a test PKI's ec/ directory")
    p.add_argument("--work", required=True, help="working directory (emptied first)")
    p.add_argument("--seconds", type=int, default=180)
    p.add_argument("--warmup", type=int, default=0, help="default: a fifth of the run, >= 10 s")
    p.add_argument("--restart-every", type=float, default=10)
    p.add_argument("--backend-down", type=float, default=1.0, help="seconds the backend is away")
    p.add_argument("--reload-every", type=float, default=6)
    p.add_argument("--creds-every", type=float, default=9)
    p.add_argument("--rss-rise-kib", type=float, default=4096,
                   help="allowed RSS rise after the warm-up")
    p.add_argument("--fd-rise", type=float, default=6, help="allowed fd rise after the warm-up")
    p.add_argument("--fd-other-rise", type=float, default=3,
                   help="allowed rise of the fds not held by pool sockets")
    p.add_argument("--settle", type=float, default=3,
                   help="seconds after a restart during which failures are still expected")
    p.add_argument("--socket-rise", type=float, default=3,
                   help="allowed pool socket rise after the warm-up")
    args = p.parse_args()
    if args.seconds < 20:
        p.error("--seconds must be at least 20 (warm-up plus enough samples to fit a trend)")
    if not args.warmup:
        args.warmup = max(10, args.seconds // 5)
    for flag in ("broker_bin", "backend_bin", "load_bin", "ctl_bin"):
        path = getattr(args, flag)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            p.error(f"--{flag.replace('_', '-')}: {path} is not an executable file")
    for name in ("server.fullchain.pem", "client.fullchain.pem", "client2.fullchain.pem",
                 "int.crl.pem", "int-db/ca.cnf"):
        if not os.path.isfile(os.path.join(args.pki, name)):
            p.error(f"--pki: {args.pki} has no {name} (make one with "
                    "tests/support/make_test_pki.sh DIR and pass DIR/ec)")

    soak = Soak(args)
    try:
        rows = soak.run()
    except SetupError as e:
        print(f"soak: setup failed: {e}", file=sys.stderr)
        soak.cleanup()
        return 2
    finally:
        soak.cleanup()

    failures = soak.failures
    times = [r["time"] for r in rows]
    series = {name: [r[name] for r in rows] for name, _ in Soak.COLUMNS if name != "events"}
    print()
    print("== soak summary")
    c = soak.counts
    print(f"  faults        backend killed {c['kill']}x, CRL re-issued {c['crl']}x, credentials "
          f"re-written {c['creds']}x, SIGHUP {c['sighup']}x, admin Reload {c['admin_reload']}x")
    print(f"  broker log    {soak.audit_lines} audit lines (lease ended) counted, not kept; the "
          f"rest in {soak.broker_log}")
    for line in soak_checks.check_load(soak.load_results, failures):
        print(f"  {line}")
    soak_checks.check_failures_during_outages(rows, soak.outages, args.settle, failures)
    if rows:
        for name in ("rss_kib", "fds", "fds_other", "sockets"):
            vals = series[name]
            after = [v for t, v in zip(times, vals) if t >= times[0] + args.warmup]
            after_t = [t for t in times if t >= times[0] + args.warmup]
            slope = soak_trend.theil_sen_slope(after_t, after) if after else 0
            print(f"  {name:10}  min {min(vals)}, max {max(vals)}, after warm-up "
                  f"{min(after) if after else '-'}..{max(after) if after else '-'}, "
                  f"median {statistics.median(after) if after else '-'}, "
                  f"trend {slope:+.3f}/s")
        failures += soak_trend.check_all(trend_limits(args), times, series, args.warmup)
    else:
        failures.append("no samples were taken")
    if c["kill"] == 0 or c["crl"] == 0 or c["sighup"] == 0:
        failures.append("the soak was too short to restart the backend and reload at least once")
    print()
    if failures:
        for f in failures:
            print(f"soak: FAILED: {f}")
        print(f"soak: logs in {soak.work}")
        return 1
    print(f"soak: OK ({len(rows)} samples; logs in {soak.work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
