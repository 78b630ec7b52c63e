"""Training jobs run outside the daemon, in a warm, isolated worker process per experiment.

- ``wire``          the messages between the daemon and its workers (JSON lines over pipes)
- ``worker``        the worker process: limits and sandboxes itself, loads the approved
                    plan, trains, writes parameters
- ``runner``        the daemon side: starts, reuses and stops warm workers
- ``exchange``      one job on one worker: reports read as hostile, limits watched
- ``job_folder``    inputs (read-only), work (the worker's), outputs (the daemon's)
- ``results``       what a job may return, checked before anything leaves the node
- ``isolation``     which layers this host gives, and the guarantees a node requires
- ``bubblewrap``    the namespaces (network, PID, mount, IPC, UTS)
- ``seccomp``       the system-call filter
- ``cgroups``       memory, processes and CPU for the whole job tree (v1 and v2)
- ``failures``      how a job ends badly (timeout, memory, CPU), with stable error codes
- ``sandbox``       the layers a worker sets on itself; its environment and paths
- ``landlock``      the Landlock system calls (files, TCP, signals)
- ``capabilities``  dropping a root worker's capabilities
"""
