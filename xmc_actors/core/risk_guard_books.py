"""Money booking of the risk guard's core: P&L, two-sided positions (long/short,
today/yesterday) and equity, fed by the pairs booked and the brokers' account readings.

A mixin of :class:`~xmc_actors.core.risk_guard.RiskGuardCore` (split out of ``core/risk_guard.py``
by concern): its methods run on the core's own state (``self.pnl``, ``self.sides``,
``self.capital``, ...), set up in the core's ``__init__``.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

from ..model.events import EventKind
from ..model.market import Instrument, Side, Venue
from ..model.risk import AlertLevel
from .calendar import instrument_session_state
from .monitors import Condition, PairSummary
from .pnl import pair_name
from .positions import OffsetError, TwoSidedBook, choose_offset, lock_is_cheaper
from .risk_types import ZERO
from .risk_guard_types import GuardOutput


#: an account reading is recorded at most this often per account (the guard polls every few
#: seconds; a statement is compared with the day's last recorded one, taken after the close)
READING_RECORD_NS = 60 * 1_000_000_000


class MoneyBooks:
    """P&L, two-sided positions and equity of :class:`RiskGuardCore` (a mixin; no state of its
    own but the margin and occupancy it shares between callers while their inputs are the same,
    below)."""

    #: (key, rates looked up, (our margin, margin used) per account): :meth:`_margins`
    _margin_memo: tuple[Any, Any, tuple[dict[str, Decimal], dict[str, Decimal]]] | None = None
    #: (key, rates looked up, (occupancy per account, overall)): :meth:`_occupancy`
    _occupancy_memo: tuple[Any, Any, Any] | None = None

    # -- margin and occupancy, computed once for every caller of the same inputs -------------
    def _margins(self) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
        """Margin per account by our own figures and the margin used (the broker's reading where
        there is one), as the book stands. A tick, the grant that follows it, the ``PNL``
        ``MARK`` record and the status all ask at the same instant: computed once while the
        inputs stay the same (the clock, the position book's ``version``, the two-sided
        positions, the brokers' margins), and while every FX rate it used is answered the same
        (an FX update at the same instant computes it again). Callers must not change the dicts."""
        cap = self.capital
        key = (self.clock.now_ns(), self.book, self.book.version, cap, dict(cap.two_sided), dict(cap.broker_margin))
        memo = self._margin_memo
        if memo is not None and memo[0] == key and cap.rates_unchanged(memo[1]):
            return memo[2]
        trace: list[Any] = []
        cap.rate_trace = trace
        try:
            ours = cap.computed_margin(self.book)
        finally:
            cap.rate_trace = None
        out = (ours, cap.used_by_account(self.book, ours))
        self._margin_memo = (key, trace, out)
        return out

    def _occupancy(self) -> tuple[dict[str, Any], Any]:
        """:meth:`CapitalPool.occupancy` of the margin used (:meth:`_margins`), the coordinators'
        usage in flight, equity and the configured levels: computed again when one of them
        changes or when an FX rate it used (each account's currency into the base, at the
        market time of the marks) is answered differently at the market time now; else the
        figures already computed, at this instant or an earlier one (a tick with nothing held
        and nothing in flight: the same occupancy as the last). Callers must not change them."""
        cap = self.capital
        _, used = self._margins()
        in_flight = self.leases.in_flight()
        levels = self.cfg.occupancy
        key = (cap, used, in_flight, dict(cap.equity), levels)
        memo = self._occupancy_memo
        if memo is not None and memo[0] == key:
            at = cap.market_ns(self.book)   # occupancy asks every rate at the market time
            if all(cap.rate(a, b, at) == r for a, b, _, r in memo[1]):
                return memo[2]
        trace: list[Any] = []
        cap.rate_trace = trace
        try:
            out = cap.occupancy(self.book, levels, in_flight, used)
        finally:
            cap.rate_trace = None
        self._occupancy_memo = (key, trace, out)
        return out

    # -- P&L, two-sided positions, equity ------------------------------------------------------
    def _book_trades(self, s: PairSummary, now: int) -> list[dict[str, Any]]:
        """The executions a summary adds to what is booked for its decision (per leg: its own
        fills, then its rollback), applied to the two-sided book and the P&L; each recorded as a
        ``PNL`` ``TRADE`` event. Returns them for the ``BOOKED`` record (a rebuild replays them)."""
        pair = pair_name(leg.instrument for leg in s.legs)
        seen = self.booked_fills.setdefault(s.decision_id, {})
        out: list[dict[str, Any]] = []
        for leg in s.legs:
            f_qty, f_not = leg.filled_qty, (leg.avg_price or ZERO) * leg.filled_qty
            r_qty, r_not = leg.rollback_qty, (leg.rollback_avg_price or ZERO) * leg.rollback_qty
            if s.incremental:
                add = [(leg.side, f_qty, f_not), (leg.side.opposite, r_qty, r_not)]
            else:
                p_f, p_fn, p_r, p_rn = seen.get(leg.leg, (0, ZERO, 0, ZERO))
                add = [(leg.side, f_qty - p_f, f_not - p_fn), (leg.side.opposite, r_qty - p_r, r_not - p_rn)]
                if f_qty < p_f or r_qty < p_r:
                    self._count("pnl_fills_shrank")   # a summary with fewer fills than booked: keep the booked
                    add = [a for a in add if a[1] > 0]
                seen[leg.leg] = (max(f_qty, p_f), max(f_not, p_fn) if f_qty >= p_f else p_fn,
                                 max(r_qty, p_r), max(r_not, p_rn) if r_qty >= p_r else p_rn)
            for side, qty, notional in add:
                if qty <= 0:
                    continue
                price_source = "fills"
                if notional <= 0:
                    # a summary without prices (a restarted coordinator's, nets only): at the mark,
                    # so that P&L holds the lots the book holds; its realised figure is the mark's
                    m = self.book.marks.get(leg.instrument)
                    if m is None:
                        self._count("pnl_fill_without_price")
                        continue
                    self._count("pnl_fill_at_mark")
                    notional, price_source = m[0] * qty, "mark"
                t = self._apply_trade(leg.account, s.strategy, pair, leg.instrument, side, qty, notional / qty,
                                      None, s, now)
                if t is not None:
                    t.update(leg=leg.leg, unwind=side is not leg.side, price_source=price_source)
                    out.append(t)
        return out

    def _apply_trade(self, account: str, strategy: str, pair: str, instrument: str, side: Side, qty: int,
                     price: Decimal, offset: str | None, s: PairSummary | None, now: int,
                     decision_id: str = "", emit: bool = True) -> dict[str, Any] | None:
        """One execution into the two-sided book (its offset chosen as the coordinator does,
        unless given) and the P&L book; a ``PNL`` ``TRADE`` event unless ``emit`` is False."""
        inst = self.instruments.get(instrument)
        venue = self.venues.get(inst.venue) if inst is not None else None
        if inst is None:
            self._count("pnl_unknown_instrument")
            return None
        why = ""
        if venue is not None and venue.offsets != "none":
            day = self._trading_day(venue, inst, s)
            if offset is None:
                pos = self.sides.get(account, instrument, day)
                dearer = inst.fees.close_today_dearer if inst.fees is not None else True
                off, why = choose_offset(venue, pos, side, qty, self.offset_preference,  # type: ignore[arg-type]
                                         dearer, lock_is_cheaper(inst.fees, price, inst.multiplier))
                offset = off.value if off is not None else None
            try:
                from ..model.orders import Offset
                self.sides.fill(venue, None, account, instrument, side, Offset(offset) if offset else None, qty, day)
            except (OffsetError, ValueError) as e:   # the guard's view is behind the venue's: open instead
                self._count("two_sided_behind")
                why = f"{why}; {e}: taken as OPEN"
                offset = "OPEN"
                self.sides.fill(venue, None, account, instrument, side, None, qty, day)
        else:
            offset = None
        try:
            m = self.book.marks.get(instrument)
            t = self.pnl.trade(account=account, strategy=strategy, pair=pair, instrument=instrument, side=side,
                               qty=qty, price=price, offset=offset, at_ns=m[1] if m else None)
        except ValueError as e:
            self._bad_input("pnl trade", e, {"instrument": instrument, "qty": qty, "price": str(price)})
            return None
        rec = {"account": account, "instrument": instrument, "pair": pair, "side": side.value, "qty": qty,
               "price": str(price), "offset": offset, **t.as_dict()}
        if emit:
            self.sink.emit(self.maker.make(EventKind.PNL, reason="TRADE", decision_id=decision_id or (s.decision_id if s else ""),
                                           strategy=strategy, account=account, venue=inst.venue, instrument=instrument,
                                           offset_reason=why, currency=inst.currency, base_currency=self.base,
                                           **{k: v for k, v in rec.items() if k not in ("account", "instrument")}))
        return rec

    def _trading_day(self, venue: Venue, inst: Instrument, s: PairSummary | None) -> Any:
        """The venue's trading day of a booked fill, at the market time of the instrument's
        latest mark (a replay's, not the wall clock's), else of the summary."""
        m = self.book.marks.get(inst.id)
        at = m[1] if m else ((s.started_ns or s.ts_ns) if s is not None else 0) or self.clock.now_ns()
        try:
            return instrument_session_state(venue, inst, at).trading_day
        except Exception:  # noqa: BLE001 - a calendar that cannot say: no roll
            return None

    def load_two_sided(self, venue_code: str, snapshot: Mapping[str, Any]) -> int:
        """The venue's word on its two-sided positions (``{"ACCOUNT/INSTRUMENT": {long: {today,
        yesterday}, short: {...}, trading_day}}``, a gateway's ``two_sided_positions()``) replaces
        the guard's for that venue's instruments (margin and status then follow the venue),
        position by position where the venue's net agrees with the guard's booked net: where it
        does not, a pair is in flight (filled at the venue, not booked yet) and the guard's view
        is kept until a later reading agrees (counted as ``two_sided_in_flight``). Returns how
        many positions were taken; a position that cannot be read is a BAD_INPUT."""
        import datetime as _dt

        mine = {i for i, inst in self.instruments.items() if inst.venue == venue_code}
        new = TwoSidedBook()
        n = 0
        for key, p in snapshot.items():
            acc, _, inst = str(key).partition("/")
            if inst not in mine or not isinstance(p, Mapping):
                continue
            lg, sh = p.get("long") or {}, p.get("short") or {}
            day = p.get("trading_day")
            try:
                new.set(acc, inst, long_today=int(lg.get("today", 0)), long_yesterday=int(lg.get("yesterday", 0)),
                        short_today=int(sh.get("today", 0)), short_yesterday=int(sh.get("yesterday", 0)),
                        trading_day=_dt.date.fromisoformat(day) if day else None)
            except (TypeError, ValueError, AttributeError) as e:
                self._bad_input("two_sided_positions", ValueError(f"{venue_code} position {key!r}: {e}"), p)
                continue
        ours = {k for k, p in self.sides.positions.items() if k[1] in mine and (p.long.total or p.short.total)}
        for k in set(new.positions) | ours:
            if k[0] not in self.capital.accounts:
                continue   # another deployment's account at the venue: not ours to count
            venue_net = new.positions[k].net if k in new.positions else 0
            if venue_net != self.book.account.get(k[0], {}).get(k[1], 0):
                self._count("two_sided_in_flight")
                continue
            if k in new.positions:
                self.sides.positions[k] = new.positions[k]
                n += 1
            else:
                del self.sides.positions[k]
        self._sync_sides()
        return n

    def _sync_sides(self) -> None:
        self.capital.two_sided = {k: (p.long.total, p.short.total) for k, p in self.sides.positions.items()
                                  if p.long.total or p.short.total}

    def _reading_fresh(self, r: Mapping[str, Any], now: int) -> bool:
        """A broker reading is taken while the reading itself is young: by its own stamp
        (``ts_ns``: when the broker answered), not when it reached us, since an adapter hands its
        last reply back on every poll (CTP every 5 s) even after the broker stopped answering."""
        return now - int(r.get("ts_ns") or r["received_ns"]) <= self.account_reading_max_age_ns

    def _refresh_equity(self) -> None:
        """Equity follows P&L: capital + P&L of the account (its currency, at today's rates), or
        the broker's reading while it is fresh. Margin too: the broker's, else ours."""
        self._sync_sides()
        now = self.clock.now_ns()
        at = self.capital.market_ns(self.book)   # the market time of the marks: a replay's rates
        accounts = self.capital.accounts
        pnls = self.pnl.accounts_pnl({a: acc.currency for a, acc in accounts.items()}, at)   # one walk over the legs
        for acc_id, acc in accounts.items():
            pnl = pnls[acc_id][0]
            self.computed_equity[acc_id] = acc.capital + pnl
            r = self.account_readings.get(acc_id)
            fresh = r is not None and self._reading_fresh(r, now)
            self.capital.set_equity(acc_id, r["equity"] if fresh else acc.capital + pnl, allow_loss=True)  # type: ignore[index]
            if fresh and r.get("margin") is not None:  # type: ignore[union-attr]
                self.capital.broker_margin[acc_id] = r["margin"]  # type: ignore[index]
            else:
                self.capital.broker_margin.pop(acc_id, None)

    def on_account_reading(self, account: str, reading: Mapping[str, Any], venue: str | None = None) -> GuardOutput:
        """A broker's account reading (``equity``, and optionally ``margin``, ``available``,
        ``currency``, ``ts_ns``) from an adapter that can read it: it wins over our figures
        (equity, margin) while fresh; a difference from ours beyond ``account_tolerance`` of our
        equity is a yellow ``account_mismatch`` alert (resolved when they agree again) and a
        ``RECONCILE`` ``ACCOUNT_MISMATCH`` record. The reading itself is recorded (``RECONCILE``
        "account reading", with ``venue``, the gateway's it came from) at most once a minute
        per account: what ``xmc settlement`` compares a statement's funds with, on that venue's
        trading day. Bad input is recorded, never raised."""
        out = GuardOutput()
        now = self.clock.now_ns()
        try:
            acc = self.capital.accounts.get(account)
            if acc is None:
                raise ValueError(f"account: {account!r} is not an account of this deployment")
            if not isinstance(reading, Mapping):
                raise TypeError(f"reading: expected a mapping, got {type(reading).__name__}")
            vals: dict[str, Any] = {}
            for f in ("equity", "margin", "available"):
                v = reading.get(f)
                if v is None:
                    if f == "equity":
                        raise ValueError("equity: the reading has none")
                    vals[f] = None
                    continue
                d = Decimal(str(v))
                if not d.is_finite():
                    raise ValueError(f"{f}: {v!r} is not an amount")
                vals[f] = d
            ccy = reading.get("currency")
            if ccy and str(ccy).upper() != acc.currency:
                raise ValueError(f"currency: the reading is in {ccy}, account {account} in {acc.currency}")
        except (ValueError, TypeError, ArithmeticError) as e:
            self._bad_input("on_account_reading", e, reading)
            return out
        self._refresh_equity()   # ours, before the reading wins
        ours_eq = self.computed_equity[account]
        ours_margin = self._margins()[0].get(account, ZERO)
        self.account_readings[account] = {**vals, "received_ns": now, "ts_ns": int(reading.get("ts_ns") or now)}
        last = self.readings_recorded_ns.get(account)
        if last is None or now - last >= READING_RECORD_NS:
            self.readings_recorded_ns[account] = now
            self.sink.emit(self.maker.make(EventKind.RECONCILE, reason="account reading", account=account,
                                           venue=venue or "", currency=acc.currency,
                                           **{k: None if v is None else str(v) for k, v in vals.items()}))
        base = max(abs(ours_eq), Decimal(1))
        d_eq = abs(vals["equity"] - ours_eq)
        d_m = abs(vals["margin"] - ours_margin) if vals["margin"] is not None else ZERO
        worst = max(d_eq, d_m) / base
        off = worst > self.account_tolerance
        if off:
            self.sink.emit(self.maker.make(EventKind.RECONCILE, reason="ACCOUNT_MISMATCH", account=account,
                                           broker={k: None if v is None else str(v) for k, v in vals.items()},
                                           ours={"equity": str(ours_eq), "margin": str(ours_margin)},
                                           difference={"equity": str(d_eq), "margin": str(d_m)},
                                           tolerance=str(self.account_tolerance)))
        msg = (f"account {account}: broker equity {vals['equity']:.2f} vs ours {ours_eq:.2f}"
               + (f", margin {vals['margin']:.2f} vs ours {ours_margin:.2f}" if vals["margin"] is not None else "")
               + f" {acc.currency} (tolerance {self.account_tolerance * 100:.2f}% of equity; the broker's figures are used)")
        out.extend(self._observe(Condition("account_mismatch", "account", account, AlertLevel.YELLOW if off else None,
                                           float(worst), float(self.account_tolerance), msg), now))
        self._refresh_equity()
        out.regrant = True
        return out

    def accounts_status(self) -> dict[str, dict[str, Any]]:
        """Per account: capital, P&L, equity (and where it comes from), margin (ours and the
        broker's), available funds, in the account's currency."""
        ours, used = self._margins()
        now = self.clock.now_ns()
        out: dict[str, dict[str, Any]] = {}
        q = Decimal("0.01")
        for acc_id, acc in self.capital.accounts.items():
            r = self.account_readings.get(acc_id)
            fresh = r is not None and self._reading_fresh(r, now)
            eq = self.capital.equity[acc_id]
            out[acc_id] = {
                "currency": acc.currency, "capital": str(acc.capital),
                "pnl": str((self.computed_equity[acc_id] - acc.capital).quantize(q)),
                "equity": str(eq.quantize(q)), "computed_equity": str(self.computed_equity[acc_id].quantize(q)),
                "equity_source": "broker" if fresh else "computed",
                "margin": str(used[acc_id].quantize(q)), "computed_margin": str(ours[acc_id].quantize(q)),
                "available": str((r["available"] if fresh and r.get("available") is not None  # type: ignore[union-attr]
                                  else eq - used[acc_id]).quantize(q)),
                "broker": None if r is None else {k: (str(v) if isinstance(v, Decimal) else v) for k, v in r.items()},
            }
        return out

    def pnl_status(self) -> dict[str, Any]:
        """P&L in the base currency per account, strategy and pair (legs too), with the marks
        and rates used (``PnlBook.snapshot``)."""
        return self.pnl.snapshot()

    def _pnl_mark_event(self, now: int) -> None:
        snap = self.pnl.snapshot()
        per, overall = self._occupancy()
        accts = self.accounts_status()
        for a, o in per.items():
            accts[a]["occupancy"] = float(o.ratio)
        # equity in the base currency: each account's at its rate at the market time, added up in
        # the accounts' order: what the overall occupancy's equity is (CapitalPool.occupancy)
        eq_base = overall.equity
        self.sink.emit(self.maker.make(
            EventKind.PNL, reason="MARK", base_currency=self.base, accounts=accts, total=snap["total"],
            equity_base=str(eq_base.quantize(Decimal("0.01"))), occupancy=float(overall.ratio),
            strategies=snap["strategies"], pairs=snap["pairs"], legs=snap["legs"], marks=snap["marks"], fx=snap["fx"],
            market_ns=self.capital.market_ns(self.book)))
