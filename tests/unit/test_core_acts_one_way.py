"""A core acts one way (docs/architecture.md, "How a core acts"): it writes every event it makes
to its injected sink as it decides, and returns only what its shell must do (commands, intents,
alerts to push, a decision, the receipt of an operator's action). No core hands its caller a
list of events to write, and no command carries one."""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
import typing

import xmc_actors.core as core_pkg
from xmc_actors.core.pair.commands import Command

#: cores outside xmc_actors.core: the strategy host's
EXTRA = ("xmc_actors.strategies.host", "xmc_actors.strategies.stages")
#: the sink and the event maker are what cores write through, not cores
NOT_CORES = {"xmc_actors.core.sink"}
#: a return annotation that hands events to the caller to write
EVENTS_OUT = re.compile(r"\b(?:list|Iterable|Sequence|Iterator)\[Event\]|\btuple\[Event, \.\.\.\]")


def _modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(core_pkg.__path__, "xmc_actors.core.")]
    return [n for n in names if n not in NOT_CORES] + list(EXTRA)


def _callables() -> dict[str, typing.Any]:
    """Qualified name -> every function and method defined in a core module."""
    out: dict[str, typing.Any] = {}
    for name in _modules():
        mod = importlib.import_module(name)
        for attr, obj in vars(mod).items():
            if inspect.isfunction(obj) and obj.__module__ == name:
                out[f"{name}.{attr}"] = obj
            elif inspect.isclass(obj) and obj.__module__ == name:
                for m, f in vars(obj).items():
                    f = f.__func__ if isinstance(f, (staticmethod, classmethod)) else f
                    if inspect.isfunction(f):
                        out[f"{name}.{obj.__name__}.{m}"] = f
    return out


def _returns(f: typing.Any) -> str:
    ann = inspect.signature(f).return_annotation
    return ann if isinstance(ann, str) else getattr(ann, "__name__", repr(ann))


def test_the_check_sees_the_cores_and_would_catch_the_old_signatures() -> None:
    found = _callables()
    for core in ("pair.book.PairBook.submit", "strategies.host.StrategyHostCore.on_quotes",
                 "risk_guard.RiskGuardCore.on_pair_done", "gateway_core.GatewayCore.place",
                 "operator_api.OperatorDesk.acknowledge", "strategies.stages.StageKeeper.set_stage"):
        assert any(k.endswith(core) for k in found), f"{core} is not among the checked callables"
    # what StrategyHostCore.on_quotes and on_roll_done returned before they wrote to a sink
    assert EVENTS_OUT.search("tuple[list[PairIntent], list[Event]]")
    assert EVENTS_OUT.search("tuple[bool, list[Event]]")
    assert not EVENTS_OUT.search("tuple[Event, bool]")  # a receipt: the event it wrote, and a flag


def test_no_core_returns_events_for_its_caller_to_write() -> None:
    bad = {k: r for k, f in _callables().items() if EVENTS_OUT.search(r := _returns(f))}
    assert not bad, ("these return events for their caller to write; write them to the injected sink "
                     f"instead (docs/architecture.md, 'How a core acts'): {bad}")


def test_no_command_of_the_pair_core_carries_an_event() -> None:
    kinds = typing.get_args(Command)
    assert len(kinds) >= 5
    for k in kinds:
        for f in dataclasses.fields(k):
            assert "Event" not in str(f.type), f"{k.__name__}.{f.name}: {f.type}"


def test_no_shell_reaches_into_its_core() -> None:
    """Restart bookkeeping and bad input a shell meets go through the core's public methods
    (``PairBook.refuse_input``, ``StrategyHostCore.hold_for_restore``, ``GatewayCore.refuse``,
    ...), never through its private members."""
    import pathlib

    root = pathlib.Path(core_pkg.__file__).resolve().parents[1]
    private = re.compile(r"\.(?:core|book)\._[a-z]\w*")
    hits = [f"{p.relative_to(root)}:{n}: {line.strip()}"
            for d in ("actors", "api", "runtime", "lab") for p in sorted((root / d).glob("*.py"))
            for n, line in enumerate(p.read_text().splitlines(), 1) if private.search(line)]
    assert private.search("self.book._flush()") and private.search("next(iter(s.values())).core._bad(")
    assert not private.search("self.book.refuse_input(")
    assert not hits, "shells touching their core's private members:\n" + "\n".join(hits)
