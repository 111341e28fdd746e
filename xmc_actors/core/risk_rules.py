"""Pre-trade risk checks the pair coordinator runs in-process (事前风控).

The RiskGuard is the authority; it pushes each coordinator a :class:`RiskGrant`: the limits,
the trading states, a snapshot of positions, and a *lease* of margin per account and per
strategy budget that no other coordinator holds (so two coordinators never spend the same
margin twice). :class:`PreTradeChecker` checks every pair and every order against the grant
without any remote call:

* :meth:`PreTradeChecker.check_pair` runs an ordered list of pure check functions over both
  legs together and collects **every** failed check as a :class:`~xmc_actors.core.pretrade.Denial`
  with a code from :class:`DenialCode` and its numbers; on success it reserves margin under
  the pair's ``decision_id``.
* :meth:`PreTradeChecker.allows_order` is called before every order (first sends, replenish
  and rollback orders): trading state, grant expiry, order-rate throttle, per-contract daily
  counts. :meth:`PreTradeChecker.allows_cancel` does the same for cancels (never blocked by a
  trading state, only by the cancel-rate throttle and the daily cancel count).
* :meth:`PreTradeChecker.on_order_done` commits what an order filled (保证金占用);
  :meth:`PreTradeChecker.close_pair` releases what the pair no longer needs.

A grant expires (``expires_ns``); an expired grant (RiskGuard down or unreachable) lets only
risk-reducing orders through, and nothing extends it but a newer grant.

The rules live in four modules, split by concern, and this one re-exports their names (import
from the new places inside the package): ``core/risk_types.py`` (the grant, its ack, denial codes,
scope and pool keys), ``core/risk_checks.py`` (the check functions and their context),
``core/risk_checker.py`` (:class:`PreTradeChecker`, :class:`MarketTimeFx`) and
``core/risk_fast_path.py`` (the accept path, held to the check list by a differential test).
"""
from __future__ import annotations

from .risk_types import (NS_PER_S, NS_PER_MS, ZERO, ONE, FxProvider, ReferenceProvider,
                         NO_GRANT_REDUCE_ONLY_RATE_PER_S, DenialCode, deny, GLOBAL, scope_key, account_pool,
                         strategy_pool, worst_state, RiskGrant, GrantAck)
from .risk_checks import (LegView, CheckContext, Check, check_trading_state, check_sessions, check_order_size,
                          check_price_collar, check_positions, check_margin, DEFAULT_CHECKS)
from .risk_checker import PreTradeChecker, MarketTimeFx, fx_from_book

__all__ = ["Check", "CheckContext", "DEFAULT_CHECKS", "DenialCode", "FxProvider", "GLOBAL", "GrantAck", "LegView",
           "MarketTimeFx", "NO_GRANT_REDUCE_ONLY_RATE_PER_S", "NS_PER_MS", "NS_PER_S", "ONE", "PreTradeChecker",
           "ReferenceProvider", "RiskGrant", "ZERO", "account_pool", "check_margin", "check_order_size",
           "check_positions", "check_price_collar", "check_sessions", "check_trading_state", "deny", "fx_from_book",
           "scope_key", "strategy_pool", "worst_state"]
