"""The execution lab: the product's own cores in simulated time (``xmc backtest``, ``docs/lab.md``).

:class:`~xmc_actors.lab.engine.LabRun` drives a deployment's strategies
(:mod:`xmc_actors.strategies`), pair state machine (:class:`~xmc_actors.core.pair.PairBook`),
pre-trade rules and risk guard (:mod:`xmc_actors.core.risk_rules`,
:class:`~xmc_actors.core.risk_guard.RiskGuardCore`) and simulated venues
(:class:`~xmc_actors.venues.sim.SimExchange`) on one discrete-event clock, with the latency of
each venue and each hop drawn from seeded models, and writes a ledger as a live run does.
:mod:`~xmc_actors.lab.figures` turns a run into the execution figures; :mod:`~xmc_actors.lab.compare`
runs several policies on the same scenario and seed.
"""
