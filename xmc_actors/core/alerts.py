"""Graded alerts (info / yellow / orange / red), their automatic actions, and where they go.

:class:`AlertManager` turns monitor :class:`~xmc_actors.core.monitors.Condition` s into
alerts: one open alert per (monitor, scope, key); a repeat at the same or a lower level is
counted, not re-sent (de-duplication); a higher level, or the same condition confirmed again
after ``escalate_after_s`` at its level, is sent as an escalation (one level up); a condition
back within threshold closes the alert with an ``info`` "resolved" alert.

Each alert carries the action its level maps to (``RiskConfig.actions``; occupancy uses
``Monitors.occupancy_actions``): none, throttle, reduce, halt. The RiskGuard applies it to the
alert's scope. Throttles lift when the alert resolves; REDUCING and HALTED stay until an
operator resumes.

Sinks: the ledger (:class:`LedgerAlertSink`, kind ALERT), the log, metrics (a callback), and
webhooks (:class:`WebhookAlertSink`). :class:`AlertDispatcher` sends to all and never lets a
failing sink raise.
"""
from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

from pydantic import BaseModel, ConfigDict

from ..model.events import EventKind
from ..model.risk import AlertAction, AlertLevel, AlertSink as AlertSinkConfig, RiskConfig
from .monitors import Condition
from .sink import EventMaker, EventSink

NS_PER_S = 1_000_000_000
#: monitors whose alerts never act (halt, reduce, throttle) whatever their level: the roll
#: watch's ``roll_due`` (core/roll_watch.py), since a halted strategy could not be rolled
NO_ACTION_MONITORS = frozenset({"roll_due"})
_UP = {AlertLevel.INFO: AlertLevel.YELLOW, AlertLevel.YELLOW: AlertLevel.ORANGE,
       AlertLevel.ORANGE: AlertLevel.RED, AlertLevel.RED: AlertLevel.RED}


class Alert(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    alert_id: str
    monitor: str
    scope: str
    key: str
    level: AlertLevel
    action: AlertAction
    value: float
    threshold: float
    message: str
    opened_ns: int
    ts_ns: int
    repeats: int = 0
    escalated: bool = False
    resolved: bool = False

    def line(self) -> str:
        tag = "RESOLVED " if self.resolved else ("ESCALATED " if self.escalated else "")
        return (f"[{self.level.value.upper()}] {tag}{self.monitor} {self.scope}={self.key}: {self.message}"
                f" -> action={self.action.value}")


@dataclass(slots=True)
class _Open:
    alert_id: str
    level: AlertLevel
    opened_ns: int
    level_since_ns: int
    repeats: int = 0
    last: Alert | None = None


class AlertManager:
    """De-duplicates and escalates alerts; maps each level to its action."""

    def __init__(self, cfg: RiskConfig, new_id: Callable[[], str]) -> None:
        self.cfg = cfg
        self.new_id = new_id
        self.open: dict[tuple[str, str, str], _Open] = {}
        self.suppressed = 0

    def reconfigure(self, cfg: RiskConfig) -> None:
        self.cfg = cfg

    def action_for(self, monitor: str, level: AlertLevel) -> AlertAction:
        if monitor in NO_ACTION_MONITORS:
            return AlertAction.NONE
        table = self.cfg.monitors.occupancy_actions if monitor == "occupancy" else self.cfg.actions
        return table.get(level, AlertAction.NONE)

    def observe(self, c: Condition, now_ns: int) -> Alert | None:
        """Feed one condition; returns the alert to send, or None (nothing new)."""
        k = (c.monitor, c.scope, c.key)
        cur = self.open.get(k)
        if c.level is None:
            if cur is None:
                return None
            del self.open[k]
            return self._make(c, AlertLevel.INFO, cur.alert_id, cur.opened_ns, now_ns, cur.repeats, resolved=True,
                              action=AlertAction.NONE)
        if cur is None:
            aid = self.new_id()
            self.open[k] = _Open(aid, c.level, now_ns, now_ns)
            a = self._make(c, c.level, aid, now_ns, now_ns, 0)
            self.open[k].last = a
            return a
        target = c.level
        if target.rank <= cur.level.rank:
            if now_ns - cur.level_since_ns >= self.cfg.monitors.escalate_after_s * NS_PER_S and cur.level is not AlertLevel.RED:
                target = _UP[cur.level]  # the condition persists: one level up
            else:
                cur.repeats += 1
                self.suppressed += 1
                return None
        cur.level = target
        cur.level_since_ns = now_ns
        a = self._make(c, target, cur.alert_id, cur.opened_ns, now_ns, cur.repeats, escalated=True)
        cur.last = a
        return a

    def _make(self, c: Condition, level: AlertLevel, aid: str, opened: int, now: int, repeats: int, *,
              escalated: bool = False, resolved: bool = False, action: AlertAction | None = None) -> Alert:
        return Alert(alert_id=aid, monitor=c.monitor, scope=c.scope, key=c.key, level=level,
                     action=self.action_for(c.monitor, level) if action is None else action,
                     value=c.value, threshold=c.threshold, message=c.message, opened_ns=opened, ts_ns=now,
                     repeats=repeats, escalated=escalated, resolved=resolved)

    def open_alerts(self) -> list[Alert]:
        return [o.last for o in self.open.values() if o.last is not None]


# -- sinks ----------------------------------------------------------------------------------------
class AlertSinkProtocol(Protocol):
    def send(self, alert: Alert) -> None:  # pragma: no cover - protocol
        ...


#: the monitor of the ALERT a pair coordinator raises itself when it escalates a pair (the risk
#: guard's own reaction to the same pair is its ``unhedged`` monitor, on the pair summary)
PAIR_ESCALATION = "pair_escalation"
#: the monitor of a coordinator's alerts on a strategy's residual book (sub-lot residuals carried
#: instead of escalating their pairs): yellow for each one booked, red (strategy halted) past
#: ``CoordinatorConfig.max_residual_lots_b``, info when a full pair takes the book back
RESIDUAL_BOOK = "residual_book"


def coordinator_alert(*, alert_id: str, monitor: str, strategy: str, level: str, action: str, message: str,
                      value: float, threshold: float, opened_ns: int, **extra: object) -> dict[str, object]:
    """The payload of an ALERT a coordinator (or a strategy's residual book) writes: the shape of
    the guard's alerts (``alert_id``, ``monitor``, ``scope``, ``key``, ``level``, ``action``, ...)
    so every reader of the trail can read it, plus ``source: "coordinator"`` and what is
    specific to it (``extra``, e.g. the residual). The risk guard's rebuild recognises it by
    ``source`` and does not adopt it as one of its own open alerts (:func:`alert_origin`)."""
    return {"alert_id": alert_id, "monitor": monitor, "scope": "strategy", "key": strategy, "level": level,
            "action": action, "value": float(value), "threshold": float(threshold), "message": message,
            "opened_ns": int(opened_ns), "source": "coordinator", **extra}


def alert_origin(payload: object) -> str:
    """Who raised an ALERT read back from the ledger: ``"guard"`` (the risk guard's own, of the
    :class:`Alert` shape: what a rebuild restores), ``"coordinator"`` (a pair coordinator's
    escalation or residual alert, also the ones written before they carried ``source``: a
    ``residual`` and no ``monitor``) or ``"other"`` (a strategy's or a gateway's free-form alert,
    or a payload that is not a mapping)."""
    if not isinstance(payload, dict):
        return "other"
    if payload.get("source") == "coordinator" or payload.get("monitor") == PAIR_ESCALATION or (
            "residual" in payload and "monitor" not in payload):
        return "coordinator"
    return "guard" if "monitor" in payload else "other"


class LedgerAlertSink:
    """Alerts into the ledger as events of kind ALERT."""

    def __init__(self, sink: EventSink, maker: EventMaker) -> None:
        self.sink, self.maker = sink, maker

    def send(self, alert: Alert) -> None:
        scope_field = {"strategy": "strategy", "venue": "venue", "account": "account"}.get(alert.scope)
        kw = {scope_field: alert.key} if scope_field else {}
        body = alert.model_dump(mode="json")
        ts = body.pop("ts_ns")
        self.sink.emit(self.maker.make(EventKind.ALERT, reason=f"{alert.level.value}:{alert.monitor}", ts_ns=ts,
                                       **kw, **body))


class LogAlertSink:
    _LOG = {AlertLevel.INFO: logging.INFO, AlertLevel.YELLOW: logging.WARNING,
            AlertLevel.ORANGE: logging.ERROR, AlertLevel.RED: logging.CRITICAL}

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("xmc.alerts")

    def send(self, alert: Alert) -> None:
        self.log.log(self._LOG[alert.level], alert.line())


class CallbackAlertSink:
    """Calls ``fn(alert)``: metrics (a Ray counter by level and monitor), tests."""

    def __init__(self, fn: Callable[[Alert], None]) -> None:
        self.fn = fn

    def send(self, alert: Alert) -> None:
        self.fn(alert)


class WebhookAlertSink:
    """POSTs each alert at or above ``min_level`` as JSON to ``url``. Blocking: call it off the event loop."""

    def __init__(self, url: str, min_level: AlertLevel = AlertLevel.ORANGE, timeout_ms: int = 2_000) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url: {url!r} is not an http(s) URL")
        self.url, self.min_level, self.timeout_s = url, min_level, timeout_ms / 1000
        self.sent = 0
        self.failed = 0

    @classmethod
    def from_config(cls, c: AlertSinkConfig) -> "WebhookAlertSink":
        return cls(c.url, c.min_level, c.timeout_ms)

    def send(self, alert: Alert) -> None:
        if alert.level.rank < self.min_level.rank and not alert.resolved:
            return
        body = json.dumps({"text": alert.line(), "alert": alert.model_dump(mode="json")}).encode()
        req = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                resp.read()
                if resp.status >= 300:
                    raise OSError(f"HTTP {resp.status}")
            self.sent += 1
        except Exception:
            self.failed += 1
            raise


def sinks_from_config(configs: Iterable[AlertSinkConfig]) -> list[AlertSinkProtocol]:
    out: list[AlertSinkProtocol] = []
    for c in configs:
        if c.kind != "webhook":
            raise ValueError(f"risk.sinks: unknown alert sink kind {c.kind!r} (known: webhook)")
        out.append(WebhookAlertSink.from_config(c))
    return out


class AlertDispatcher:
    """Sends an alert to every sink; a sink that fails is counted and logged, never raised."""

    def __init__(self, sinks: Iterable[AlertSinkProtocol]) -> None:
        self.sinks = list(sinks)
        self.failures: dict[str, int] = {}
        self.log = logging.getLogger("xmc.alerts")

    def dispatch(self, alert: Alert) -> None:
        for s in self.sinks:
            try:
                s.send(alert)
            except Exception as e:  # a sink is never allowed to take the guard down
                name = type(s).__name__
                self.failures[name] = self.failures.get(name, 0) + 1
                self.log.warning("alert sink %s failed for %s: %s", name, alert.alert_id, e)
