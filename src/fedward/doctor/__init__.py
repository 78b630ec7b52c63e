"""``fedward doctor``: is this machine's part of the federation working, and if not, why?

One command per role, reading the same settings as that role's own commands, runs a list
of checks and prints a table: ✔ or ✘ per check and, under each ✘, the fix in one line.
The exit status is 0 only when every check passed; ``--json`` prints the same for scripts.

- ``outcome``        a check, its outcome, the report and how it prints
- ``vpn_checks``     WireGuard interface, latest handshake, ping of the VPN server
- ``broker_checks``  login, own topics and the ACL; the broker host's configuration
- ``upload_checks``  token, clock against the upload server; the upload host's files
- ``host_checks``    disk space, datasets readable by the job worker, isolation, GPU
- ``roles``          which checks each role runs (server, broker, uploads, node, researcher)
- ``cli``            the ``fedward doctor`` commands
"""
