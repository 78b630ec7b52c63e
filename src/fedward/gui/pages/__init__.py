"""One module per area of the GUI; each exposes ``routes`` for the app to mount.

- ``login``         sign in (throttled), sign out
- ``dashboard``     node id, broker and upload-server reachability, counts, recent jobs
- ``datasets``      list, add through the data-root folder browser, preview, delete
- ``plans``         list by status, highlighted source, diff, approve/reject, register, delete
- ``jobs``          job history, one job's metrics as charts
- ``users``         administrators manage accounts; everyone changes their own password
- ``security_log``  sign-ins, refusals, plan decisions and other audit events
"""
