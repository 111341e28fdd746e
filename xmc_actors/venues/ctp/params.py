"""Parameters of the CTP venue adapter (``adapter: ctp`` in a deployment's gateway).

No binding import here: ``xmc validate`` checks these without loading the CTP API (whose
import needs the zh_CN.GB18030 locale, see :mod:`.binding`).
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ...model.market import SecretRef

STRICT = ConfigDict(frozen=True, extra="forbid")
PosF = Annotated[float, Field(gt=0, allow_inf_nan=False)]
#: a CTP front address: tcp://host:port (ssl:// and socks:// as the API accepts them)
FRONT_RE = re.compile(r"^(tcp|ssl|socks4|socks5|socks)://[A-Za-z0-9_.\-]+:\d{1,5}$")
#: exchanges reached through CTP (ExchangeID on orders and in their reports)
CTP_EXCHANGES = ("SHFE", "INE", "DCE", "CZCE", "CFFEX", "GFEX")
_ID = r"^[A-Za-z0-9_\-]{1,15}$"  # BrokerID char[11], UserID/InvestorID char[16] (the API's field widths)


def _env_only(field: str, v: Any) -> Any:
    if v is not None and not isinstance(v, (dict, SecretRef)):
        raise ValueError(f"{field}: must reference an environment variable ({{env: NAME}}), never a literal value")
    return v


class CtpVenueParams(BaseModel):
    """One CTP trader session (the CTP API's ``CThostFtdcTraderApi``) to a broker's front.

    ``fronts``: the trading front address(es), ``tcp://host:port``; the API tries them in
    turn and reconnects by itself. ``broker_id``, ``user_id`` (and ``investor_id``, default
    the user id): as the broker (or SimNow / openctp) assigned them. ``password`` and
    ``auth_code``: environment references only (``{env: NAME}``), read when the session logs
    on and never stored, logged or put in a status. ``app_id`` with ``auth_code``: the
    terminal authentication (看穿式监管) a production front requires (ReqAuthenticate before
    ReqUserLogin). ``state_dir``: where the adapter keeps its order journal (FrontID /
    SessionID / OrderRef of each order we sent, with our client order id) and the API's flow
    files; the gateway's name is appended.
    """

    model_config = STRICT
    fronts: tuple[str, ...] = Field(min_length=1)
    broker_id: Annotated[str, Field(pattern=_ID)]
    user_id: Annotated[str, Field(pattern=_ID)]
    investor_id: Annotated[str, Field(pattern=_ID)] | None = None
    """InvestorID on orders and queries; unset: ``user_id`` (the usual case: one user, one account)."""
    account: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    """The deployment's account (``accounts[].id``) whose positions and funds this investor
    holds at the broker: the broker's figures (ReqQryInvestorPosition, ReqQryTradingAccount)
    are reported under it. Unset: the investor id."""
    password: SecretRef
    app_id: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    auth_code: SecretRef | None = None
    user_product_info: Annotated[str, Field(max_length=10)] = ""
    state_dir: str | None = None
    """Order journal and flow files (one directory per gateway). Default ``$XMC_VAR_DIR/ctp``,
    else the system temp dir. Keep it on persistent disk: a restarted gateway recognises its
    orders by what it finds there."""
    production_mode: bool = True
    """The API's production mode; false: its evaluation (测评) mode, which a broker asks for
    while it certifies a new terminal (AppID) on its test front."""
    private_topic: Literal["resume", "quick", "restart"] = "resume"
    """Private flow (our orders' and trades' reports) after a (re)connect: ``resume`` from
    where this session's flow files left off (what was missed while away arrives again, and is
    de-duplicated), ``quick`` only what happens after the logon (the query on logon recovers
    the rest), ``restart`` the whole trading day."""
    confirm_settlement: bool = True
    """Confirm the previous day's settlement statement on every logon (ReqSettlementInfoConfirm):
    a CTP front refuses orders until it is confirmed."""
    login_timeout_s: PosF = 10.0
    """How long the adapter waits for the first logon (and settlement confirmation) at start;
    orders before it are refused, nothing is sent."""
    ack_timeout_ms: PosF = 1000.0
    """How long a place / cancel waits for the front's answer before it is UNKNOWN."""
    query_timeout_ms: PosF = 5000.0
    """How long a status query (ReqQryOrder, then ReqQryTrade) waits for its last answer."""
    query_interval_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1000.0
    """Least time between two queries: CTP fronts allow about one query a second (a faster
    one is refused with -2/-3 and retried after this)."""
    probe_interval_ms: PosF = 1000.0
    """The gateway's housekeeping asks for a clock round trip this often (CTP has none: no
    calibration from the session; quotes' stamps still calibrate a feed)."""
    symbols: dict[str, Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,30}$")]] = Field(default_factory=dict)
    """Instrument id -> CTP InstrumentID (``SHFE.cu`` -> ``cu2502``: CTP trades a contract
    month); an instrument not listed goes out under its catalogue symbol."""
    exchange_id: Literal["SHFE", "INE", "DCE", "CZCE", "CFFEX", "GFEX"] | None = None
    """ExchangeID on orders; unset: the venue code (which must then be a CTP exchange)."""
    hedge_flag: Literal["speculation", "arbitrage", "hedge"] = "speculation"
    """CombHedgeFlag of every order (投机 / 套利 / 套保)."""
    market_data: Literal["feed", "off"] = "feed"
    """``feed``: the gateway's configured feed is published as this venue's market (CTP's
    market-data API is not used yet). ``off``: no quotes from this gateway."""

    @field_validator("password", "auth_code", mode="before")
    @classmethod
    def _secret(cls, v: Any, info: Any) -> Any:
        return _env_only(info.field_name, v)

    @field_validator("fronts", mode="before")
    @classmethod
    def _fronts(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        if isinstance(v, (list, tuple)):
            for n, a in enumerate(v):
                if not isinstance(a, str) or not FRONT_RE.match(a):
                    raise ValueError(f"fronts[{n}]: {a!r} is not a front address like tcp://180.168.146.187:10201")
                port = int(a.rsplit(":", 1)[1])
                if not 1 <= port <= 65535:
                    raise ValueError(f"fronts[{n}]: port {port} out of range")
        return v

    @model_validator(mode="after")
    def _check(self) -> "CtpVenueParams":
        if self.app_id and self.auth_code is None:
            raise ValueError("auth_code: required when app_id is set (terminal authentication needs both)")
        if self.auth_code is not None and not self.app_id:
            raise ValueError("app_id: required when auth_code is set (terminal authentication needs both)")
        return self

    @property
    def investor(self) -> str:
        return self.investor_id or self.user_id
