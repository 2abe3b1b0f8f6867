#!/usr/bin/python3
"""Drives a running tlsbroker with Python grpcio: a gRPC client the project did not write.

    grpcio_client_test.py --broker PATH --backend PATH --proto-dir DIR [unittest args]

Uses the test PKI in $TLSB_TEST_PKI_DIR/ec (made by tests/support/make_test_pki.sh). Starts
three tlsb-test-backend processes (framed mode) and a tlsbroker in front of them, all on
127.0.0.1 with ports chosen by the kernel, generates the Python stubs from broker.proto with
protoc (clients/python/tlsbroker_client.py's helper; the tests use the raw stubs, not that
client), runs the tests, and stops every process at the end (SIGTERM for the broker, which must
exit 0).

Run it with Debian's /usr/bin/python3: its python3-grpcio and python3-protobuf match the
protoc that generates the stubs here.
"""

import argparse
import atexit
import os
import queue
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

try:
    import grpc
    import google.protobuf  # noqa: F401  (the generated stubs need it)
except ImportError as e:
    sys.stderr.write(
        f"grpcio_client_test: cannot import {e.name!r} with {sys.executable}: install Debian's "
        "python3-grpcio and python3-protobuf (scripts/install-deps.sh installs them)\n")
    sys.exit(2)

# The stub generation of the project's Python client (clients/python/tlsbroker_client.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "clients", "python"))
import tlsbroker_client  # noqa: E402

ALLOWED_CALLER = "spiffe://example.org/ns/payments/sa/app1"
OTHER_CALLER = "spiffe://example.org/ns/payments/sa/app2"
MAX_SOCKETS = 4
RPC_TIMEOUT = 20  # seconds; every RPC has a deadline so a hang fails instead of blocking
START_TIMEOUT = 30
STOP_TIMEOUT = 20
OWED_DELAY_MS = 1000

ARGS = None  # parsed command line
ENV = None   # the running processes and channels, set by setUpModule


def frame(payload):
    """A frame of the test backend's framing: 4-byte big-endian length that counts itself."""
    return struct.pack(">I", len(payload) + 4) + payload


class Process:
    """A child process whose output lines are read by a thread (so its pipe never fills up),
    queued for the test to wait on and kept for the failure report."""

    def __init__(self, name, argv, stdout_is_protocol):
        self.name = name
        self.lines = []  # everything it printed, for diagnostics
        self.queue = queue.Queue()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if stdout_is_protocol else subprocess.DEVNULL,
            stderr=subprocess.PIPE if not stdout_is_protocol else None,
            text=True, bufsize=1)
        _children.append(self)
        stream = self.proc.stdout if stdout_is_protocol else self.proc.stderr
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream):
        for line in stream:
            line = line.rstrip("\n")
            self.lines.append(line)
            self.queue.put(line)
        self.queue.put(None)  # EOF

    def wait_for_line(self, pattern, timeout):
        """Returns the match of the first line matching pattern, or raises."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"{self.name}: no line matching {pattern!r} within "
                                   f"{timeout}s; it printed:\n{self.tail()}")
            try:
                line = self.queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"{self.name} ended (exit {self.proc.wait()}) before printing "
                                   f"{pattern!r}; it printed:\n{self.tail()}")
            m = re.search(pattern, line)
            if m:
                return m

    def send(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)

    def tail(self, n=40):
        return "\n".join(f"  {line}" for line in self.lines[-n:])


_children = []


@atexit.register
def _kill_children():
    """Last resort: no child outlives this script, whatever went wrong."""
    for child in _children:
        try:
            child.kill()
        except Exception:  # noqa: BLE001  (best effort at exit)
            pass


class Backend(Process):
    """tlsb-test-backend in framed mode: answers each frame with a frame of "re:" + payload."""

    def __init__(self, name, pki):
        super().__init__(name, [ARGS.backend, "--pki", pki, "--mode", "framed", "--port", "0",
                                "--response-prefix", "re:"], stdout_is_protocol=True)
        self.port = int(self.wait_for_line(r"^LISTENING (\d+)$", START_TIMEOUT).group(1))

    def stats(self):
        """The backend's counters (connections, full/resumed handshakes, requests, ...)."""
        self.send("stats")
        stats = {}
        deadline = time.monotonic() + RPC_TIMEOUT
        while True:
            line = self.queue.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError(f"{self.name} ended while printing stats")
            if line == "END":
                return stats
            key, _, value = line.partition(" ")
            stats[key] = int(value)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=STOP_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()


class Broker(Process):
    """tlsbroker with a config written for this run; port read from its "serving" log line."""

    def __init__(self, config_path):
        super().__init__("tlsbroker", [ARGS.broker, "--config", config_path],
                         stdout_is_protocol=False)
        m = self.wait_for_line(r'msg="tlsbroker serving".*\bgrpc="?[^\s"]*:(\d+)\b',
                               START_TIMEOUT)
        self.port = int(m.group(1))

    def terminate(self):
        """SIGTERM; returns the exit code (None if it had to be killed)."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


def write_config(path, pki, framed_port, reuse_port, owed_port):
    def backend(name, port, min_idle, max_sockets, prefix):
        return f"""
  - name: {name}
    address: 127.0.0.1:{port}
    server_name: localhost
    tls: {{ca: {pki}/root.crt, cert: {pki}/client.fullchain.pem, key: {pki}/client.key}}
    pool: {{min_idle: {min_idle}, max_sockets: {max_sockets}, acquire_timeout: 10s}}
    client_id: {{prefix: "{prefix}", width: 8}}
    framing: {{length_field: {{offset: 0, size: 4, big_endian: true, adjustment: -4}}}}
    allowed_callers: ["{ALLOWED_CALLER}"]
"""
    with open(path, "w") as f:
        f.write(f"""listen:
  grpc: 127.0.0.1:0
  metrics: 127.0.0.1:0
  tls: {{cert: {pki}/server.fullchain.pem, key: {pki}/server.key, client_ca: {pki}/root.crt}}
  admin_callers: ["{ALLOWED_CALLER}"]
  drain_grace_period: 2s
backends:""")
        # "framed" is shared by most tests and prewarms a socket; "reuse" is touched only by the
        # socket reuse test, so its backend's handshake count belongs to that test alone;
        # "owed" has one socket and a slow backend, for the test of a lease that ends before
        # its response arrives (whatever that leaves on the socket stays away from the others).
        f.write(backend("framed", framed_port, 1, MAX_SOCKETS, "TLSB"))
        f.write(backend("reuse", reuse_port, 0, MAX_SOCKETS, "TLSR"))
        f.write(backend("owed", owed_port, 0, 1, "TLSO"))


def channel_for(pki, port, client):
    def read(name):
        with open(os.path.join(pki, name), "rb") as f:
            return f.read()
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read("root.crt"), private_key=read(f"{client}.key"),
        certificate_chain=read(f"{client}.fullchain.pem"))
    return grpc.secure_channel(f"localhost:{port}", credentials)


class Env:
    """Everything a test run starts; stop() undoes it in reverse order, whatever state it is in."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="tlsb-grpcio-test.")
        self.framed = self.reuse = self.owed = self.broker = None
        self.channels = []
        self.broker_exit = "not started"

    def start(self):
        pki_root = os.environ.get("TLSB_TEST_PKI_DIR")
        if not pki_root:
            raise RuntimeError("TLSB_TEST_PKI_DIR is not set (ctest sets it; see "
                               "tests/support/make_test_pki.sh)")
        self.pki = os.path.join(pki_root, "ec")
        self.pb2, self.pb2_grpc = tlsbroker_client.load_stubs(os.path.join(self.tmp, "stubs"),
                                                              ARGS.proto_dir)
        self.framed = Backend("framed backend", self.pki)
        self.reuse = Backend("reuse backend", self.pki)
        self.owed = Backend("owed backend", self.pki)
        # Each response comes this long after its request: long enough for a lease to end
        # and the next one to start before the response is there.
        self.owed.send(f"set delay_ms {OWED_DELAY_MS}")
        config = os.path.join(self.tmp, "tlsbroker.yaml")
        write_config(config, self.pki, self.framed.port, self.reuse.port, self.owed.port)
        self.broker = Broker(config)
        app1 = channel_for(self.pki, self.broker.port, "client")
        app2 = channel_for(self.pki, self.broker.port, "client2")
        self.channels = [app1, app2]
        for channel in self.channels:
            grpc.channel_ready_future(channel).result(timeout=START_TIMEOUT)
        self.broker_stub = self.pb2_grpc.BrokerServiceStub(app1)
        self.admin_stub = self.pb2_grpc.BrokerAdminServiceStub(app1)
        self.other_broker_stub = self.pb2_grpc.BrokerServiceStub(app2)
        self.other_admin_stub = self.pb2_grpc.BrokerAdminServiceStub(app2)

    def stop(self):
        for channel in self.channels:
            channel.close()
        if self.broker is not None:
            self.broker_exit = self.broker.terminate()
        for backend in (self.framed, self.reuse, self.owed):
            if backend is not None:
                backend.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def report(self):
        """The processes' last output, for a failed run."""
        parts = []
        for p in (self.broker, self.framed, self.reuse, self.owed):
            if p is not None:
                parts.append(f"--- {p.name} (exit {p.proc.poll()}), last lines:\n{p.tail()}")
        return "\n".join(parts)


def setUpModule():
    global ENV
    ENV = Env()
    try:
        ENV.start()
    except BaseException:
        # unittest skips tearDownModule when setUpModule fails: clean up here.
        ENV.stop()
        raise


def tearDownModule():
    ENV.stop()
    # SIGTERM drains and exits 0; anything else is a failure of the run.
    if ENV.broker_exit != 0:
        raise AssertionError(f"tlsbroker did not exit 0 on SIGTERM: exit {ENV.broker_exit} "
                             f"(None: killed after {STOP_TIMEOUT}s)")


def reason_of(error):
    """The "tlsbroker-reason" trailing metadata of a failed RPC, or None."""
    for key, value in error.trailing_metadata() or ():
        if key == "tlsbroker-reason":
            return value
    return None


class BrokerTest(unittest.TestCase):

    def call(self, backend, request, client_id="", stub=None):
        pb2 = ENV.pb2
        return (stub or ENV.broker_stub).Call(
            pb2.CallRequest(backend=backend, request=request, client_id=client_id),
            timeout=RPC_TIMEOUT)

    def assert_call_fails(self, code, backend, request, stub=None):
        with self.assertRaises(grpc.RpcError) as caught:
            self.call(backend, request, stub=stub)
        error = caught.exception
        self.assertEqual(error.code(), code, error.details())
        return error

    # A Call returns the backend's response frame and describes the socket it ran on.
    def test_call_returns_response_frame_and_lease_info(self):
        response = self.call("framed", frame(b"hello"))
        self.assertEqual(response.response, frame(b"re:hello"))
        lease = response.lease
        self.assertRegex(lease.client_id, r"^TLSB000[1-4]$")
        self.assertEqual(lease.backend, "framed")
        self.assertEqual(lease.tls_version, "TLSv1.3")
        self.assertTrue(lease.cipher)
        self.assertIn("CN=QM2.backend", lease.peer.subject)
        self.assertIn("IP:127.0.0.1", lease.peer.sans)
        self.assertNotEqual(lease.socket_id, 0)
        self.assertGreaterEqual(lease.leases_served, 1)
        self.assertGreater(lease.authenticated_at.seconds, 0)

    # Sequential calls reuse pooled sockets: one handshake per socket, none per call.
    def test_sequential_calls_reuse_sockets_with_one_handshake_each(self):
        calls = 20
        first_use = {}    # socket_id -> reused flag of its first lease
        later_uses = []   # reused flags of every later lease
        ids_by_socket = {}
        for i in range(calls):
            payload = f"seq{i}".encode()
            response = self.call("reuse", frame(payload))
            self.assertEqual(response.response, frame(b"re:" + payload))
            lease = response.lease
            ids_by_socket.setdefault(lease.socket_id, set()).add(lease.client_id)
            if lease.socket_id in first_use:
                later_uses.append(lease.reused)
            else:
                first_use[lease.socket_id] = lease.reused
        sockets = len(ids_by_socket)
        client_ids = set().union(*ids_by_socket.values())
        self.assertLessEqual(len(client_ids), MAX_SOCKETS)
        for socket_id, ids in ids_by_socket.items():
            self.assertEqual(len(ids), 1, f"socket {socket_id} had client IDs {ids}")
        self.assertEqual(list(first_use.values()), [False] * sockets)
        self.assertEqual(later_uses, [True] * (calls - sockets))
        # Handshakes == sockets created, none per reuse. The pool may create a socket that no
        # call used (the broker finishes a Call before its socket is back in the pool, so under
        # load the next call can find no idle socket and start one), so the count is checked
        # against the broker's sockets_created; the sockets the calls saw are a subset. The
        # backend counts a handshake a moment after the broker does: wait for the figures to
        # settle.
        def figures():
            stats = ENV.reuse.stats()
            reuse = {b.name: b for b in ENV.admin_stub.ListBackends(
                ENV.pb2.ListBackendsRequest(), timeout=RPC_TIMEOUT).backends}["reuse"]
            return stats, reuse

        deadline = time.monotonic() + RPC_TIMEOUT
        stats, reuse = figures()
        while time.monotonic() < deadline and (
                reuse.connecting or reuse.leased
                or stats["full_handshakes"] + stats["resumed_handshakes"] != reuse.sockets_created):
            time.sleep(0.05)
            stats, reuse = figures()
        self.assertEqual(stats["full_handshakes"] + stats["resumed_handshakes"],
                         reuse.sockets_created, (stats, reuse))
        self.assertEqual(reuse.handshakes_full + reuse.handshakes_resumed, reuse.sockets_created)
        self.assertLessEqual(sockets, reuse.sockets_created)
        self.assertLessEqual(reuse.sockets_created, MAX_SOCKETS)
        self.assertEqual(stats["handshake_failures"], 0, stats)
        self.assertEqual(stats["requests"], calls, stats)
        self.assertEqual(reuse.leases_granted, calls)

    # A Call naming a client ID runs on that socket, every time.
    def test_call_with_client_id_uses_that_socket(self):
        first = self.call("framed", frame(b"a"), client_id="TLSB0002")
        self.assertEqual(first.lease.client_id, "TLSB0002")
        for _ in range(3):
            again = self.call("framed", frame(b"b"), client_id="TLSB0002")
            self.assertEqual(again.response, frame(b"re:b"))
            self.assertEqual(again.lease.client_id, "TLSB0002")
            self.assertEqual(again.lease.socket_id, first.lease.socket_id)
            self.assertTrue(again.lease.reused)

    # A Lease stream: open, info first, data both ways, release ends the stream with OK.
    def test_lease_stream_exchanges_a_frame_and_ends_ok_on_release(self):
        pb2 = ENV.pb2
        requests = queue.Queue()
        done = object()

        def request_iterator():
            while True:
                item = requests.get()
                if item is done:
                    return
                yield item

        stream = ENV.broker_stub.Lease(request_iterator(), timeout=RPC_TIMEOUT)
        try:
            requests.put(pb2.LeaseRequest(open=pb2.OpenLease(backend="framed")))
            first = next(stream)
            self.assertEqual(first.WhichOneof("kind"), "info")
            self.assertRegex(first.info.client_id, r"^TLSB000[1-4]$")
            self.assertEqual(first.info.backend, "framed")
            self.assertEqual(first.info.tls_version, "TLSv1.3")

            requests.put(pb2.LeaseRequest(data=frame(b"lease payload")))
            expected = frame(b"re:lease payload")
            received = b""
            while len(received) < len(expected):
                message = next(stream)
                self.assertEqual(message.WhichOneof("kind"), "data")
                received += message.data
            self.assertEqual(received, expected)

            # Release alone (the request stream stays open) must end the stream with OK.
            requests.put(pb2.LeaseRequest(release=pb2.ReleaseLease()))
            extra = list(stream)
            self.assertEqual(extra, [])
            self.assertEqual(stream.code(), grpc.StatusCode.OK, stream.details())
        finally:
            requests.put(done)
            stream.cancel()

    # A response still owed to a lease that ended never reaches the next lease of the socket
    # (a lease that ends owing a response frame destroys its socket).
    def test_response_owed_to_an_ended_lease_never_reaches_the_next_lease(self):
        pb2 = ENV.pb2
        for how_it_ends in ("release", "half-close"):
            with self.subTest(how_it_ends):
                first = f"first request, then {how_it_ends}".encode()
                requests = [pb2.LeaseRequest(open=pb2.OpenLease(backend="owed")),
                            pb2.LeaseRequest(data=frame(first))]
                if how_it_ends == "release":
                    requests.append(pb2.LeaseRequest(release=pb2.ReleaseLease()))
                stream = ENV.broker_stub.Lease(iter(requests), timeout=RPC_TIMEOUT)
                kinds = [message.WhichOneof("kind") for message in stream]
                self.assertEqual(kinds[:1], ["info"])
                self.assertEqual(stream.code(), grpc.StatusCode.OK)
                # "owed" has one socket: this Call gets the same slot, a replacement socket or
                # an error, but never the first lease's response.
                second = f"second request, after {how_it_ends}".encode()
                try:
                    response = self.call("owed", frame(second))
                except grpc.RpcError as error:
                    self.fail(f"Call after the lease failed: {error.code()} {error.details()}")
                self.assertEqual(response.response, frame(b"re:" + second))

    # A caller outside allowed_callers is refused, with a machine-readable reason.
    def test_caller_outside_allowed_callers_is_permission_denied(self):
        before = ENV.framed.stats()["requests"]
        error = self.assert_call_fails(grpc.StatusCode.PERMISSION_DENIED, "framed", frame(b"x"),
                                       stub=ENV.other_broker_stub)
        self.assertIn(OTHER_CALLER, error.details())
        self.assertEqual(reason_of(error), "PERMISSION_DENIED")
        # The details decode as google.rpc.Status / ErrorInfo without the project's help.
        details = dict(error.trailing_metadata()).get("grpc-status-details-bin")
        self.assertIsNotNone(details)
        status = ENV.pb2.RpcStatus.FromString(details)
        self.assertEqual(status.code, grpc.StatusCode.PERMISSION_DENIED.value[0])
        self.assertEqual(len(status.details), 1)
        self.assertEqual(status.details[0].type_url, "type.googleapis.com/google.rpc.ErrorInfo")
        info = ENV.pb2.ErrorInfo.FromString(status.details[0].value)
        self.assertEqual(info.reason, "PERMISSION_DENIED")
        self.assertEqual(info.domain, "tlsbroker.dev")
        self.assertEqual(ENV.framed.stats()["requests"], before)

    # A Lease stream from a caller outside allowed_callers ends with PERMISSION_DENIED.
    def test_lease_by_caller_outside_allowed_callers_is_permission_denied(self):
        pb2 = ENV.pb2
        stream = ENV.other_broker_stub.Lease(
            iter([pb2.LeaseRequest(open=pb2.OpenLease(backend="framed"))]),
            timeout=RPC_TIMEOUT)
        with self.assertRaises(grpc.RpcError) as caught:
            list(stream)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(reason_of(caught.exception), "PERMISSION_DENIED")

    # A backend name the broker does not know is NOT_FOUND.
    def test_unknown_backend_is_not_found(self):
        error = self.assert_call_fails(grpc.StatusCode.NOT_FOUND, "no-such-backend", frame(b"x"))
        self.assertIn("no-such-backend", error.details())
        self.assertIsNotNone(reason_of(error))

    # A request that is not exactly one frame is INVALID_ARGUMENT and reaches no backend.
    def test_malformed_request_frame_is_invalid_argument(self):
        before = ENV.framed.stats()["requests"]
        malformed = {
            "empty": b"",
            "truncated payload": struct.pack(">I", 20) + b"short",
            "truncated length field": b"\x00\x00",
            "length below its own size": struct.pack(">I", 2) + b"ab",
            "two frames": frame(b"one") + frame(b"two"),
            "trailing bytes": frame(b"one") + b"\x00",
        }
        for name, request in malformed.items():
            with self.subTest(name):
                error = self.assert_call_fails(grpc.StatusCode.INVALID_ARGUMENT, "framed",
                                               request)
                self.assertIsNotNone(reason_of(error))
        self.assertEqual(ENV.framed.stats()["requests"], before)
        # The pool is unharmed: a good frame still works.
        self.assertEqual(self.call("framed", frame(b"ok")).response, frame(b"re:ok"))

    # The admin caller lists every configured backend with its pool figures.
    def test_admin_caller_lists_backends(self):
        response = ENV.admin_stub.ListBackends(ENV.pb2.ListBackendsRequest(),
                                               timeout=RPC_TIMEOUT)
        backends = {b.name: b for b in response.backends}
        self.assertEqual(set(backends), {"framed", "reuse", "owed"})
        framed = backends["framed"]
        self.assertEqual(framed.address, f"127.0.0.1:{ENV.framed.port}")
        self.assertEqual(framed.max_sockets, MAX_SOCKETS)
        self.assertFalse(framed.draining)
        self.assertLessEqual(framed.idle + framed.leased + framed.connecting, MAX_SOCKETS)

    # A caller not on admin_callers may not use BrokerAdminService.
    def test_non_admin_caller_cannot_list_backends(self):
        with self.assertRaises(grpc.RpcError) as caught:
            ENV.other_admin_stub.ListBackends(ENV.pb2.ListBackendsRequest(),
                                              timeout=RPC_TIMEOUT)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(reason_of(caught.exception), "PERMISSION_DENIED")


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True, help="the tlsbroker executable")
    parser.add_argument("--backend", required=True, help="the tlsb-test-backend executable")
    parser.add_argument("--proto-dir", required=True, help="the repository's proto/ directory")
    ARGS, rest = parser.parse_known_args()
    # SIGTERM (e.g. a ctest timeout) runs the atexit cleanup instead of orphaning children.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    program = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    result = program.result
    if not result.wasSuccessful() and ENV is not None:
        sys.stderr.write(ENV.report() + "\n")
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
