"""The compiled-graph chain benchmark's payloads are the product's wire bytes (bench/compiled_chain.py):
a quote batch and an order that decode back to the models the hot path sends."""
from __future__ import annotations

from xmc_actors.bench import compiled_chain as bench
from xmc_actors.model.fastpickle import from_wire
from xmc_actors.model.orders import OrderRequest
from xmc_actors.model.quotes import Quote


def test_payloads_are_a_one_quote_batch_and_an_order_in_wire_bytes():
    # Act
    batch, order = bench.payloads()
    # Assert
    quotes = from_wire(batch)
    assert isinstance(batch, bytes) and isinstance(order, bytes)
    assert len(quotes) == 1 and isinstance(quotes[0], Quote) and quotes[0].instrument == "SHFE.cu"
    req = from_wire(order)
    assert isinstance(req, OrderRequest) and req.qty == 5 and req.client_order_id == "d000001-A-0"
