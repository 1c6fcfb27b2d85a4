"""A webhook receiver on 127.0.0.1 for tests, verifying signatures on its own.

The verification is written here from the Standard Webhooks spec (base64 of
HMAC-SHA256(key, "{id}.{timestamp}.{body}"), key = base64-decoded part after ``whsec_``)
without using ``core.webhooks.signing``, so a bug there cannot hide itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def independent_verify(secret: str, headers: dict[str, str], body: bytes, now: float) -> bool:
    """True when one ``v1`` signature matches and the timestamp is within 5 minutes."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs(now - int(stamp)) > 300:
        return False
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, msg_id.encode() + b"." + stamp.encode() + b"." + body, hashlib.sha256)
    expected = base64.b64encode(mac.digest()).decode()
    for part in headers.get("webhook-signature", "").split(" "):
        version, _, signature = part.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int


@dataclass
class Receiver:
    """Answers ``fail_first`` requests with 500, then 204; records every request."""

    secret: str = ""
    fail_first: int = 0
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/roomcast"

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            verified = bool(self.secret) and independent_verify(
                self.secret, headers, body, time.time()
            )
            answer = 500 if len(self.requests) < self.fail_first else 204
            self.requests.append(Received(headers, body, verified, answer))
            return answer

    def count(self) -> int:
        with self.lock:
            return len(self.requests)


@contextmanager
def running_receiver(fail_first: int = 0) -> Iterator[Receiver]:
    """A :class:`Receiver` served on 127.0.0.1 from a thread; set ``.secret`` once known."""
    receiver = Receiver(fail_first=fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            self.send_response(receiver.handle(headers, body))
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
