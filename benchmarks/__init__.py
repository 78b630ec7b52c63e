"""Performance harness (not tests). ``make bench`` runs ``python -m benchmarks.run``.

- ``run``             the entry point: every section below, then ``results/latest.{json,md}``
- ``fedward_rounds``  round overhead on a loopback federation (Mosquitto, upload server,
                      node processes), with ``noop_plan.NoOpPlan`` as the workload
- ``floor``           the same bytes serialised, hashed and moved, nothing else
- ``flower_rounds``   the same rounds on Flower's deployment runtime (``flower_app/``,
                      installed into ``.flower-venv``)
- ``aggregation``     researcher-side FedAvg: throughput and peak memory per number of updates
- ``scale``           one round with 50 nodes, CPU of the broker and the upload server
- ``tunnel``          a 100 MB blob through the WireGuard lab vs loopback (``blob_probe``)
- ``profile_round``   where a round's time goes: py-spy / cProfile of every process
- ``report``, ``stats``  Markdown tables, medians and spreads

Figures are written under ``benchmarks/results/`` as JSON, with the machine they came from;
docs/benchmarks.md says how to read them.
"""
