"""The node's web GUI: datasets, training plans, jobs and users behind real authentication.

- ``cli``            ``fedward gui serve`` / ``fedward gui adduser``
- ``server``         uvicorn, TLS when given a certificate
- ``app``            ``create_app(context)``: routes, security headers, error pages
- ``trusted_hosts``  answer only to the GUI's own names and to addresses (DNS rebinding)
- ``context``        ``open_gui_context(node_config, settings)``: services + accounts
- ``settings``       ``GuiSettings``: address, TLS, session lifetimes, throttle policy
- ``roles``          viewer < approver < admin, as permissions
- ``accounts``       argon2id accounts (``AccountService``); ``account_database`` its file
- ``password_strength`` length and zxcvbn's guessability for every new password
- ``sessions``       server-side sessions with a CSRF token each
- ``login_throttle`` growing delays per (user, address) and per address, never per user
- ``password_gate`` every visitor's password check: throttle permit, then a check slot
- ``guards``         ``@page(permission)``: session, CSRF and role checks for handlers
- ``pages``          one module per area (login, dashboard, datasets, plans, jobs, ...)
- ``folder_browser``, ``connectivity``, ``source_view``, ``metrics_chart``,
  ``plan_lineages``, ``preview_text``, ``thumbnails``, ``favicon``: page helpers

``docs/gui.md`` describes the review workflow and the sign-in throttling policy.

The GUI reaches node state only through ``fedward.node.services``; it never imports
``fedward.storage`` or ``fedward.transport`` (an import-linter contract checks it).
"""
