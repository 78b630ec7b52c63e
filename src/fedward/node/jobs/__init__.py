"""Training jobs run outside the daemon, in a warm, isolated worker process per experiment.

- ``wire``          the messages between the daemon and its workers (JSON lines over pipes)
- ``worker``        the worker process: limits and sandboxes itself, loads the approved
                    plan, trains, writes parameters
- ``runner``        the daemon side: starts, reuses, limits and kills workers
- ``failures``      how a job ends badly (timeout, memory, CPU), with stable error codes
- ``sandbox``       the isolation policy: environment, readable paths, per-host choice
- ``landlock``      the Landlock system calls (files, TCP, signals)
- ``capabilities``  dropping a root worker's capabilities
"""
