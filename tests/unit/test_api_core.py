"""The operator API's rules without Ray or HTTP (core/operator_api.py): tokens, the permission
matrix, rate limits, request ids, second-operator confirmation, acknowledgements."""
from __future__ import annotations

import pytest

from xmc_actors.core.clock import SimClock
from xmc_actors.core.operator_api import (PERMISSIONS, Action, ApiError, OperatorDesk, Principal, RateLimiter,
                                          RequestLog, Role, TokenBook, authorise, bearer, check_known, fingerprint,
                                          hash_token, needs_confirmation, new_token, token_key_id, verify_hash)
from xmc_actors.model.api import ConfirmConfig, TokenEntry
from xmc_actors.model.events import EventKind

S = 1_000_000_000


def book_with(*people: tuple[str, str]) -> tuple[TokenBook, dict[str, str]]:
    entries, toks = [], {}
    for op, role in people:
        tok, kid = new_token()
        entries.append(TokenEntry(operator=op, role=role, id=kid, hash=hash_token(tok, n=2 ** 8)))
        toks[op] = tok
    return TokenBook(entries), toks


def test_token_hash_round_trip_and_never_plain():
    tok, kid = new_token()
    assert token_key_id(tok) == kid and tok.startswith(f"xmc.{kid}.")
    h = hash_token(tok, n=2 ** 8)
    assert tok not in h and tok.split(".")[2] not in h
    assert verify_hash(tok, h)
    assert not verify_hash(tok + "x", h)
    assert not verify_hash(tok, "scrypt$garbage")
    assert hash_token(tok, n=2 ** 8) != h  # salted


def test_authenticate_names_the_operator_never_the_token():
    book, toks = book_with(("alice", "trader"), ("bob", "risk_officer"))
    assert book.authenticate(toks["alice"]) == Principal("alice", Role.TRADER, token_key_id(toks["alice"]))
    assert book.authenticate(toks["alice"]).operator == "alice"  # cached path
    forged = toks["alice"][:-3] + "abc"
    for bad, why in ((None, "no token"), ("", "no token"), ("hello", "malformed"), (forged, "unknown or revoked"),
                     ("xmc.zzzz.secret", "unknown or revoked")):
        with pytest.raises(ApiError) as e:
            book.authenticate(bad)
        assert e.value.status == 401 and why in e.value.reason and e.value.field == "authorization"
        if bad:
            assert bad not in e.value.reason and bad not in str(e.value.body())


def test_env_reference_tokens_are_hashed_at_load():
    tok, kid = new_token()
    e = TokenEntry(operator="carol", role="admin", token={"env": "XMC_TOKEN_CAROL"})
    book = TokenBook([e], {"XMC_TOKEN_CAROL": tok})
    assert book.authenticate(tok).role is Role.ADMIN
    assert all(tok not in h for h, _ in book.by_id.values())
    with pytest.raises(ValueError, match="XMC_TOKEN_CAROL.*not set"):
        TokenBook([e], {})
    with pytest.raises(ValueError, match="not of the form"):
        TokenBook([e], {"XMC_TOKEN_CAROL": "plain-password"})
    with pytest.raises(ValueError, match="either id and hash"):
        TokenBook([TokenEntry(operator="d", role="viewer")])
    with pytest.raises(ValueError, match="used twice"):
        TokenBook([TokenEntry(operator="a", role="viewer", id="abcd", hash="scrypt$1"),
                   TokenEntry(operator="b", role="viewer", id="abcd", hash="scrypt$1")])


def test_bearer_header():
    assert bearer(None) is None
    assert bearer("Bearer xmc.a.b") == "xmc.a.b"
    with pytest.raises(ApiError) as e:
        bearer("Basic dXNlcjpwYXNz")
    assert e.value.status == 401 and "dXNlcjpwYXNz" not in e.value.reason


EXPECTED = {  # the permission matrix as docs/operations.md shows it
    "viewer": {"read"},
    "trader": {"read", "halt", "reduce", "resume", "acknowledge", "order"},
    "risk_officer": {"read", "halt", "reduce", "resume", "limits", "acknowledge", "confirm", "order", "resolve",
                     "accept_positions", "stage"},
    "admin": {"read", "halt", "reduce", "resume", "limits", "acknowledge", "confirm", "order", "resolve",
              "accept_positions", "stage", "stop"},
}


@pytest.mark.parametrize("role", [r.value for r in Role])
@pytest.mark.parametrize("action", [a.value for a in Action])
def test_permission_matrix(role: str, action: str):
    p = Principal("x", Role(role), "k")
    if action in EXPECTED[role]:
        authorise(p, Action(action))
    else:
        with pytest.raises(ApiError) as e:
            authorise(p, Action(action))
        assert e.value.status == 403 and role in e.value.reason and action in e.value.reason
    assert {a.value for a in PERMISSIONS[Role(role)]} == EXPECTED[role]


def test_rate_limit_per_key_refills_with_the_clock():
    clock = SimClock()
    rl = RateLimiter(2.0, 3, clock)
    for _ in range(3):
        rl.take("a")
    with pytest.raises(ApiError) as e:
        rl.take("a")
    assert e.value.status == 429 and e.value.extra["retry_after_s"] == pytest.approx(0.5)
    rl.take("b")  # another token has its own bucket
    clock.advance(S // 2)
    rl.take("a")
    with pytest.raises(ApiError):
        rl.take("a")
    assert rl.refused == 2


def test_request_ids_run_once():
    clock = SimClock()
    log = RequestLog(clock, ttl_s=60)
    fp = fingerprint("halt", {"scope": "global"})
    assert log.begin("r1", "alice", fp) is None
    with pytest.raises(ApiError) as e:
        log.begin("r1", "alice", fp)
    assert e.value.status == 409 and "still running" in e.value.reason
    log.finish("r1", {"ok": True, "event_id": "e1"})
    assert log.begin("r1", "alice", fp) == {"ok": True, "event_id": "e1", "replayed": True}
    with pytest.raises(ApiError) as e:
        log.begin("r1", "alice", fingerprint("halt", {"scope": "venue"}))
    assert e.value.status == 409 and e.value.field == "request_id"
    with pytest.raises(ApiError, match="another operator"):
        log.begin("r1", "bob", fp)
    assert log.begin("r2", "alice", fp) is None
    log.abort("r2")  # refused before anything changed: usable again
    assert log.begin("r2", "alice", fp) is None
    clock.advance(61 * S)
    assert log.begin("r1", "alice", fp) is None  # expired


STATUS = {"limits": {"instruments": {"SHFE.cu": {"max_position": 10}}, "default_limits": {"max_order_qty": 5}},
          "open_alerts": [{"alert_id": "a1", "level": "red", "monitor": "slippage", "scope": "strategy", "key": "s1"},
                          {"alert_id": "a2", "level": "yellow", "monitor": "latency", "scope": "venue", "key": "LME"}],
          "known": {"strategies": ["s1", "s2"], "venues": ["LME", "SHFE"], "accounts": ["A"], "instruments": ["SHFE.cu"]}}


def test_needs_confirmation():
    c = ConfirmConfig(limit_raise_pct=20)
    lim = {"section": "instruments", "key": "SHFE.cu", "field": "max_position"}
    assert needs_confirmation(c, "limits", {**lim, "value": "12"}, STATUS) is None  # +20%: not more than 20
    why = needs_confirmation(c, "limits", {**lim, "value": "13"}, STATUS)
    assert why and "30.0%" in why
    assert needs_confirmation(c, "limits", {**lim, "value": "2"}, STATUS) is None  # lowered
    assert "cleared" in needs_confirmation(c, "limits", {**lim, "value": "none"}, STATUS)
    assert needs_confirmation(c, "limits", {"section": "default_limits", "key": None, "field": "max_order_qty",
                                            "value": "50"}, STATUS)
    assert needs_confirmation(c, "resume", {"scope": "strategy", "key": "s1"}, STATUS)  # red on s1
    assert needs_confirmation(c, "resume", {"scope": "strategy", "key": "s2"}, STATUS) is None
    assert needs_confirmation(c, "resume", {"scope": "global", "key": None}, STATUS)
    assert needs_confirmation(ConfirmConfig(resume_after_red=False), "resume", {"scope": "global", "key": None}, STATUS) is None
    assert needs_confirmation(c, "halt", {"scope": "global", "key": None}, STATUS) is None


def test_confirmation_by_a_second_operator_within_the_window():
    clock = SimClock()
    desk = OperatorDesk(clock, ConfirmConfig(window_s=60))
    alice, bob = Principal("alice", Role.RISK_OFFICER, "k1"), Principal("bob", Role.RISK_OFFICER, "k2")
    trader = Principal("tom", Role.TRADER, "k3")
    p = desk.confirmations.propose("limits", {"section": "x"}, alice, "raised")
    with pytest.raises(ApiError) as e:
        desk.confirmations.confirm(p.confirmation_id, alice)
    assert e.value.status == 403 and "second" in e.value.reason
    with pytest.raises(ApiError) as e:
        desk.confirmations.confirm(p.confirmation_id, trader)
    assert e.value.status == 403
    assert desk.confirmations.confirm(p.confirmation_id, bob).confirmed_by == "bob"
    with pytest.raises(ApiError) as e:
        desk.confirmations.confirm(p.confirmation_id, bob)
    assert e.value.status == 409
    late = desk.confirmations.propose("resume", {}, alice, "red")
    clock.advance(61 * S)
    with pytest.raises(ApiError) as e:
        desk.confirmations.confirm(late.confirmation_id, bob)
    assert e.value.status == 410
    with pytest.raises(ApiError) as e:
        desk.confirmations.confirm("cf-nope", bob)
    assert e.value.status == 404 and e.value.field == "confirmation_id"
    assert desk.confirmations.pending() == []


def test_acknowledge_records_the_operator():
    desk = OperatorDesk(SimClock(), ConfirmConfig())
    tom = Principal("tom", Role.TRADER, "k3")
    ack = desk.acknowledge("a1", tom, "looking", STATUS["open_alerts"])
    [ev] = desk.sink.events  # the core writes the event that records it; the ack names its id
    assert ack.event_id == ev.event_id and ack.operator == "tom"
    assert ev.kind is EventKind.OPERATOR and ev.payload["operator"] == "tom" and ev.payload["alert_id"] == "a1"
    assert ev.payload["role"] == "trader" and ev.payload["via"] == "api"
    with pytest.raises(ApiError) as e:
        desk.acknowledge("a1", tom, "", STATUS["open_alerts"])
    assert e.value.status == 409 and "tom" in e.value.reason
    with pytest.raises(ApiError) as e:
        desk.acknowledge("nope", tom, "", STATUS["open_alerts"])
    assert e.value.status == 404
    with pytest.raises(ApiError) as e:
        desk.acknowledge("a2", Principal("v", Role.VIEWER, "k"), "", STATUS["open_alerts"])
    assert e.value.status == 403


def test_check_known_names_the_field_and_lists_names():
    check_known(STATUS, "strategies", "s1", "strategy")
    with pytest.raises(ApiError) as e:
        check_known(STATUS, "strategies", "S1", "strategy")
    assert e.value.status == 404 and e.value.field == "strategy" and "did you mean 's1'" in e.value.reason
    assert e.value.extra["known"] == ["s1", "s2"]
    with pytest.raises(ApiError) as e:
        check_known({}, "accounts", "A", "account")
    assert e.value.status == 503
