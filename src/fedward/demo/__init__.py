"""A whole federation on one machine, for ``fedward demo``, notebooks, tests and benchmarks.

- ``local_federation``  starts a broker, the upload server and node processes on loopback
- ``data``              example datasets from scikit-learn, split across nodes
- ``cli``               ``fedward demo``
"""
