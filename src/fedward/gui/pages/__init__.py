"""One module per area of the GUI; each exposes ``routes`` for the app to mount.

- ``login``         sign in (throttled), sign out
- ``dashboard``     node id, daemon heartbeat and isolation, peer reachability, counts, jobs
- ``datasets``      list, add through the data-root folder browser, preview, thumbnails, delete
- ``plans``         versions by lineage, canonical source, diff against the approved version,
                    approve/reject, register, delete
- ``jobs``          job history (paged), one job's metrics as charts
- ``users``         administrators manage accounts; everyone changes their own password
- ``security_log``  sign-ins, refusals, plan decisions and other audit events (paged)
"""
