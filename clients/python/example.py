#!/usr/bin/python3
"""Makes a Call and a Lease through a running tlsbroker and prints the client ID of the socket
each ran on (the ID an IMS Connect caller needs). docs/clients.md walks through it.

    example.py --target HOST:PORT --ca CA.pem --cert CLIENT.pem --key CLIENT.key
               [--server-name NAME] [--backend demo] [--message TEXT]

The backend must use the demo's framing: a 4-byte big-endian length that counts itself, then
the payload (scripts/demo.sh's backend "demo" answers "re:" + payload).

Exit codes: 0 both worked; 1 the broker answered with an error (printed with its code, reason
and whether a retry may help); 2 bad usage.
"""

import argparse
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsbroker_client import BrokerClient, BrokerError  # noqa: E402

TIMEOUT = 20  # seconds: every RPC has a deadline


def frame(payload):
    """One frame of the demo backend's framing: 4-byte big-endian length including itself."""
    return struct.pack(">I", len(payload) + 4) + payload


def describe(lease_info):
    return (f"client ID {lease_info.client_id}, socket {lease_info.socket_id}, "
            f"{'reused' if lease_info.reused else 'new'}, {lease_info.tls_version} "
            f"{lease_info.cipher}, backend certificate {lease_info.peer.subject}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="the broker's gRPC address, host:port")
    parser.add_argument("--ca", required=True, help="CA bundle that signed the broker's cert")
    parser.add_argument("--cert", required=True, help="this caller's certificate chain (PEM)")
    parser.add_argument("--key", required=True, help="this caller's private key (PEM)")
    parser.add_argument("--server-name", help="name to check the broker's certificate against")
    parser.add_argument("--backend", default="demo", help="backend name (default: demo)")
    parser.add_argument("--message", default="hello from python", help="payload to send")
    args = parser.parse_args()
    payload = args.message.encode()

    with BrokerClient(args.target, args.ca, args.cert, args.key,
                      server_name=args.server_name) as client:
        try:
            # Call: one request frame, one response frame, on a pooled socket.
            result = client.call(args.backend, frame(payload), timeout=TIMEOUT)
            print(f"call: {describe(result.lease)}")
            print(f"call: response {result.response[4:].decode(errors='replace')!r}")
            print(f"client ID: {result.client_id}")

            # Lease: the same socket (by its client ID) for as long as the stream lives.
            with client.lease(args.backend, client_id=result.client_id,
                              timeout=TIMEOUT) as lease:
                print(f"lease: {describe(lease.info)}")
                lease.send(frame(payload + b" (lease)"))
                length, = struct.unpack(">I", lease.recv_exactly(4))
                body = lease.recv_exactly(length - 4)
                print(f"lease: response {body.decode(errors='replace')!r}")
            print(f"lease: released, client ID {lease.client_id}")
        except BrokerError as error:
            unknown = " (outcome unknown: resend only if idempotent)" \
                if error.outcome_unknown else ""
            print(f"error: {error.code.name} reason {error.reason} "
                  f"retryable {'yes' if error.retryable else 'no'}{unknown}: {error.message}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
