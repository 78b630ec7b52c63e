"""The node: holds datasets, approves training plans, runs training jobs.

- ``services``   dataset, plan and job services over the SQLite stores (used by CLI, GUI, daemon)
- ``daemon``     connects to the broker, announces presence, dispatches requests
- ``handlers``   one handler per request type
- ``jobs``       the job runner and its isolated, warm worker process
- ``cli``        ``fedward node ...``
"""
