#!/usr/bin/env python3
"""A real `openssl ocsp` responder reachable on 127.0.0.1 only, for tests.

`openssl ocsp -port N` binds every interface, which the tests must not do. This helper listens
on 127.0.0.1 (port 0 = the kernel picks one) and answers each OCSP request (HTTP POST, or GET
with the base64 request in the path, RFC 6960 appendix A) by running the real responder once:

    openssl ocsp -index INDEX -CA CA -rsigner RSIGNER -rkey RKEY [-rother ROTHER]
                 -reqin req.der -respout resp.der -ndays 1

so every answer is signed and decided by OpenSSL itself from the `openssl ca` index.

Usage: ocsp_responder.py --index I --ca C --rsigner R --rkey K [--rother O] [--port 0]
Prints "LISTENING 127.0.0.1:PORT" when ready and "REQUEST n" for each request answered (tests
count these lines to prove a cached answer sent no query).
"""

import argparse
import base64
import http.server
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.parse


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--rsigner", required=True)
    parser.add_argument("--rkey", required=True)
    parser.add_argument("--rother")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    lock = threading.Lock()
    count = [0]
    workdir = tempfile.mkdtemp(prefix="ocsp-responder-")

    def respond(request_der):
        with lock:  # One openssl run at a time; the files below are reused.
            req = os.path.join(workdir, "req.der")
            resp = os.path.join(workdir, "resp.der")
            with open(req, "wb") as f:
                f.write(request_der)
            if os.path.exists(resp):
                os.remove(resp)
            cmd = ["openssl", "ocsp", "-index", args.index, "-CA", args.ca,
                   "-rsigner", args.rsigner, "-rkey", args.rkey,
                   "-reqin", req, "-respout", resp, "-ndays", "1"]
            if args.rother:
                cmd += ["-rother", args.rother]
            run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 timeout=20, check=False)
            if run.returncode != 0 or not os.path.exists(resp):
                sys.stdout.write("OPENSSL FAILED %s\n" % run.stdout.decode(errors="replace"))
                sys.stdout.flush()
                return None
            with open(resp, "rb") as f:
                data = f.read()
            count[0] += 1
            sys.stdout.write("REQUEST %d\n" % count[0])
            sys.stdout.flush()
            return data

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def answer(self, request_der):
            data = respond(request_der)
            if data is None:
                self.send_error(500, "openssl ocsp failed")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/ocsp-response")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length", "0"))
            self.answer(self.rfile.read(length))

        def do_GET(self):  # noqa: N802
            encoded = urllib.parse.unquote(self.path.rsplit("/", 1)[-1])
            try:
                self.answer(base64.b64decode(encoded))
            except ValueError:
                self.send_error(400, "bad base64 request")

        def log_message(self, *unused):  # Quiet: stdout carries the protocol lines.
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    sys.stdout.write("LISTENING 127.0.0.1:%d\n" % server.server_address[1])
    sys.stdout.flush()
    # Tests stop the responder with SIGTERM: exit through the finally below, so the work
    # directory does not outlive the test.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
