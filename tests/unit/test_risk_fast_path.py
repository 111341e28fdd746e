"""The checker's accept path decides, reserves and records exactly as the full check list.

``PreTradeChecker`` answers an accepted pair from a fused accept path (limits resolved once per
grant) and leaves every other pair to the ordered check list, which reports every failed check.
These tests hold the accept path to the check list (``fast_path=False``) on random pairs and
grants biased to the boundaries: a limit exactly met versus exceeded by one tick.
"""
from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest
import testkit as tk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xmc_actors.core.clock import SimClock
from xmc_actors.core.risk_rules import PreTradeChecker, RiskGrant
from xmc_actors.core.sink import MemorySink
from xmc_actors.model import LegIntent, PairIntent, Side
from xmc_actors.model.risk import InstrumentLimits, RiskConfig, StrategyBudget, TradingState

OPEN_NS = 1_736_215_200_000_000_000      # Tue 2025-01-07 10:00 Shanghai / 02:00 London: both open
LUNCH_NS = 1_736_224_200_000_000_000     # 12:30 Shanghai: SHFE lunch break
MS = 1_000_000
USDCNY = Decimal("7.1")
REFERENCE = {"SHFE.cu": Decimal(72000), "SHFE.au": Decimal("600.00"), "LME.CA3M": Decimal(9800),
             "COMEX.GC": Decimal("2650.0"), "HKFE.HSI": Decimal(20000)}
ACCOUNTS = {"cn": "CNY", "us": "USD", "hk": "HKD"}
INSTRUMENTS = tk.instruments()


def fx(a: str, b: str) -> Decimal | None:
    """CNY <-> USD only: HKD has no rate (FX_UNAVAILABLE)."""
    return {("CNY", "USD"): 1 / USDCNY, ("USD", "CNY"): USDCNY}.get((a, b))


def rate(a: str, b: str) -> Decimal | None:
    return Decimal(1) if a == b else fx(a, b)


# -- scenarios --------------------------------------------------------------------------------------
FAMILIES = ("qty", "notional", "collar", "position", "strategy_position", "net", "margin", "strategy_margin", "gross",
            "blocked", "session", "state", "expiry", "reference", "fx", "account", "reduce", "instrument", "price")


class Draws:
    """Draws a scenario's values; most of them usual, the focused check family's often at or near its limit.

    A pair that fails many checks at once says little about any one of them: with one family in
    focus, a check that the accept path got wrong by a tick changes the decision.
    """

    def __init__(self, draw: Any, focus: str) -> None:
        self.draw = draw
        self.focus = focus
        self.rnd = random.Random(draw(st.integers(0, 2**32 - 1)))  # even odds: hypothesis's draws favour the ends

    def __call__(self, family: str, usual: Any, *rare: Any) -> Any:
        odds: float
        if self.focus == family:
            odds = 1.5
        elif self.focus == "mixed":
            odds = 10
        else:
            return usual
        return self.rnd.choice(rare) if self.rnd.random() < 1 / odds else usual


def leg_of(d: Draws, name: str, iid: str) -> dict[str, Any]:
    iid = d("instrument", iid, "SHFE.zz")
    iid = d("fx", iid, "HKFE.HSI")
    ref = REFERENCE.get(iid, Decimal(100))
    tick = INSTRUMENTS[iid].tick_size if iid in INSTRUMENTS else Decimal(1)
    edge = int(ref * Decimal("0.05") / tick)  # the default 5% collar, in ticks
    ticks = d("collar", d.draw(st.sampled_from([0, -1, 1])), edge, edge + 1, -edge, -edge - 1)
    account = d("account", d.draw(st.sampled_from(["cn", "us"])), "xx")
    return {"leg": name, "instrument": iid, "side": d.draw(st.sampled_from([Side.BUY, Side.SELL])),
            "qty": d.draw(st.integers(1, 4)), "account": d("fx", account, "hk"),
            "price": d("price", ref + ticks * tick, None), "ref": ref, "tick": tick}


def intent_of(decision_id: str, a: dict[str, Any], b: dict[str, Any], reduce_only: bool) -> PairIntent:
    return PairIntent(decision_id=decision_id, strategy="s1", reduce_only=reduce_only, legs=tuple(
        LegIntent(leg=x["leg"], instrument=x["instrument"], account=x["account"], side=x["side"], qty=x["qty"],
                  limit_price=x["price"], trigger_price=x["ref"]) for x in (a, b)))


@st.composite
def scenarios(draw: Any, focus: str) -> dict[str, Any]:
    d = Draws(draw, focus)
    pair = draw(st.sampled_from([("SHFE.cu", "LME.CA3M"), ("SHFE.au", "COMEX.GC"), ("SHFE.cu", "SHFE.cu")]))
    a, b = leg_of(d, "A", pair[0]), leg_of(d, "B", pair[1])
    first = a if a["instrument"] in INSTRUMENTS else b
    inst = INSTRUMENTS.get(first["instrument"], INSTRUMENTS["SHFE.cu"])
    ref, tick, qty, sign = first["ref"], first["tick"], first["qty"], first["side"].sign
    positions = draw(st.dictionaries(st.sampled_from(sorted(REFERENCE)), st.integers(-3, 3), max_size=3))
    # the first leg's limits, with their boundaries where its pair falls at the reference price:
    # exactly met, or exceeded by one tick (one lot), or one tick of room
    contract = ref * inst.multiplier
    notional, notional_tick = contract * qty, tick * inst.multiplier * qty
    position = abs(positions.get(first["instrument"], 0) + sign * qty)
    second = abs(positions.get(first["instrument"], 0) + 2 * sign * qty)  # met by the second pair (in flight or filled)
    limits = {"max_order_qty": d("qty", None, qty, qty - 1, qty + 1),
              "max_order_notional": d("notional", None, notional, notional - notional_tick, notional + notional_tick),
              "collar_pct": d("collar", Decimal("0.05"), None, Decimal("0.0001")),
              "max_position": d("position", None, position, position - 1, position + 1, second, second - 1)}
    limits = {k: v for k, v in limits.items() if k == "collar_pct" or (v is not None and v > 0)}
    to_acct = rate(inst.currency, ACCOUNTS.get(first["account"], "USD")) or Decimal(1)
    margin = contract * inst.margin_rate * to_acct * qty
    margin_tick = tick * inst.multiplier * inst.margin_rate * to_acct * qty
    leases = {f"account:{k}": Decimal(10**9) for k in ACCOUNTS}
    leases[f"account:{first['account']}"] = d("margin", Decimal(10**9), margin, margin - margin_tick, margin + margin_tick,
                                              Decimal(0))
    sm = d("strategy_margin", None, Decimal(10**9), Decimal(10_000), Decimal(29_570), Decimal(60_000))
    if sm is not None:
        leases["strategy:s1"] = sm
    budget = {"max_position": d("strategy_position", None, 2, 3, 5, 8),
              "max_pair_net_exposure": d("net", None, Decimal(10_000), Decimal(194_296), Decimal(200_000), Decimal(10**7))}
    states = draw(st.dictionaries(st.sampled_from(["global", "strategy:s1", "venue:SHFE", "venue:LME", "venue:COMEX"]),
                                  st.sampled_from(list(TradingState)), min_size=1, max_size=2))
    return {
        "a": a, "b": b, "limits": limits, "leases": leases,
        "default_limits": d("qty", {}, {"max_order_qty": 3}, {"max_position": 4}),
        "budget": {k: v for k, v in budget.items() if v is not None},
        "max_account_position": d("gross", {}, {"cn": 2}, {"us": 3}, {"cn": 4, "us": 4}, {"cn": 100, "us": 100}),
        "strategy_positions": {"s1": positions} if positions else {},
        "account_positions": {"cn": {i: q for i, q in positions.items() if i.startswith("SHFE")},
                              "us": {i: q for i, q in positions.items() if not i.startswith("SHFE")}},
        "states": d("state", {}, states),
        "blocked": d("blocked", {}, {"us": "occupancy red"}, {"cn": "occupancy red"}),
        "reference_prices": d("reference", "grant", "trigger", "stale"),
        "check_sessions": d("session", True, False),
        "clock": d("session", OPEN_NS, LUNCH_NS),
        "late_ns": d("expiry", 0, 5_000 * MS, 6_000 * MS),   # the grant lasts 5 s
        "reduce_only": d("reduce", False, True),
        "repeat": draw(st.integers(1, 3)),   # the same pair again (new decision ids): limits met by pairs in flight
        "fill": draw(st.sampled_from([0, 0, 1, 2, -1])),
    }


def build(sc: dict[str, Any], fast_path: bool) -> tuple[PreTradeChecker, MemorySink, SimClock]:
    clock = SimClock(OPEN_NS)
    sink = MemorySink()
    venues = {c: tk.venue(c) for c in ("SHFE", "LME", "COMEX", "HKFE")}
    chk = PreTradeChecker(INSTRUMENTS, venues, fx, name="c1", sink=sink, clock=clock, fast_path=fast_path)
    first = sc["a"]["instrument"] if sc["a"]["instrument"] in INSTRUMENTS else sc["b"]["instrument"]
    cfg = RiskConfig(
        default_limits=InstrumentLimits(**sc["default_limits"]),
        instruments={first: InstrumentLimits(**sc["limits"])},
        strategies={"s1": StrategyBudget(**sc["budget"])} if sc["budget"] else {},
        max_account_position=sc["max_account_position"], check_sessions=sc["check_sessions"],
        max_reference_age_ms=1_000 if sc["reference_prices"] == "stale" else 0)
    t0 = sc["clock"]
    refs = {} if sc["reference_prices"] == "trigger" else {
        i: (p, t0 - (5_000 * MS if sc["reference_prices"] == "stale" else 0)) for i, p in REFERENCE.items()}
    chk.update_grant(RiskGrant(
        coordinator="c1", seq=1, issued_ns=t0, expires_ns=t0 + 5_000 * MS, config=cfg, accounts=ACCOUNTS,
        leases=sc["leases"], account_positions=sc["account_positions"], strategy_positions=sc["strategy_positions"],
        trading_states=sc["states"], blocked_accounts=sc["blocked"], reference_prices=refs))
    return chk, sink, clock


def state_of(chk: PreTradeChecker) -> dict[str, Any]:
    """Everything a check leaves behind, exactly (Decimal exponents included, through str)."""
    def dec(d: dict[str, Decimal]) -> list[tuple[str, str]]:
        return [(k, str(v)) for k, v in d.items()]

    return {
        "usage": dec(chk._usage), "counters": dict(chk.counters), "pending": dict(chk._pending),
        "reservations": {k: (dec(r.margin), {n: tuple(map(str, t)) for n, t in r.per_lot.items()}, r.pending,
                             dec(r.committed), r.fills, r.reducing, r.closed, r.result)
                         for k, r in chk._res.items()},
        "ack": (chk.ack().seq, dec(chk.ack().usage), chk.ack().open_reservations),
    }


def events_of(sink: MemorySink) -> list[dict[str, Any]]:
    out = []
    for e in sink.events:
        d = e.model_dump(exclude={"event_id"})
        d["payload_order"] = {k: list(v) if isinstance(v, dict) else v for k, v in e.payload.items()}
        out.append(d)
    return out


# -- the property ------------------------------------------------------------------------------------
@pytest.mark.parametrize("focus", FAMILIES + ("mixed",))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_accept_path_decides_reserves_and_records_exactly_as_the_check_list(focus: str, data: st.DataObject) -> None:
    sc = data.draw(scenarios(focus))
    # Arrange: the same grant and the same pairs for a checker with and without the accept path
    fast, fast_sink, _ = build(sc, fast_path=True)
    ref, ref_sink, _ = build(sc, fast_path=False)
    answered: list[bool] = []   # per pair: did the accept path answer it?
    accept_path = fast._fast_accept

    def watched(*args: Any) -> Any:
        r = accept_path(*args)
        answered.append(r is not None)
        return r

    fast._fast_accept = watched  # type: ignore[method-assign]
    now = sc["clock"] + sc["late_ns"]
    for n in range(sc["repeat"]):
        intent = intent_of(f"d{n}", sc["a"], sc["b"], sc["reduce_only"])
        # Act
        got, want = fast.check_pair(intent, now + n), ref.check_pair(intent, now + n)
        # Assert: the same decision, every denial and its numbers, the same facts, reservation and event
        assert got == want
        if got.allowed and not sc["reduce_only"] and all(leg.account in ACCOUNTS for leg in intent.legs):
            assert answered[-1], "an accepted pair fell through to the check list"
        assert state_of(fast) == state_of(ref)
        assert events_of(fast_sink) == events_of(ref_sink)
        if got.allowed and sc["fill"]:
            for chk in (fast, ref):
                chk.on_order_done(intent, "A", sc["fill"], intent.legs[0].limit_price)
            assert state_of(fast) == state_of(ref)


# -- boundaries, one by one ----------------------------------------------------------------------------
def one_pair(price_a: str, qty: int = 1) -> PairIntent:
    return tk.pair_intent(a=("SHFE.cu", "BUY", qty, price_a))


def grant(chk: PreTradeChecker, config: RiskConfig, **kw: Any) -> None:
    base: dict[str, Any] = {"leases": {"account:cn": Decimal(10**9), "account:us": Decimal(10**9)}}
    base.update(kw)
    chk.update_grant(RiskGrant(coordinator="c1", seq=1, issued_ns=OPEN_NS, expires_ns=OPEN_NS + 5_000 * MS,
                               config=config, accounts={"cn": "CNY", "us": "USD"},
                               reference_prices={"SHFE.cu": (Decimal(72000), OPEN_NS)}, **base))


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize(("case", "config", "grant_kw", "met", "over", "code"), [
    ("notional", RiskConfig(instruments={"SHFE.cu": InstrumentLimits(max_order_notional=Decimal(360_000))}), {},
     "72000", "72010", "NOTIONAL_EXCEEDS_MAX"),
    ("collar", RiskConfig(), {}, "75600", "75610", "PRICE_OUTSIDE_COLLAR"),
    ("collar below", RiskConfig(), {}, "68400", "68390", "PRICE_OUTSIDE_COLLAR"),
    ("margin lease", RiskConfig(), {"leases": {"account:cn": Decimal(36_000), "account:us": Decimal(10**9)}},
     "72000", "72010", "MARGIN_EXCEEDS_AVAILABLE"),
])
def test_a_limit_exactly_met_passes_and_one_tick_over_is_refused(
        fast_path: bool, case: str, config: RiskConfig, grant_kw: dict[str, Any], met: str, over: str, code: str) -> None:
    # Arrange
    chk = PreTradeChecker(tk.instruments(), {c: tk.venue(c) for c in ("SHFE", "LME")}, fx, name="c1",
                          fast_path=fast_path)
    grant(chk, config, **grant_kw)
    # Act
    at_limit = chk.check_pair(tk.pair_intent("d1", a=("SHFE.cu", "BUY", 1, met)), OPEN_NS)
    chk.close_pair("d1")
    chk._forget("d1")
    one_tick_over = chk.check_pair(tk.pair_intent("d2", a=("SHFE.cu", "BUY", 1, over)), OPEN_NS)
    # Assert
    assert at_limit.allowed, (case, at_limit.denials)
    assert [d.code for d in one_tick_over.denials] == [code], case


@pytest.mark.parametrize("fast_path", [True, False])
def test_strategy_budget_in_base_currency_met_exactly_passes_and_one_tick_over_is_refused(fast_path: bool) -> None:
    # Arrange: 72000 x 5 x 10% = 36000 CNY = 36000 / 7.1 USD (28 digits), plus LME 24500 USD
    chk = PreTradeChecker(tk.instruments(), {}, fx, name="c1", fast_path=fast_path)
    budget = Decimal(36_000) * (1 / USDCNY) + Decimal(24_500)
    grant(chk, RiskConfig(check_sessions=False),
          leases={"account:cn": Decimal(10**9), "account:us": Decimal(10**9), "strategy:s1": budget})
    # Act
    at_limit = chk.check_pair(tk.pair_intent("d1"), OPEN_NS)
    chk.close_pair("d1")
    one_tick_over = chk.check_pair(tk.pair_intent("d2", a=("SHFE.cu", "BUY", 1, "72010")), OPEN_NS)
    # Assert
    assert at_limit.allowed, at_limit.denials
    assert [d.code for d in one_tick_over.denials] == ["STRATEGY_MARGIN_EXCEEDS_BUDGET"]


def test_an_accepted_pair_is_answered_by_the_accept_path_without_the_check_list(monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: the check list would fail loudly if it ran
    chk = PreTradeChecker(tk.instruments(), {c: tk.venue(c) for c in ("SHFE", "LME")}, fx, name="c1", sink=MemorySink(),
                          clock=SimClock(OPEN_NS))
    grant(chk, RiskConfig(max_account_position={"cn": 10, "us": 10}))

    def check_list_ran(*a: Any) -> None:
        raise AssertionError("the check list ran for a pair the accept path should answer")

    monkeypatch.setattr(chk, "_leg_view", check_list_ran)
    # Act
    r = chk.check_pair(tk.pair_intent(), OPEN_NS)
    # Assert
    assert r.allowed and chk.reservation("d1") == {"account:cn": Decimal(36_000), "account:us": Decimal(24_500)}
    assert chk.sink.events[-1].payload["reservation"] == {"account:cn": "36000.0", "account:us": "24500.0"}


def test_a_refused_pair_goes_to_the_check_list_and_is_recorded_with_every_failed_check() -> None:
    # Arrange
    chk = PreTradeChecker(tk.instruments(), {c: tk.venue(c) for c in ("SHFE", "LME")}, fx, name="c1", sink=MemorySink(),
                          clock=SimClock(OPEN_NS))
    grant(chk, RiskConfig(default_limits=InstrumentLimits(max_order_qty=1)),
          leases={"account:cn": Decimal(1), "account:us": Decimal(10**9)})
    # Act
    r = chk.check_pair(tk.pair_intent(a=("SHFE.cu", "BUY", 2, "79200")), OPEN_NS)
    # Assert
    assert [d.code for d in r.denials] == ["QTY_EXCEEDS_MAX", "PRICE_OUTSIDE_COLLAR", "MARGIN_EXCEEDS_AVAILABLE"]
    assert chk.sink.events[-1].payload["codes"] == [d.code for d in r.denials]
    assert chk.usage() == {}


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize(("cap", "allowed"), [(4, True), (3, False)])
def test_two_legs_of_one_account_add_up_against_its_gross_cap(fast_path: bool, cap: int, allowed: bool) -> None:
    # Arrange: a calendar spread on one account: 2 + 2 lots added to its gross position of 0
    chk = PreTradeChecker(tk.instruments(), {}, fx, name="c1", fast_path=fast_path)
    grant(chk, RiskConfig(check_sessions=False, max_account_position={"cn": cap}))
    intent = tk.pair_intent(a=("SHFE.cu2601", "BUY", 2, "72000"), b=("SHFE.cu2602", "SELL", 2, "72100"),
                            accounts=("cn", "cn"))
    # Act
    r = chk.check_pair(intent, OPEN_NS)
    # Assert
    assert r.allowed is allowed
    if not allowed:
        assert [str(d) for d in r.denials] == [f"POSITION_EXCEEDS_ACCOUNT_MAX: account=cn gross_lots=0 order=4 after=4 max={cap}"]


@pytest.mark.parametrize("fast_path", [True, False])
def test_a_filled_lot_still_counts_against_the_instrument_limit(fast_path: bool) -> None:
    # Arrange: max 2 lots; the first pair fills its one lot of SHFE cu
    chk = PreTradeChecker(tk.instruments(), {}, fx, name="c1", fast_path=fast_path)
    grant(chk, RiskConfig(check_sessions=False, instruments={"SHFE.cu": InstrumentLimits(max_position=2)}))
    first = tk.pair_intent("d1")
    assert chk.check_pair(first, OPEN_NS).allowed
    chk.on_order_done(first, "A", 1, Decimal(72000))
    chk.close_pair("d1")
    # Act
    second = chk.check_pair(tk.pair_intent("d2"), OPEN_NS)
    third = chk.check_pair(tk.pair_intent("d3"), OPEN_NS)
    # Assert: 1 filled + 1 = 2 passes; 1 filled + 1 in flight + 1 = 3 does not
    assert second.allowed
    assert [str(d) for d in third.denials] == [
        "POSITION_EXCEEDS_INSTRUMENT_MAX: leg=A instrument=SHFE.cu position=1 in_flight=1 order=1 after=3 max=2"]
