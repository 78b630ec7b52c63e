"""Training jobs run outside the daemon, in a warm, isolated worker process per experiment.

- ``wire``     the messages between the daemon and its workers (JSON lines over pipes)
- ``worker``   the worker process: loads the approved plan, trains, writes parameters
- ``sandbox``  what the worker takes away from itself before running plan code
- ``runner``   the daemon side: starts, reuses, limits and kills workers
"""
