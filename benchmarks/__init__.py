"""Performance harness (not tests): each module runs with ``python -m benchmarks.<name>``.

- ``aggregation``  researcher-side FedAvg: throughput and peak memory per number of updates

Figures are written under ``benchmarks/results/`` as JSON, with the machine they came from.
"""
