"""GatewayView: one gateway of a gateway process, used like an actor handle (no Ray needed)."""
from __future__ import annotations

import pickle

from xmc_actors.actors.gateway import GatewayView, actor_of


class _Method:
    def __init__(self, calls: list, name: str, opts: dict | None = None) -> None:
        self.calls, self.name, self.opts = calls, name, opts or {}

    def remote(self, *args, **kwargs):
        self.calls.append((self.name, args, kwargs, self.opts))
        return f"ref-{len(self.calls)}"

    def options(self, **opts):
        return _Method(self.calls, self.name, opts)


class _Handle:
    """Stands in for a Ray actor handle: methods with .remote, and an _actor_id."""

    def __init__(self) -> None:
        self.calls: list = []
        self._actor_id = b"proc-1"

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return _Method(self.calls, name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Handle) and other._actor_id == self._actor_id

    def __hash__(self) -> int:
        return hash(self._actor_id)


def test_a_view_names_its_gateway_on_every_call_unless_the_caller_does():
    h = _Handle()
    v = GatewayView(h, "gateway-SHFE")
    assert v.place_wire.remote(b"x") == "ref-1"
    v.cancel.options(name="c").remote("d:A:0")
    v.query.remote("d:A:0", gateway="gateway-LME")  # an explicit gateway wins
    assert h.calls == [("place_wire", (b"x",), {"gateway": "gateway-SHFE"}, {}),
                       ("cancel", ("d:A:0",), {"gateway": "gateway-SHFE"}, {"name": "c"}),
                       ("query", ("d:A:0",), {"gateway": "gateway-LME"}, {})]


def test_two_views_of_one_process_share_its_actor_id_and_survive_pickling():
    h = _Handle()
    a, b = GatewayView(h, "gateway-SHFE"), GatewayView(h, "gateway-LME")
    assert a._actor_id == b._actor_id == b"proc-1" and a != b
    assert actor_of(a) == (h, "gateway-SHFE") and actor_of(h) == (h, None)
    back = pickle.loads(pickle.dumps(a))
    assert back == a and back.gateway == "gateway-SHFE"
