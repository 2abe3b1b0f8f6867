"""A small Python client for tlsbroker (docs/clients.md), over Debian's python3-grpcio.

    from tlsbroker_client import BrokerClient, BrokerError

    with BrokerClient("127.0.0.1:7443", ca="root.crt", cert="client.pem", key="client.key") as c:
        result = c.call("ims-prod", request_frame)        # -> CallResult
        print(result.client_id, result.response)
        with c.lease("ims-prod", client_id=result.client_id) as lease:
            print(lease.client_id)                       # the socket's client ID, for IMS
            lease.send(frame)
            data = lease.recv()                          # bytes as the backend sent them

A failed RPC raises BrokerError with the gRPC code, the broker's reason (the
"tlsbroker-reason" trailer, else the ErrorInfo in the status details), the ErrorInfo's
metadata, and `retryable` and `outcome_unknown`, which follow the retry rules of
docs/clients.md (after docs/errors.md).

The gRPC stubs are generated from proto/tlsbroker/v1/broker.proto with Debian's protoc and
grpc_python_plugin (packages protobuf-compiler and protobuf-compiler-grpc), into a temporary
directory at first use; or ahead of time with

    python3 clients/python/tlsbroker_client.py generate-stubs OUT_DIR

and then found through TLSBROKER_STUBS_DIR=OUT_DIR. Run it with Debian's /usr/bin/python3:
its python3-grpcio and python3-protobuf match that protoc.
"""

import atexit
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading

import grpc

__all__ = ["BrokerClient", "BrokerError", "CallResult", "Lease", "generate_stubs", "load_stubs",
           "REASON_KEY", "ERROR_DOMAIN"]

REASON_KEY = "tlsbroker-reason"      # trailing metadata that carries the reason
ERROR_DOMAIN = "tlsbroker.dev"        # ErrorInfo.domain of the broker's errors
STATUS_DETAILS_KEY = "grpc-status-details-bin"
ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
DEFAULT_PROTO_DIR = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto"))
PROTO_FILE = "tlsbroker/v1/broker.proto"


# ---- Stubs ------------------------------------------------------------------------------------

def generate_stubs(out_dir, proto_dir=DEFAULT_PROTO_DIR):
    """Generates broker_pb2.py and broker_pb2_grpc.py under OUT_DIR/tlsbroker/v1 with Debian's
    protoc and grpc_python_plugin. OUT_DIR is what goes on sys.path (load_stubs does that)."""
    os.makedirs(out_dir, exist_ok=True)
    # Debian's protoc by path: the generated code must match Debian's python3-protobuf, and
    # another protoc may come first on PATH.
    protoc = "/usr/bin/protoc" if os.path.exists("/usr/bin/protoc") else "protoc"
    plugin = "/usr/bin/grpc_python_plugin"
    if not os.path.exists(plugin):
        plugin = shutil.which("grpc_python_plugin") or plugin
    subprocess.run(
        [protoc, "-I", proto_dir, f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
         f"--plugin=protoc-gen-grpc_python={plugin}", PROTO_FILE],
        check=True, timeout=60)
    # Regular packages, so no other "tlsbroker" directory on sys.path can merge into them.
    for package in ("tlsbroker", "tlsbroker/v1"):
        open(os.path.join(out_dir, package, "__init__.py"), "a").close()
    return out_dir


_stubs = None
_stubs_lock = threading.Lock()


def load_stubs(stubs_dir=None, proto_dir=DEFAULT_PROTO_DIR):
    """Returns (broker_pb2, broker_pb2_grpc). Uses STUBS_DIR (or $TLSBROKER_STUBS_DIR) when it
    holds generated stubs; otherwise generates them from PROTO_DIR into a temporary directory
    that is removed at exit. The first call wins: later calls return the same modules."""
    global _stubs
    with _stubs_lock:
        if _stubs is not None:
            return _stubs
        stubs_dir = stubs_dir or os.environ.get("TLSBROKER_STUBS_DIR")
        if not stubs_dir or not os.path.exists(
                os.path.join(stubs_dir, "tlsbroker", "v1", "broker_pb2.py")):
            if not stubs_dir:
                stubs_dir = tempfile.mkdtemp(prefix="tlsbroker-stubs.")
                atexit.register(shutil.rmtree, stubs_dir, True)
            generate_stubs(stubs_dir, proto_dir)
        sys.path.insert(0, os.path.abspath(stubs_dir))
        from tlsbroker.v1 import broker_pb2, broker_pb2_grpc  # noqa: E402
        _stubs = (broker_pb2, broker_pb2_grpc)
        return _stubs


# ---- Errors -----------------------------------------------------------------------------------

# The backend's certificate or the TLS policy is wrong: these reasons come with UNAVAILABLE but
# do not heal by retrying (docs/errors.md, "The backend's certificate"). OCSP_UNREACHABLE does.
NON_HEALING_REASONS = frozenset({
    "UNKNOWN_CA", "EXPIRED", "NOT_YET_VALID", "BAD_CERTIFICATE", "HOSTNAME_MISMATCH",
    "PEER_NAME_MISMATCH", "SAN_MISMATCH", "ISSUER_MISMATCH", "SPKI_PIN_MISMATCH",
    "CERTIFICATE_REVOKED", "CRL_STALE", "CRL_UNAVAILABLE", "OCSP_UNKNOWN", "OCSP_INVALID",
})


# Codes that, without the broker's reason, mean its answer never arrived (the caller's own
# deadline passed, it cancelled, the connection broke): the request may have been under way.
_NO_ANSWER_CODES = frozenset({
    grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL,
})


def is_outcome_unknown(code, reason):
    """True when the request may have reached the backend: the broker said OUTCOME_UNKNOWN,
    or its answer never arrived (no reason, and a code that a broken or abandoned call gets)."""
    return reason == "OUTCOME_UNKNOWN" or (reason is None and code in _NO_ANSWER_CODES)


def is_retryable(code, reason):
    """The retry rule of docs/clients.md (after docs/errors.md): True when the broker said the
    request did not reach the backend and sending it again, after a backoff, can succeed."""
    if is_outcome_unknown(code, reason):
        return False  # may have reached the backend: resend only an idempotent request
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        # The broker's limits (waiters, the caller's leases, the socket budget) free up. Not
        # FRAME_TOO_LARGE (the backend served the request; its answer was too large), nor
        # gRPC's own message-size refusal, which comes without a reason.
        return reason is not None and reason != "FRAME_TOO_LARGE"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return True   # the broker found no socket in time; nothing was sent
    if code == grpc.StatusCode.UNAVAILABLE:
        return reason not in NON_HEALING_REASONS
    return False      # NOT_FOUND, PERMISSION_DENIED, INVALID_ARGUMENT, FAILED_PRECONDITION, ...


class BrokerError(Exception):
    """A failed RPC.

    code                grpc.StatusCode
    message             the status message, for people
    reason              UPPER_SNAKE reason: the "tlsbroker-reason" trailer, else the ErrorInfo's;
                        None when the error did not come from the broker (e.g. no connection)
    metadata            the ErrorInfo's metadata ({"backend": ...}), {} without one
    trailing_metadata   every trailing metadata pair, as gRPC returned them
    retryable           safe to send again as is, after a backoff (docs/clients.md)
    outcome_unknown     the request may have reached the backend: resend only if idempotent.
                        The broker said OUTCOME_UNKNOWN, or its answer never arrived (the
                        caller's deadline passed, the connection broke: no reason)
    """

    def __init__(self, code, message, reason=None, metadata=None, trailing_metadata=()):
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.trailing_metadata = tuple(trailing_metadata or ())
        self.retryable = is_retryable(code, reason)
        self.outcome_unknown = is_outcome_unknown(code, reason)
        super().__init__(f"{code.name} ({reason or 'no reason'}): {message}")

    @classmethod
    def from_rpc_error(cls, error):
        """From a grpc.RpcError (also the status of a finished stream)."""
        trailers = tuple(error.trailing_metadata() or ())
        reason, metadata = None, {}
        for key, value in trailers:
            if key == REASON_KEY and reason is None:
                reason = value if isinstance(value, str) else value.decode()
        for key, value in trailers:
            if key == STATUS_DETAILS_KEY:
                info = _error_info(value)
                if info is not None:
                    metadata = dict(info.metadata)
                    if reason is None:
                        reason = info.reason or None
        return cls(error.code(), error.details() or "", reason, metadata, trailers)


def _error_info(details_bin):
    """The ErrorInfo of the broker's domain in a grpc-status-details-bin value, or None."""
    pb2, _ = load_stubs()
    try:
        status = pb2.RpcStatus.FromString(details_bin)
    except Exception:  # noqa: BLE001  (not a status: ignore it)
        return None
    for detail in status.details:
        if detail.type_url == ERROR_INFO_TYPE:
            info = pb2.ErrorInfo.FromString(detail.value)
            if info.domain == ERROR_DOMAIN:
                return info
    return None


# ---- Results ----------------------------------------------------------------------------------

class CallResult:
    """A Call's answer: `response` (the backend's frame, bytes) and `lease` (the LeaseInfo
    message: client_id, socket_id, reused, tls_version, cipher, peer, ...)."""

    def __init__(self, message):
        self.response = message.response
        self.lease = message.lease

    @property
    def client_id(self):
        """The client ID of the socket the exchange ran on."""
        return self.lease.client_id


class Lease:
    """An open lease: `info` (LeaseInfo), `client_id`, send(bytes), recv(), release().
    Made by BrokerClient.lease(); use it as a context manager, which releases on exit."""

    _DONE = object()

    def __init__(self, stub, pb2, open_request, timeout, metadata):
        self._pb2 = pb2
        self._requests = queue.Queue()
        self._closed = False
        self._pending = b""  # bytes received by recv_exactly beyond what it returned
        self._stream = stub.Lease(self._request_iterator(), timeout=timeout, metadata=metadata)
        self._requests.put(pb2.LeaseRequest(open=open_request))
        try:
            first = next(self._stream)
        except grpc.RpcError as error:
            self._close_requests()
            raise BrokerError.from_rpc_error(error) from None
        except StopIteration:
            self._close_requests()
            raise BrokerError(grpc.StatusCode.UNKNOWN, "lease stream ended without LeaseInfo")
        if first.WhichOneof("kind") != "info":
            self.cancel()
            raise BrokerError(grpc.StatusCode.UNKNOWN, "first lease message is not LeaseInfo")
        self.info = first.info

    def _request_iterator(self):
        while True:
            item = self._requests.get()
            if item is self._DONE:
                return
            yield item

    def _close_requests(self):
        if not self._closed:
            self._closed = True
            self._requests.put(self._DONE)

    @property
    def client_id(self):
        """The client ID of the leased socket: the same for every lease of its slot."""
        return self.info.client_id

    def send(self, data):
        """Queues bytes for the backend, in order."""
        if self._closed:
            raise ValueError("the lease is released")
        self._requests.put(self._pb2.LeaseRequest(data=bytes(data)))

    def recv(self):
        """The next bytes the backend sent (any chunk size), or None when the lease ended
        cleanly. Raises BrokerError when it ended with an error."""
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        try:
            message = next(self._stream)
        except StopIteration:
            self._close_requests()
            return None
        except grpc.RpcError as error:
            self._close_requests()  # the stream is over: let the request thread end
            raise BrokerError.from_rpc_error(error) from None
        return message.data

    def recv_exactly(self, n):
        """Exactly n bytes, however the backend's bytes were chunked; the rest stays for the
        next recv. BrokerError if the lease ends first."""
        data = b""
        while len(data) < n:
            chunk = self.recv()
            if chunk is None:
                raise BrokerError(grpc.StatusCode.UNKNOWN,
                                  f"lease ended after {len(data)} of {n} bytes")
            data += chunk
        data, self._pending = data[:n], data[n:]
        return data

    def release(self):
        """Ends the lease cleanly and waits for the stream's status. The socket goes back to the
        pool if every answer was read. Raises BrokerError if the stream did not end OK (bytes
        the backend sent after release are dropped, and the socket is closed)."""
        if self._closed:
            return
        self._requests.put(self._pb2.LeaseRequest(release=self._pb2.ReleaseLease()))
        self._close_requests()
        try:
            for _ in self._stream:
                pass
        except grpc.RpcError as error:
            raise BrokerError.from_rpc_error(error) from None

    def cancel(self):
        """Abandons the lease; the broker closes the socket (its state is unknown)."""
        self._close_requests()
        self._stream.cancel()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.release()
        else:
            self.cancel()
        return False


# ---- Client -----------------------------------------------------------------------------------

def _duration(seconds):
    from google.protobuf import duration_pb2
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


class BrokerClient:
    """A channel to a broker with mTLS.

    target         "host:port" of the broker's gRPC listener
    ca, cert, key  PEM files: the CA that signed the broker's certificate, this caller's
                   certificate chain and its key
    server_name    the name to check the broker's certificate against when it is not the host
                   in `target` (e.g. target "10.0.0.5:7443", server_name "tlsbroker.internal")
    """

    def __init__(self, target, ca, cert, key, server_name=None, options=()):
        def read(path):
            with open(path, "rb") as f:
                return f.read()
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read(ca), private_key=read(key), certificate_chain=read(cert))
        options = list(options)
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        self.pb2, self.pb2_grpc = load_stubs()
        self.channel = grpc.secure_channel(target, credentials, options=options)
        self.stub = self.pb2_grpc.BrokerServiceStub(self.channel)
        self.admin = self.pb2_grpc.BrokerAdminServiceStub(self.channel)

    def wait_ready(self, timeout):
        """Waits until the channel is connected (TLS included); grpc.FutureTimeoutError if not."""
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def call(self, backend, request_bytes, client_id=None, acquire_timeout=None, timeout=None,
             metadata=None):
        """One framed request/response exchange. REQUEST_BYTES is one complete frame of the
        backend's framing. CLIENT_ID asks for that socket; ACQUIRE_TIMEOUT (seconds) bounds the
        wait for a socket; TIMEOUT (seconds) is the RPC deadline. Returns a CallResult; raises
        BrokerError."""
        request = self.pb2.CallRequest(backend=backend, request=bytes(request_bytes),
                                       client_id=client_id or "")
        if acquire_timeout is not None:
            request.acquire_timeout.CopyFrom(_duration(acquire_timeout))
        try:
            return CallResult(self.stub.Call(request, timeout=timeout, metadata=metadata))
        except grpc.RpcError as error:
            raise BrokerError.from_rpc_error(error) from None

    def lease(self, backend, client_id=None, acquire_timeout=None, timeout=None, metadata=None):
        """Opens a lease (waits for its LeaseInfo) and returns a Lease, which is a context
        manager: `with client.lease("ims-prod") as lease: ...` releases on a clean exit and
        cancels on an exception. TIMEOUT (seconds) is the deadline of the whole stream."""
        open_request = self.pb2.OpenLease(backend=backend, client_id=client_id or "")
        if acquire_timeout is not None:
            open_request.acquire_timeout.CopyFrom(_duration(acquire_timeout))
        return Lease(self.stub, self.pb2, open_request, timeout, metadata)

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _main(argv):
    if len(argv) == 2 and argv[0] == "generate-stubs":
        out = generate_stubs(argv[1])
        print(f"stubs in {out}; use them with TLSBROKER_STUBS_DIR={out}")
        return 0
    sys.stderr.write("usage: tlsbroker_client.py generate-stubs OUT_DIR\n")
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
