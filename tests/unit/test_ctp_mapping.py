"""The CTP adapter's pure parts: its field values against the binding's own THOST_FTDC_*
constants, the status and reason mappings, prices, and its parameters' validation."""
from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from xmc_actors.model.orders import OrderStatus, RejectReason
from xmc_actors.venues.ctp import mapping as M
from xmc_actors.venues.ctp.binding import ensure_locale
from xmc_actors.venues.ctp.params import CtpVenueParams

BASE = {"fronts": ["tcp://180.168.146.187:10201"], "broker_id": "9999", "user_id": "000123",
        "password": {"env": "CTP_PASSWORD"}}


def _binding():
    ok, why = ensure_locale(Path(tempfile.gettempdir()) / "xmc-ctp-locale")
    if not ok:
        pytest.skip(f"the CTP binding cannot load here: {why}")
    from openctp_ctp import tdapi

    return tdapi


def test_every_field_value_is_the_bindings_own_constant():
    t = _binding()
    assert (M.D_BUY, M.D_SELL) == (t.THOST_FTDC_D_Buy, t.THOST_FTDC_D_Sell)
    assert M.OFFSET_FLAGS == {"OPEN": t.THOST_FTDC_OF_Open, "CLOSE": t.THOST_FTDC_OF_Close,
                              "CLOSE_TODAY": t.THOST_FTDC_OF_CloseToday, "CLOSE_YESTERDAY": t.THOST_FTDC_OF_CloseYesterday}
    assert (M.OPT_ANY, M.OPT_LIMIT) == (t.THOST_FTDC_OPT_AnyPrice, t.THOST_FTDC_OPT_LimitPrice)
    assert (M.TC_IOC, M.TC_GFD) == (t.THOST_FTDC_TC_IOC, t.THOST_FTDC_TC_GFD)
    assert (M.VC_ANY, M.VC_COMPLETE) == (t.THOST_FTDC_VC_AV, t.THOST_FTDC_VC_CV)
    assert (M.CC_IMMEDIATELY, M.FCC_NOT_FORCE_CLOSE, M.AF_DELETE) == (
        t.THOST_FTDC_CC_Immediately, t.THOST_FTDC_FCC_NotForceClose, t.THOST_FTDC_AF_Delete)
    assert M.HEDGE_FLAGS == {"speculation": t.THOST_FTDC_HF_Speculation, "arbitrage": t.THOST_FTDC_HF_Arbitrage,
                             "hedge": t.THOST_FTDC_HF_Hedge}
    assert (M.PD_NET, M.PD_LONG, M.PD_SHORT) == (t.THOST_FTDC_PD_Net, t.THOST_FTDC_PD_Long, t.THOST_FTDC_PD_Short)
    assert (M.PSD_TODAY, M.PSD_HISTORY) == (t.THOST_FTDC_PSD_Today, t.THOST_FTDC_PSD_History)
    # every field the adapter copies exists on the binding's structures
    for names, struct in ((M.POSITION_FIELDS, t.CThostFtdcInvestorPositionField),
                          (M.ACCOUNT_FIELDS, t.CThostFtdcTradingAccountField)):
        assert all(hasattr(struct(), n) for n in names), struct
    assert (M.OSS_INSERT_SUBMITTED, M.OSS_CANCEL_SUBMITTED, M.OSS_ACCEPTED, M.OSS_INSERT_REJECTED,
            M.OSS_CANCEL_REJECTED) == (t.THOST_FTDC_OSS_InsertSubmitted, t.THOST_FTDC_OSS_CancelSubmitted,
                                       t.THOST_FTDC_OSS_Accepted, t.THOST_FTDC_OSS_InsertRejected,
                                       t.THOST_FTDC_OSS_CancelRejected)
    assert (M.OST_ALL_TRADED, M.OST_PART_QUEUEING, M.OST_PART_NOT_QUEUEING, M.OST_NO_TRADE_QUEUEING,
            M.OST_NO_TRADE_NOT_QUEUEING, M.OST_CANCELED, M.OST_UNKNOWN, M.OST_NOT_TOUCHED, M.OST_TOUCHED) == (
        t.THOST_FTDC_OST_AllTraded, t.THOST_FTDC_OST_PartTradedQueueing, t.THOST_FTDC_OST_PartTradedNotQueueing,
        t.THOST_FTDC_OST_NoTradeQueueing, t.THOST_FTDC_OST_NoTradeNotQueueing, t.THOST_FTDC_OST_Canceled,
        t.THOST_FTDC_OST_Unknown, t.THOST_FTDC_OST_NotTouched, t.THOST_FTDC_OST_Touched)
    assert M.RESUME_TYPES == {"restart": t.THOST_TERT_RESTART, "resume": t.THOST_TERT_RESUME, "quick": t.THOST_TERT_QUICK}
    # the fields the adapter copies out of each callback exist on the binding's structures
    for cls, names in [(t.CThostFtdcOrderField, M.ORDER_FIELDS), (t.CThostFtdcTradeField, M.TRADE_FIELDS),
                       (t.CThostFtdcInputOrderField, M.INPUT_ORDER_FIELDS),
                       (t.CThostFtdcInputOrderActionField, M.ACTION_FIELDS), (t.CThostFtdcOrderActionField, M.ACTION_FIELDS)]:
        assert set(names) <= set(dir(cls)), cls.__name__


@pytest.mark.parametrize("submit,status,ours", [
    ("0", "a", OrderStatus.SUBMITTED), ("3", "3", OrderStatus.ACCEPTED), ("3", "1", OrderStatus.PARTIALLY_FILLED),
    ("3", "0", OrderStatus.FILLED), ("3", "5", OrderStatus.CANCELED), ("1", "3", OrderStatus.ACCEPTED),
    ("3", "2", OrderStatus.CANCELED), ("4", "5", OrderStatus.REJECTED), ("5", "3", OrderStatus.ACCEPTED),
    ("3", "4", OrderStatus.SUBMITTED), ("3", "b", OrderStatus.ACCEPTED),
])
def test_status_of(submit, status, ours):
    assert M.status_of(submit, status) is ours


def test_reasons_from_error_ids_and_exchange_messages():
    assert M.reason_of_error(31) is RejectReason.INSUFFICIENT_MARGIN
    assert M.reason_of_error(51) is RejectReason.POSITION_INSUFFICIENT
    assert M.reason_of_error(26) is RejectReason.TOO_LATE_TO_CANCEL
    assert M.reason_of_error(22) is RejectReason.DUPLICATE_ORDER
    assert M.reason_of_error(12345) is RejectReason.OTHER
    assert M.reason_of_text("CZCE:价格超出涨跌停板") is RejectReason.PRICE_OUT_OF_LIMIT
    assert M.reason_of_text("SHFE:平仓手数超过可平仓位") is RejectReason.POSITION_INSUFFICIENT
    assert M.reason_of_text("DCE:非交易时间") is RejectReason.MARKET_CLOSED
    assert M.reason_of_text("DCE:资金不足") is RejectReason.INSUFFICIENT_MARGIN
    assert M.reason_of_text("报单价格不是最小变动价位的整数倍") is RejectReason.OFF_TICK
    assert M.reason_of_text("something else") is RejectReason.OTHER


def test_prices_and_order_refs():
    assert M.price_in(70120.00000001, Decimal("10")) == Decimal("70120")
    assert M.price_in(3900.2, Decimal("0.2")) == Decimal("3900.2")
    assert M.price_in(560.35, Decimal("0.05")) == Decimal("560.35")
    assert M.price_in(1.234, None) == Decimal("1.234")
    assert M.order_ref(8) == "000000000008" and M.norm_ref("000000000008") == "8" == M.norm_ref("       8")
    assert M.price_out(Decimal("70120")) == 70120.0 and M.price_out(None) == 0.0


def test_params_name_the_field_at_fault():
    p = CtpVenueParams.model_validate(BASE)
    assert p.investor == "000123" and p.private_topic == "resume" and p.confirm_settlement
    for bad, field, words in [
        ({"fronts": []}, "fronts", "at least 1"),
        ({"fronts": ["180.168.146.187:10201"]}, "fronts", "fronts[0]"),
        ({"fronts": ["tcp://h:99999"]}, "fronts", "out of range"),
        ({"password": "hunter2"}, "password", "environment variable"),
        ({"password": None}, "password", ""),
        ({"app_id": "client_xmc_1.0"}, "auth_code", "required when app_id"),
        ({"auth_code": {"env": "CTP_AUTH"}}, "app_id", "required when auth_code"),
        ({"auth_code": "0000000000000000", "app_id": "a"}, "auth_code", "environment variable"),
        ({"broker_id": ""}, "broker_id", ""),
        ({"private_topic": "all"}, "private_topic", ""),
        ({"exchange_id": "LME"}, "exchange_id", ""),
        ({"symbols": {"SHFE.cu": "cu 2502"}}, "symbols", ""),
        ({"frontz": ["tcp://h:1"]}, "frontz", "Extra inputs"),
    ]:
        with pytest.raises(ValidationError) as e:
            CtpVenueParams.model_validate({**BASE, **bad})
        text = str(e.value)
        assert field in text and words in text, (bad, text)
    assert "hunter2" not in repr(CtpVenueParams.model_validate(BASE))


def test_the_adapter_is_registered_and_validates_without_the_binding():
    from xmc_actors.model.registry import ADAPTERS
    import xmc_actors.venues  # noqa: F401 - registers the adapters

    entry = ADAPTERS.get("ctp")
    assert entry.params is CtpVenueParams and entry.factory is not None


def test_without_the_locale_the_binding_is_refused_with_a_reason_not_a_process_abort(monkeypatch):
    from xmc_actors.venues.ctp import binding

    monkeypatch.setattr(binding, "locale_available", lambda: False)
    with pytest.raises(binding.CtpUnavailable, match="zh_CN.GB18030"):
        binding.load_tdapi()
