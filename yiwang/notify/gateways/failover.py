"""Failover between gateways by recent error rate (a small circuit breaker per gateway).

Each gateway keeps a sliding window of its recent send outcomes: the last ``window_size``
messages, and none older than ``window_seconds``. When, over at least ``min_sends``
messages, the share of *temporary* failures exceeds ``threshold`` (default 30% over 20),
the gateway is **open**: skipped for ``cooldown_seconds``. Then it is **half-open**: the next
batch that would go to its priority tier is sent to it as a probe (one probe at a time); if
that batch's temporary share is within the threshold the gateway is **closed** again with a
fresh window, otherwise it stays open for another cool-down. Permanent failures (a bad
number, a refused template) say nothing about a gateway's health and do not count.

Choice: among usable gateways, the lowest ``priority`` wins; within it, traffic is shared by
``weight`` with a smooth weighted round-robin (deterministic, so tests need no randomness).
When every gateway is open, ``choose`` raises ``NoGatewayAvailable`` and ``send`` returns
temporary failures: the dispatcher's backoff then waits, instead of hammering a dead line.

A timeout or refused batch is not re-sent to another gateway here: a timed-out message may
already have been accepted, and a second provider would deliver it twice. The dispatcher's
retry (after backoff, on whatever gateway is chosen then) owns that decision.

Per process: in production each Celery worker process keeps its own window. That is good
enough — every process sees the same failing gateway within ``min_sends`` messages and
trips on its own. A shared window would replace ``_Health.window`` and the open/half-open
state with Redis keys (per-gateway counters in short time buckets, and the open state as a
key that expires after the cool-down, taken with ``SET NX`` for the single probe); the rest
of this class would not change.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from django.utils.translation import gettext as _

from .base import Gateway, OutboundSms, SendResult, SendStatus

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class NoGatewayAvailable(Exception):
    """Every gateway is cooling down."""


@dataclass
class _Health:
    window: deque[tuple[float, bool]]  # (time, was a temporary failure)
    state: str = CLOSED
    opened_at: float = 0.0
    probe_started: float | None = None  # a half-open probe is in flight since then
    current: int = 0  # smooth weighted round-robin counter
    trips: int = 0


class Failover:
    """Chooses a gateway for each batch and learns from the outcomes. Thread-safe."""

    def __init__(
        self,
        gateways: Sequence[Gateway],
        *,
        threshold: float = 0.3,
        min_sends: int = 20,
        window_size: int = 200,
        window_seconds: float = 60.0,
        cooldown_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not gateways:
            raise ValueError("at least one gateway")
        self.gateways = list(gateways)
        self.threshold, self.min_sends = threshold, min_sends
        self.window_seconds, self.cooldown_seconds = window_seconds, cooldown_seconds
        self.clock = clock
        self._health = {g.code: _Health(window=deque(maxlen=window_size)) for g in self.gateways}
        self._lock = threading.Lock()

    # --- choosing --------------------------------------------------------------------------

    def choose(self) -> Gateway:
        """The gateway for the next batch; raises ``NoGatewayAvailable``."""
        with self._lock:
            now = self.clock()
            usable = [g for g in self.gateways if self._usable(self._health[g.code], now)]
            if not usable:
                raise NoGatewayAvailable
            best = min(g.priority for g in usable)
            tier = [g for g in usable if g.priority == best]
            for gateway in tier:
                health = self._health[gateway.code]
                if health.state == HALF_OPEN:  # probe it: that is how a gateway comes back
                    health.probe_started = now
                    return gateway
            total = sum(g.weight for g in tier)
            for gateway in tier:
                self._health[gateway.code].current += gateway.weight
            chosen = max(tier, key=lambda g: self._health[g.code].current)
            self._health[chosen.code].current -= total
            return chosen

    def _usable(self, health: _Health, now: float) -> bool:
        if health.state == OPEN and now - health.opened_at >= self.cooldown_seconds:
            health.state, health.probe_started = HALF_OPEN, None
        if health.state == HALF_OPEN:
            # One probe at a time; a probe whose outcome never came back expires.
            return health.probe_started is None or now - health.probe_started >= self.cooldown_seconds
        return health.state == CLOSED

    # --- learning --------------------------------------------------------------------------

    def record(self, code: str, outcomes: Iterable[SendStatus | SendResult]) -> None:
        """Learn from one batch's outcomes (statuses or results) on gateway ``code``."""
        statuses = [o.status if isinstance(o, SendResult) else SendStatus(o) for o in outcomes]
        health = self._health.get(code)
        if health is None or not statuses:
            return
        with self._lock:
            now = self.clock()
            failed = [s == SendStatus.TEMPORARY_FAILURE for s in statuses]
            if health.state == HALF_OPEN:
                health.probe_started = None
                if sum(failed) / len(failed) > self.threshold:
                    self._open(health, now)
                else:
                    health.state = CLOSED
                    health.window.clear()
                return
            if health.state == OPEN:
                return  # a batch chosen before the gateway tripped
            health.window.extend((now, f) for f in failed)
            while health.window and health.window[0][0] < now - self.window_seconds:
                health.window.popleft()
            sends = len(health.window)
            if sends >= self.min_sends and sum(f for _t, f in health.window) / sends > self.threshold:
                self._open(health, now)

    def _open(self, health: _Health, now: float) -> None:
        health.state, health.opened_at, health.probe_started = OPEN, now, None
        health.window.clear()
        health.trips += 1

    def release(self, code: str) -> None:
        """Forget an in-flight probe whose batch raised (so another may probe at once)."""
        with self._lock:
            health = self._health.get(code)
            if health is not None:
                health.probe_started = None

    # --- sending ---------------------------------------------------------------------------

    def send(self, batch: Sequence[OutboundSms]) -> list[SendResult]:
        """Send ``batch`` through the chosen gateway and learn from the results."""
        try:
            gateway = self.choose()
        except NoGatewayAvailable:
            return [
                SendResult(sms.id, SendStatus.TEMPORARY_FAILURE, "", error_code="yiwang.NO_GATEWAY",
                           error_message=_("所有短信通道暂时不可用"))
                for sms in batch
            ]  # fmt: skip
        try:
            results = gateway.send(batch)
        except BaseException:
            self.release(gateway.code)
            raise
        self.record(gateway.code, results)
        return results

    def status(self) -> list[dict]:
        """Per gateway: state, sends and temporary failures in the window (for dashboards)."""
        with self._lock:
            now = self.clock()
            rows = []
            for gateway in self.gateways:
                health = self._health[gateway.code]
                self._usable(health, now)
                recent = [f for t, f in health.window if t >= now - self.window_seconds]
                rows.append(
                    {
                        "code": gateway.code,
                        "state": health.state,
                        "sends": len(recent),
                        "temporary_failures": sum(recent),
                        "trips": health.trips,
                    }
                )
            return rows
