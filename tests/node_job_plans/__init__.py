"""Training plans used by the node tests: each file holds imports and plan classes only,
because ``plan_source`` sends a class with its file's imports (and the node runs just that).

- ``probes``                 plans that report what a job can see and do, or misbehave
- ``reviewed``               plans put through approval (``ReviewedPlan``, ``RequestedPlan``, ...)
- ``reviewed_reformatted``   ``ReviewedPlan`` with new comments and layout: same digest
- ``reviewed_changed``       ``ReviewedPlan`` with one constant changed: another digest
"""
