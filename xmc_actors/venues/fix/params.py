"""Parameters of the FIX 4.4 venue adapter (``adapter: fix`` in a deployment's gateway).

No engine import here: ``xmc validate`` checks these without loading QuickFIX.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...model.market import SecretRef

STRICT = ConfigDict(frozen=True, extra="forbid")

#: faults of a loopback FIX exchange's session (control commands of
#: :class:`~xmc_actors.venues.fix.exchange.FixExchange`); any other fault is the simulated venue's
SESSION_FAULTS = ("drop", "stall", "refuse", "restart", "skip_seq", "malformed", "duplicate_next",
                  "lose_market_data", "ask_resend")
CompId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
PosF = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class FixVenueParams(BaseModel):
    """One FIX 4.4 initiator session to a venue or broker.

    ``host``/``port``: the broker's FIX endpoint. ``sender_comp_id``/``target_comp_id``: the
    session's CompIDs, as the broker assigned them. ``account``: Account (1) on every order
    when set; otherwise the order's own account. ``username``/``password``: environment
    references only (``{env: NAME}``), sent in the Logon (553/554). ``store_path``: where the
    engine keeps sequence numbers and sent messages (one directory per session; the gateway's
    name is appended); unset: ``$XMC_VAR_DIR/fix`` or the system temp directory.
    """

    model_config = STRICT
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    """Required, unless ``serve_loopback`` (the runtime then sets it)."""
    sender_comp_id: CompId
    target_comp_id: CompId
    account: str = ""
    username: SecretRef | None = None
    password: SecretRef | None = None
    heartbeat_s: Annotated[int, Field(ge=1, le=300)] = 10
    store_path: str | None = None
    reset_on_logon: bool = False
    """Send ResetSeqNumFlag (141=Y) on every logon: both sides start again at 1 (what many
    brokers ask for at the start of a trading day). False: sequence numbers continue from the
    store, and what was missed is recovered by ResendRequest."""
    reconnect_interval_s: Annotated[int, Field(ge=1, le=3600)] = 1
    """After a drop the session tries to connect again at once; each attempt that does not end
    in a logon is followed by a pause that starts at this many seconds and doubles (+/- 20%
    jitter) up to ``reconnect_max_s``; a logon resets it (:mod:`.backoff`)."""
    reconnect_max_s: Annotated[int, Field(ge=1, le=3600)] = 30
    """The longest pause between reconnection attempts."""
    logon_timeout_s: PosF = 5.0
    """How long the adapter waits for the first logon when it starts (orders before it are refused)."""
    ack_timeout_ms: PosF = 1000.0
    """How long a place / cancel / status request waits for the venue's answer before it is UNKNOWN."""
    probe_interval_ms: PosF = 1000.0
    """Clock-calibration round trips (TestRequest/Heartbeat) at most this often."""
    symbols: dict[str, str] = Field(default_factory=dict)
    """Instrument id -> FIX Symbol (55) where the venue's symbol differs from ours."""
    price_factor: dict[str, Annotated[Decimal, Field(gt=0)]] = Field(default_factory=dict)
    """Instrument id -> FIX price = our price x factor (a broker quoting in cents where we
    quote in dollars: 100)."""
    security_exchange: str | None = None
    """SecurityExchange (207) on every order; unset: the venue code."""
    validate_messages: bool = True
    """Check incoming messages against the FIX 4.4 data dictionary (required tags, values):
    a malformed message is answered with a session Reject (3) and counted."""
    exchange_control: str | None = None
    """``host:port`` of a loopback FIX exchange's control channel
    (:mod:`xmc_actors.venues.fix.exchange`): the gateway's feed quotes are forwarded there so
    the simulated exchange trades against the same market, and ``inject`` reaches it. Never
    set for a real venue."""
    market_data: Literal["fix", "control", "off"] = "fix"
    """Where the gateway's quotes come from. ``fix``: a MarketDataRequest (V) on every logon
    subscribes to the session's instruments (snapshot W, then incremental X); a loss (a
    resend answered with a gap fill, a reconnect) re-requests a snapshot. ``control``: with
    ``exchange_control``, the loopback exchange's market-data messages for each forwarded feed
    quote come back on the control channel (no market-data traffic on the session). ``off``:
    none from this session (quotes from another source, or an order-entry-only session)."""
    market_depth: Annotated[int, Field(ge=0, le=50)] = 5
    """MarketDepth (264) asked for: levels per side (0: the full book)."""
    snapshot_retry_ms: PosF = 1000.0
    """A snapshot asked for after a loss is asked again if none came within this."""

    positions_query: bool = True
    """Ask the broker for its positions (RequestForPositions AN, PosReqType 0, a snapshot per
    account) after every logon and on demand (each ``positions()`` call asks again; it answers
    from the last complete snapshot). Once a complete snapshot has come since the logon,
    ``positions_source`` is ``venue`` and the risk guard can verify the ledger against it. A
    broker that rejects AN (Reject, BusinessMessageReject, an ack saying not supported) or
    does not answer within ``positions_timeout_ms`` leaves the session at ``session fills``
    (the reason in ``status()["positions"]``). False: never ask (``session fills``)."""
    positions_timeout_ms: PosF = 2000.0
    """How long a positions request waits for its ack and every report it announces."""
    positions_accounts: list[str] = Field(default_factory=list)
    """Our account ids to ask the broker's positions for; empty: the deployment's accounts
    that this gateway carries (the gateway hands them over) and those of the orders sent."""

    serve_loopback: bool = False
    """The runtime starts a loopback FIX exchange process (``xmc venue serve``) for this gateway
    on a free port of 127.0.0.1 before the deployment, points the gateway at it (``port``,
    ``exchange_control``) and stops it with the deployment: the demo and rehearsals. Embedded
    mode only (the exchange listens on the driver's loopback). Never for a real venue."""
    loopback_sim: dict[str, Any] = Field(default_factory=dict)
    """With ``serve_loopback``: the loopback exchange's simulated-venue parameters
    (``SimVenueParams``: seed, faults, matching rules)."""

    @model_validator(mode="after")
    def _check(self) -> "FixVenueParams":
        if self.port is None and not self.serve_loopback:
            raise ValueError("port: required (the broker's FIX port), unless serve_loopback is set")
        if self.sender_comp_id == self.target_comp_id:
            raise ValueError("sender_comp_id and target_comp_id must differ")
        if self.reconnect_max_s < self.reconnect_interval_s:
            raise ValueError(f"reconnect_max_s ({self.reconnect_max_s}) must be >= reconnect_interval_s "
                             f"({self.reconnect_interval_s})")
        if self.market_data == "control" and not self.exchange_control:
            raise ValueError("market_data: 'control' needs exchange_control (a loopback exchange's control channel)")
        return self
