"""The audit ledger: DuckDB shards, the shard actor, the batching client, audit queries.

- :mod:`.schema` — table layout and the Event → Arrow codec (bad input refused with a reason);
- :mod:`.store` — one shard file: idempotent group-committed appends, checkpoints, snapshots;
- :mod:`.actor` — the ``ledger-<n>`` shard actors and :func:`start_ledger`;
- :mod:`.client` — :class:`LedgerClient`, the :class:`~xmc_actors.core.sink.EventSink` actors use;
- :mod:`.reconcile` — missing events from the venues' drop copy;
- :mod:`.audit` / :mod:`.report` — read-only queries, trace, export and the HTML report.
"""
