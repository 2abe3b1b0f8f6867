#!/usr/bin/python3
"""clients/python/tlsbroker_client.py against a real broker: the one scripts/demo.sh
--keep-running left up (its settings file, running.env, is the only argument).

    python_client_test.py RUNNING_ENV [unittest args]

The demo's backends are real TLS servers that require client certificates: "demo" (framed,
answers "re:" + payload, 8 sockets, client IDs DEMO0001..DEMO0008) and "demo-echo".
"""

import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "clients", "python"))
import grpc  # noqa: E402
import tlsbroker_client  # noqa: E402
from tlsbroker_client import BrokerClient, BrokerError  # noqa: E402

RPC_TIMEOUT = 20  # seconds; every RPC has a deadline so a hang fails instead of blocking
ENV = {}
CLIENT = None


def frame(payload):
    return struct.pack(">I", len(payload) + 4) + payload


def setUpModule():
    global CLIENT
    with open(sys.argv[1]) as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            ENV[key] = value
    CLIENT = BrokerClient(ENV["TARGET"], ENV["CA"], ENV["CERT"], ENV["KEY"])
    CLIENT.wait_ready(RPC_TIMEOUT)


def tearDownModule():
    CLIENT.close()


def socket_states():
    """{client_id: state name} of the demo backend's sockets, from the admin API."""
    pb2 = CLIENT.pb2
    sockets = CLIENT.admin.ListSockets(pb2.ListSocketsRequest(backend="demo"),
                                       timeout=RPC_TIMEOUT).sockets
    return {s.client_id: pb2.SocketState.Name(s.state) for s in sockets}


class PythonClientTest(unittest.TestCase):

    # call() returns the response frame and the broker's LeaseInfo; the client ID is a slot the
    # broker lists.
    def test_call_returns_response_and_a_client_id_the_broker_lists(self):
        result = CLIENT.call("demo", frame(b"module"), timeout=RPC_TIMEOUT)
        self.assertEqual(result.response, frame(b"re:module"))
        self.assertRegex(result.client_id, r"^DEMO000[1-8]$")
        self.assertEqual(result.lease.backend, "demo")
        self.assertIn(result.client_id, socket_states())

    # A call naming a client ID runs on that socket.
    def test_call_with_client_id_runs_on_that_socket(self):
        first = CLIENT.call("demo", frame(b"a"), timeout=RPC_TIMEOUT)
        again = CLIENT.call("demo", frame(b"b"), client_id=first.client_id, timeout=RPC_TIMEOUT)
        self.assertEqual(again.client_id, first.client_id)
        self.assertEqual(again.lease.socket_id, first.lease.socket_id)
        self.assertEqual(again.response, frame(b"re:b"))

    # The lease context manager: LeaseInfo first, bytes both ways, the socket is LEASED inside
    # and goes back to the pool (IDLE) after a clean exit.
    def test_lease_context_manager_exchanges_and_returns_the_socket_to_the_pool(self):
        with CLIENT.lease("demo", timeout=RPC_TIMEOUT) as lease:
            self.assertRegex(lease.client_id, r"^DEMO000[1-8]$")
            self.assertEqual(socket_states()[lease.client_id], "SOCKET_STATE_LEASED")
            for payload in (b"one", b"two"):
                lease.send(frame(payload))
                length, = struct.unpack(">I", lease.recv_exactly(4))
                self.assertEqual(lease.recv_exactly(length - 4), b"re:" + payload)
        # The stream ended OK before __exit__ returned (release() waits for the status), and
        # the socket went back to the pool: a Call pinned to it runs on the same socket.
        after = CLIENT.call("demo", frame(b"after"), client_id=lease.client_id,
                            timeout=RPC_TIMEOUT)
        self.assertEqual(after.lease.socket_id, lease.info.socket_id)
        self.assertTrue(after.lease.reused)

    # An exception inside the with-block propagates and cancels the lease, so the slot is free
    # at once (not held until the stream's deadline).
    def test_lease_left_by_an_exception_is_cancelled_and_frees_its_slot(self):
        with self.assertRaises(RuntimeError):
            with CLIENT.lease("demo", timeout=RPC_TIMEOUT) as lease:
                lease.send(frame(b"abandoned"))
                raise RuntimeError("caller gave up")
        # The broker keeps the slot (client ID); the socket is the old one or, if the cancel
        # caught a request in flight, a replacement.
        after = CLIENT.call("demo", frame(b"next"), client_id=lease.client_id,
                            acquire_timeout=5, timeout=RPC_TIMEOUT)
        self.assertEqual(after.response, frame(b"re:next"))
        self.assertEqual(after.client_id, lease.client_id)

    # Unknown backend: BrokerError NOT_FOUND with the reason from the trailer, the ErrorInfo's
    # metadata, and not retryable.
    def test_unknown_backend_raises_not_found_with_reason_and_metadata(self):
        with self.assertRaises(BrokerError) as caught:
            CLIENT.call("no-such-backend", frame(b"x"), timeout=RPC_TIMEOUT)
        error = caught.exception
        self.assertEqual(error.code, grpc.StatusCode.NOT_FOUND)
        self.assertEqual(error.reason, "NOT_FOUND")
        self.assertEqual(error.metadata, {"backend": "no-such-backend"})
        self.assertIn(("tlsbroker-reason", "NOT_FOUND"), error.trailing_metadata)
        self.assertFalse(error.retryable)
        self.assertFalse(error.outcome_unknown)

    # Without the trailer the reason comes from the ErrorInfo in grpc-status-details-bin.
    def test_reason_falls_back_to_error_info_without_the_trailer(self):
        with self.assertRaises(grpc.RpcError) as caught:
            CLIENT.stub.Call(CLIENT.pb2.CallRequest(backend="no-such-backend",
                                                    request=frame(b"x")),
                             timeout=RPC_TIMEOUT)
        trailers = [(k, v) for k, v in caught.exception.trailing_metadata()
                    if k != "tlsbroker-reason"]
        self.assertTrue(any(k == "grpc-status-details-bin" for k, _ in trailers))

        class WithoutReasonTrailer:
            def __init__(self, error):
                self.error = error

            def code(self):
                return self.error.code()

            def details(self):
                return self.error.details()

            def trailing_metadata(self):
                return trailers

        error = BrokerError.from_rpc_error(WithoutReasonTrailer(caught.exception))
        self.assertEqual(error.reason, "NOT_FOUND")
        self.assertEqual(error.metadata, {"backend": "no-such-backend"})

    # A Lease on an unknown backend raises from lease(), before any data.
    def test_lease_on_unknown_backend_raises_not_found(self):
        with self.assertRaises(BrokerError) as caught:
            CLIENT.lease("no-such-backend", timeout=RPC_TIMEOUT)
        self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)
        self.assertEqual(caught.exception.reason, "NOT_FOUND")

    # A client ID that is not one of the backend's slots is NOT_FOUND, not retryable.
    def test_client_id_outside_the_pool_is_not_found(self):
        with self.assertRaises(BrokerError) as caught:
            CLIENT.call("demo", frame(b"x"), client_id="NOPE0099", timeout=RPC_TIMEOUT)
        self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)
        self.assertFalse(caught.exception.retryable)

    # acquire_timeout reaches the broker: a Call waiting for a socket held by a lease fails with
    # DEADLINE_EXCEEDED (nothing was sent), which is retryable, and succeeds once released.
    def test_acquire_timeout_on_a_leased_socket_is_deadline_exceeded_and_retryable(self):
        with CLIENT.lease("demo", timeout=RPC_TIMEOUT) as lease:
            with self.assertRaises(BrokerError) as caught:
                CLIENT.call("demo", frame(b"waits"), client_id=lease.client_id,
                            acquire_timeout=0.2, timeout=RPC_TIMEOUT)
        error = caught.exception
        self.assertEqual(error.code, grpc.StatusCode.DEADLINE_EXCEEDED, error)
        self.assertEqual(error.reason, "DEADLINE_EXCEEDED")
        self.assertTrue(error.retryable)
        retry = CLIENT.call("demo", frame(b"waits"), client_id=lease.client_id,
                            acquire_timeout=5, timeout=RPC_TIMEOUT)
        self.assertEqual(retry.response, frame(b"re:waits"))

    # A malformed frame is INVALID_ARGUMENT: fix the request, do not retry.
    def test_malformed_frame_is_invalid_argument_not_retryable(self):
        with self.assertRaises(BrokerError) as caught:
            CLIENT.call("demo", b"\x00\x00", timeout=RPC_TIMEOUT)
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertFalse(caught.exception.retryable)

    # The retry rules of docs/clients.md for the codes and reasons a test cannot provoke on a
    # healthy demo: OUTCOME_UNKNOWN never, certificate reasons never, reachability yes, and an
    # answer that never came from the broker is an unknown outcome.
    def test_retry_rules_follow_docs_clients_md(self):
        code = grpc.StatusCode
        cases = [  # code, reason, retryable, outcome unknown
            (code.ABORTED, "OUTCOME_UNKNOWN", False, True),
            (code.DEADLINE_EXCEEDED, "OUTCOME_UNKNOWN", False, True),
            (code.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", True, False),
            (code.DEADLINE_EXCEEDED, None, False, True),  # the caller's own deadline
            (code.UNAVAILABLE, "CONNECT_REFUSED", True, False),
            (code.UNAVAILABLE, "DRAINING", True, False),
            (code.UNAVAILABLE, "OCSP_UNREACHABLE", True, False),
            (code.UNAVAILABLE, None, False, True),  # the connection to the broker broke
            (code.UNAVAILABLE, "CERTIFICATE_REVOKED", False, False),
            (code.UNAVAILABLE, "HOSTNAME_MISMATCH", False, False),
            (code.RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED", True, False),
            (code.RESOURCE_EXHAUSTED, "FRAME_TOO_LARGE", False, False),
            (code.RESOURCE_EXHAUSTED, None, False, False),  # gRPC's message size limit
            (code.PERMISSION_DENIED, "PERMISSION_DENIED", False, False),
            (code.FAILED_PRECONDITION, "EXTRA_RESPONSE", False, False),
            (code.CANCELLED, None, False, True),
        ]
        for status, reason, retryable, unknown in cases:
            with self.subTest(status=status.name, reason=reason):
                error = BrokerError(status, "m", reason)
                self.assertEqual(error.retryable, retryable)
                self.assertEqual(error.outcome_unknown, unknown)

    # The caller's own deadline passing during a lease comes from its gRPC library, without
    # the broker's reason (a cancelled call gets no status from the server): an unknown
    # outcome, not a retryable DEADLINE_EXCEEDED.
    def test_callers_own_deadline_is_an_unknown_outcome(self):
        lease = CLIENT.lease("demo", timeout=1)
        with self.assertRaises(BrokerError) as caught:
            lease.recv()  # the demo backend sends nothing unasked: waits out the deadline
        error = caught.exception
        self.assertEqual(error.code, grpc.StatusCode.DEADLINE_EXCEEDED, error)
        self.assertIsNone(error.reason)
        self.assertTrue(error.outcome_unknown)
        self.assertFalse(error.retryable)

    # Every certificate reason docs/errors.md lists as not healing is one the module refuses to
    # retry, and the module names no reason the docs do not have.
    def test_non_healing_reasons_match_docs_errors_md(self):
        docs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                            "errors.md")
        with open(docs) as f:
            text = f.read()
        section = text.split("### The backend's certificate", 1)[1].split("\n### ", 1)[0]
        listed = set()
        for line in section.splitlines():
            if line.startswith("| `"):
                listed.add(line.split("`")[1])
        self.assertIn("CERTIFICATE_REVOKED", listed)
        self.assertEqual(tlsbroker_client.NON_HEALING_REASONS, listed - {"OCSP_UNREACHABLE"})


if __name__ == "__main__":
    program = unittest.main(argv=[sys.argv[0]] + sys.argv[2:], exit=False, verbosity=2)
    sys.exit(0 if program.result.wasSuccessful() else 1)
