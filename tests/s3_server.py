"""A real S3-compatible server on loopback for the team tests: moto's standalone server, and a proxy that breaks it.

``MotoS3`` starts ``python -m moto.server`` (moto from PyPI, in memory) on a free loopback port, waits
until it answers, creates a bucket, and stops it on exit; it runs under ``timeout`` so it stops by itself
even if the test process dies. ``FlakyProxy`` sits between DVC (or ``adacot cache-push``) and it: in
mode ``pass`` it forwards every request, in ``refuse_writes`` it answers each write (PUT, POST, DELETE)
with S3's 403 AccessDenied, and in ``drop_after`` it forwards ``budget`` writes and then closes every
connection without an answer (a remote that goes away mid-push). Not a mock: the bytes that reach the
store are stored by moto's S3 implementation.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "adacot-test",
    "AWS_SECRET_ACCESS_KEY": "adacot-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoS3:
    """moto's S3 server in a subprocess (``with MotoS3() as s3: s3.endpoint``)."""

    def __init__(self, bucket: str = "adacot-team", lifetime_s: int = 3600) -> None:
        self.bucket = bucket
        self.lifetime_s = lifetime_s
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoS3:
        cmd = ["timeout", str(self.lifetime_s), sys.executable, "-m", "moto.server", "-H", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [*cmd, "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy()
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on {self.endpoint}") from None
                time.sleep(0.2)
        self.create_bucket()
        return self

    def create_bucket(self) -> None:
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, **_boto_credentials())
        client.create_bucket(Bucket=self.bucket)

    def keys(self, prefix: str = "") -> list[str]:
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, **_boto_credentials())
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> MotoS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class FlakyProxy:
    """An HTTP proxy on loopback in front of ``upstream`` (host, port) that can refuse or drop writes."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.mode = "pass"
        self.budget = 0
        self.writes = 0  # writes forwarded
        self.refused = 0  # writes refused or dropped
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                write = self.command in {"PUT", "POST", "DELETE"}
                with proxy._lock:
                    verdict = "forward"
                    if write and proxy.mode == "refuse_writes":
                        verdict = "refuse"
                    elif write and proxy.mode == "drop_after":
                        verdict = "forward" if proxy.budget > 0 else "drop"
                        proxy.budget -= 1
                    if write and verdict == "forward":
                        proxy.writes += 1
                    elif write:
                        proxy.refused += 1
                if verdict == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if verdict == "refuse":
                    self.send_response(403)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(ACCESS_DENIED)))
                    self.end_headers()
                    self.wfile.write(ACCESS_DENIED)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set(self, mode: str, budget: int = 0) -> None:
        with self._lock:
            self.mode, self.budget = mode, budget

    def __enter__(self) -> FlakyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
