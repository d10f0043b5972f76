"""A local fake SMS gateway: a real HTTP server on 127.0.0.1 for the demo and the tests.

It behaves like a provider, so the whole path — batching, keep-alive, failures, retries,
failover, signed receipts — runs for real without sending a single SMS:

* ``POST /send`` — ``{"messages": [{"id", "mobile", "text"}, …]}`` (at most 1,000) →
  ``{"results": [{"id", "status", "provider_id", "error_code", "error_message"}, …]}``.
  A bad number is refused permanently (``MOBILE_NUMBER_ILLEGAL``), like a real provider.
  The message ``id`` is an idempotency key: an id accepted before (among the last ``dedupe``
  ids) is accepted again with the same ``provider_id`` but not recorded or receipted twice;
  ``/stats`` counts it under ``duplicates``.
* ``POST /control`` — change the behaviour (JSON body or query parameters): ``fail_rate``
  (0–1, the share of messages refused), ``fail_kind`` (temporary/permanent), ``latency_ms``
  (per request), ``down`` (every /send answers 503), ``callback_url`` (loopback only),
  ``receipt_fail_rate``, ``receipt_delay_ms``; ``{"reset": true}`` forgets messages and counts.
* ``GET /messages?since=<seq>&limit=<n>`` — accepted messages after ``seq`` (the last
  ``keep`` are kept); ``GET /stats`` — counters and the current behaviour.
* Receipts: a background thread posts accepted messages' receipts in batches to the
  callback URL as ``{"receipts": [{"id", "provider_id", "mobile", "status", "error_code",
  "error_message", "time"}]}``, signed with HMAC-SHA256 of the body under the shared secret
  (header ``X-Fake-Signature``, hex). A failed post is retried with backoff, five times.
* Replies (上行): ``server.send_replies(url, [{"mobile", "text"}])`` posts people's replies
  as ``{"replies": [{"id", "mobile", "text", "time"}]}``, signed the same way (e.g. a "TD").

Every request must carry the shared secret in ``X-Fake-Secret``. The server binds 127.0.0.1
only and posts receipts only to loopback URLs: it is a test double, not a relay.

Run: ``python -m yiwang.notify.gateways.fake_server --port 8925 [--fail-rate 0.2 …]``; in
tests: ``with FakeSmsServer(callback_url=…) as server: … server.url …``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import itertools
import json
import logging
import random
import secrets
import signal
import threading
import time
from collections import Counter, OrderedDict, deque
from dataclasses import asdict, dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from yiwang.core.httpclient import HttpClient, TransportError
from yiwang.core.validators import is_valid_mobile

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8925
DEFAULT_SECRET = "yiwang-fake-sms-secret"  # loopback only; settings may set another
SECRET_HEADER = "X-Fake-Secret"
SIGNATURE_HEADER = "X-Fake-Signature"
MAX_MESSAGES_PER_REQUEST = 1000
RECEIPT_ATTEMPTS = 5
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def sign(secret: str, body: bytes) -> str:
    """The receipt signature: hex HMAC-SHA256 of the raw body under the shared secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _flag(value) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in {"1", "true", "yes", "on"}


def _share(value) -> float:
    share = float(value)
    if not 0.0 <= share <= 1.0:
        raise ValueError("a rate is between 0 and 1")
    return share


def _millis(value) -> int:
    millis = int(value)
    if not 0 <= millis <= 60_000:
        raise ValueError("milliseconds between 0 and 60000")
    return millis


def _fail_kind(value) -> str:
    if value not in ("temporary", "permanent"):
        raise ValueError("fail_kind is temporary or permanent")
    return value


def _callback_url(value) -> str:
    url = str(value or "").strip()
    if url:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
            raise ValueError("callback_url must be http:// on 127.0.0.1, localhost or ::1")
    return url


@dataclass
class Behaviour:
    """What the fake does now; changed by ``POST /control``."""

    fail_rate: float = 0.0
    fail_kind: str = "temporary"
    latency_ms: int = 0
    down: bool = False
    callback_url: str = ""
    receipt_fail_rate: float = 0.0
    receipt_delay_ms: int = 0

    _PARSERS = {
        "fail_rate": _share,
        "fail_kind": _fail_kind,
        "latency_ms": _millis,
        "down": _flag,
        "callback_url": _callback_url,
        "receipt_fail_rate": _share,
        "receipt_delay_ms": _millis,
    }

    def updated(self, changes: dict) -> Behaviour:
        """A copy with ``changes`` applied; raises ``ValueError`` for an unknown or bad value."""
        unknown = set(changes) - set(self._PARSERS)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        values = asdict(self)
        for name, value in changes.items():
            try:
                values[name] = self._PARSERS[name](value)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{name}: {error}") from error
        return Behaviour(**values)


class FakeSmsServer:
    """The fake gateway's state and HTTP server. ``start()`` runs it in threads."""

    def __init__(
        self,
        *,
        port: int = 0,
        secret: str = DEFAULT_SECRET,
        seed: int | None = None,
        keep: int = 100_000,
        dedupe: int = 1_000_000,
        receipt_batch: int = 500,
        receipt_interval: float = 0.05,
        **behaviour,
    ):
        self.secret = secret
        self.behaviour = Behaviour().updated(behaviour)
        self.receipt_batch, self.receipt_interval = receipt_batch, receipt_interval
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._run = secrets.token_hex(3)  # ids stay unique across restarts
        self._messages: deque[dict] = deque(maxlen=keep)
        self._accepted_ids: OrderedDict[str, str] = OrderedDict()  # id → provider_id (idempotency)
        self._dedupe = dedupe
        self._seq = 0
        self._counts: Counter[str] = Counter()
        self._pending: deque[list] = deque()  # [due (monotonic), attempts, receipt]
        self._reply_seq = 0  # ids of the replies (上行) it pushes
        self._clients: dict[str, HttpClient] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeSmsServer:
        """Serve and deliver receipts in background threads; returns self."""
        self._threads = [
            threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True),
            threading.Thread(target=self._deliver_receipts, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._threads:  # shutdown() would wait forever for a loop that never ran
            self._httpd.shutdown()
        self._httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        for client in self._clients.values():
            client.close()

    def __enter__(self) -> FakeSmsServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def run_forever(self) -> None:
        """Serve until Ctrl+C or SIGTERM (the command line)."""
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        self.stop()

    # --- the provider's behaviour ----------------------------------------------------------

    def control(self, changes: dict) -> dict:
        """Apply ``changes`` (see the module docstring); returns the new behaviour."""
        changes = dict(changes)
        reset = _flag(changes.pop("reset", False))
        with self._lock:
            self.behaviour = self.behaviour.updated(changes)
            if reset:
                self._messages.clear()
                self._accepted_ids.clear()
                self._counts.clear()
                self._pending.clear()
            return asdict(self.behaviour)

    def accept(self, messages: list[dict]) -> list[dict]:
        """Decide the fate of each message, as a provider would; record and queue receipts."""
        results = []
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        with self._lock:
            b = self.behaviour
            due = time.monotonic() + b.receipt_delay_ms / 1000
            for message in messages:
                sms_id, mobile, text = str(message.get("id", "")), str(message.get("mobile", "")), message.get("text")
                self._counts["messages"] += 1
                earlier = self._accepted_ids.get(sms_id) if sms_id else None
                if earlier is not None:
                    # A resend (the caller did not hear our answer): same provider id, sent once.
                    self._counts["accepted"] += 1
                    self._counts["duplicates"] += 1
                    results.append({"id": sms_id, "status": "accepted", "provider_id": earlier})
                    continue
                if not is_valid_mobile(mobile) or len(mobile) != 11:
                    result = self._refused(sms_id, "permanent", "MOBILE_NUMBER_ILLEGAL", "号码格式错误")
                elif not isinstance(text, str) or not text.strip():
                    result = self._refused(sms_id, "permanent", "EMPTY_CONTENT", "短信内容为空")
                elif b.fail_rate and self._random.random() < b.fail_rate:
                    code = "FAKE_TEMPORARY" if b.fail_kind == "temporary" else "FAKE_PERMANENT"
                    result = self._refused(sms_id, b.fail_kind, code, "模拟失败")
                else:
                    self._seq += 1
                    provider_id = f"{self._run}-{self._seq}"
                    self._messages.append(
                        {
                            "seq": self._seq,
                            "provider_id": provider_id,
                            "id": sms_id,
                            "mobile": mobile,
                            "text": text,
                            "time": now,
                        }
                    )
                    self._counts["accepted"] += 1
                    if sms_id:
                        self._accepted_ids[sms_id] = provider_id
                        if len(self._accepted_ids) > self._dedupe:
                            self._accepted_ids.popitem(last=False)
                    result = {"id": sms_id, "status": "accepted", "provider_id": provider_id}
                    if b.callback_url:
                        delivered = not (b.receipt_fail_rate and self._random.random() < b.receipt_fail_rate)
                        receipt = {"id": sms_id, "provider_id": provider_id, "mobile": mobile}
                        receipt.update(
                            {"status": "delivered", "error_code": "DELIVRD", "error_message": ""}
                            if delivered
                            else {"status": "permanent_failure", "error_code": "UNDELIV", "error_message": "模拟未送达"}
                        )
                        self._pending.append([due, 0, receipt])
                results.append(result)
        return results

    def _refused(self, sms_id: str, kind: str, code: str, message: str) -> dict:
        self._counts[f"{kind}_failure"] += 1
        return {
            "id": sms_id,
            "status": f"{kind}_failure",
            "provider_id": "",
            "error_code": code,
            "error_message": message,
        }

    def messages(self, *, since: int = 0, limit: int = 1000) -> list[dict]:
        """Accepted messages with ``seq`` above ``since`` (oldest first)."""
        with self._lock:
            if not self._messages:
                return []
            start = max(0, since - self._messages[0]["seq"] + 1)
            return list(itertools.islice(self._messages, start, start + max(0, limit)))

    def stats(self) -> dict:
        with self._lock:
            counts = {
                name: self._counts[name]
                for name in ("requests", "messages", "accepted", "duplicates", "temporary_failure", "permanent_failure")
            }
            counts.update(
                {name: self._counts[name] for name in ("receipts_sent", "receipts_failed", "receipts_dropped")}
            )
            return {
                **counts,
                "receipts_pending": len(self._pending),
                "last_seq": self._seq,
                "behaviour": asdict(self.behaviour),
            }

    def count_request(self) -> None:
        with self._lock:
            self._counts["requests"] += 1

    # --- receipts --------------------------------------------------------------------------

    def _deliver_receipts(self) -> None:
        while not self._stop.wait(self.receipt_interval):
            try:
                self._flush_receipts()
            except Exception:  # the thread must outlive any one bad post
                logger.exception("fake SMS gateway: receipt delivery failed")

    def _flush_receipts(self) -> None:
        """Post every due receipt, ``receipt_batch`` at a time; stop at the first failure."""
        while True:
            with self._lock:
                url, now, batch = self.behaviour.callback_url, time.monotonic(), []
                while self._pending and len(batch) < self.receipt_batch and self._pending[0][0] <= now:
                    batch.append(self._pending.popleft())
                if batch and not url:
                    self._counts["receipts_dropped"] += len(batch)
                    continue
            if not batch:
                return
            delivered = self._post_receipts(url, [entry[2] for entry in batch])
            with self._lock:
                if delivered:
                    self._counts["receipts_sent"] += len(batch)
                    continue
                retry = [
                    [now + 2 ** entry[1], entry[1] + 1, entry[2]] for entry in batch if entry[1] + 1 < RECEIPT_ATTEMPTS
                ]
                self._counts["receipts_failed"] += len(batch) - len(retry)
                self._pending.extendleft(reversed(retry))
            return

    def replies_body(self, replies: list[dict]) -> tuple[bytes, dict]:
        """A push of people's replies (上行) and its headers, signed like receipts."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        with self._lock:
            self._reply_seq += len(replies)
            first = self._reply_seq - len(replies) + 1
        items = [{"id": f"reply-{first + n}", "time": now, **r} for n, r in enumerate(replies)]
        body = json.dumps({"replies": items}, ensure_ascii=False).encode()
        return body, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self.secret, body)}

    def send_replies(self, url: str, replies: list[dict]) -> bool:
        """Post ``[{"mobile", "text"}, …]`` as people's replies to ``url`` (loopback only), e.g. TD."""
        body, headers = self.replies_body(replies)
        return self._post(_callback_url(url), body, headers, "replies")

    def _post_receipts(self, url: str, receipts: list[dict]) -> bool:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        body = json.dumps({"receipts": [{**r, "time": now} for r in receipts]}, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self.secret, body)}
        return self._post(url, body, headers, "receipts")

    def _post(self, url: str, body: bytes, headers: dict, what: str) -> bool:
        parts = urlsplit(url)
        clients = self._clients if what == "receipts" else {}  # the receipts thread's own keep-alive clients
        client = clients.get(url)
        if client is None:
            client = clients[url] = HttpClient(f"{parts.scheme}://{parts.netloc}", timeout=10)
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        try:
            response = client.request("POST", path, body=body, headers=headers)
        except TransportError as error:
            logger.warning("fake SMS gateway: %s to %s failed: %s", what, url, error)
            return False
        if not 200 <= response.status < 300:
            logger.warning("fake SMS gateway: %s to %s answered HTTP %s", what, url, response.status)
        return 200 <= response.status < 300


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the adapter reuses its connection
    # Headers and body leave in two writes; with Nagle on, the body would wait ~40 ms for
    # the client's delayed ACK on every request.
    disable_nagle_algorithm = True
    server_version = "yiwang-fake-sms/1"

    def log_message(self, format, *args):
        logger.debug("fake SMS gateway: " + format, *args)

    @property
    def fake(self) -> FakeSmsServer:
        return self.server.fake

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        return hmac.compare_digest(self.headers.get(SECRET_HEADER, "").encode(), self.fake.secret.encode())

    def do_GET(self):
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        if not self._authorised():
            return self._reply(401, {"error": "bad secret"})
        if url.path == "/stats":
            return self._reply(200, self.fake.stats())
        if url.path == "/messages":
            try:
                since, limit = int(query.get("since", 0)), min(int(query.get("limit", 1000)), 10_000)
            except ValueError:
                return self._reply(400, {"error": "since and limit are integers"})
            messages = self.fake.messages(since=since, limit=limit)
            return self._reply(200, {"messages": messages, "last_seq": messages[-1]["seq"] if messages else since})
        return self._reply(404, {"error": "not found"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # read it all: keep-alive framing
        url = urlsplit(self.path)
        if not self._authorised():
            return self._reply(401, {"error": "bad secret"})
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            return self._reply(400, {"error": "body is not JSON"})
        if not isinstance(payload, dict):
            return self._reply(400, {"error": "body is not a JSON object"})
        if url.path == "/control":
            try:
                return self._reply(200, {"behaviour": self.fake.control({**dict(parse_qsl(url.query)), **payload})})
            except ValueError as error:
                return self._reply(400, {"error": str(error)})
        if url.path != "/send":
            return self._reply(404, {"error": "not found"})
        self.fake.count_request()
        behaviour = self.fake.behaviour
        if behaviour.latency_ms:
            time.sleep(behaviour.latency_ms / 1000)
        if behaviour.down:
            return self._reply(503, {"error": "down (simulated)"})
        messages = payload.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return self._reply(400, {"error": "messages must be a list of objects"})
        if len(messages) > MAX_MESSAGES_PER_REQUEST:
            return self._reply(400, {"error": f"at most {MAX_MESSAGES_PER_REQUEST} messages per request"})
        return self._reply(200, {"results": self.fake.accept(messages)})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="yiwang 本地模拟短信网关 (fake SMS gateway on 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--secret", default=DEFAULT_SECRET, help="shared secret (X-Fake-Secret, receipt HMAC key)")
    parser.add_argument("--callback-url", default="", help="where receipts are posted (loopback only)")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of messages refused, 0–1")
    parser.add_argument("--fail-kind", choices=["temporary", "permanent"], default="temporary")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay per /send request")
    parser.add_argument("--receipt-fail-rate", type=float, default=0.0, help="share of receipts that say undelivered")
    parser.add_argument("--receipt-delay-ms", type=int, default=0, help="delay before a receipt is posted")
    parser.add_argument("--seed", type=int, default=None, help="random seed, for repeatable failures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    behaviour = {f.name: getattr(args, f.name) for f in fields(Behaviour) if hasattr(args, f.name)}
    server = FakeSmsServer(port=args.port, secret=args.secret, seed=args.seed, **behaviour)
    logger.info("fake SMS gateway on %s (Ctrl+C to stop)", server.url)
    server.run_forever()


if __name__ == "__main__":
    main()
