"""WireGuard VPN: the seed's vpnserver and ``configure_peer``, automated and made safe.

- ``settings``        the address plan and the seed's ``VPN_*`` names
- ``keys``            Curve25519 keys and preshared keys, as ``wg genkey`` / ``wg pubkey``
- ``registry``        peers, addresses (never reused), the lock around allocation
- ``envfile``         strict ``KEY=value`` files (``config.env``)
- ``peer_config``     a peer's ``config.env`` (the seed's fields)
- ``app_credentials`` broker password, upload token and ``fedward.env`` of a peer
- ``layout``          where the server and an enrolment folder keep their files
- ``wg_config``       ``wg setconf`` text for the server and for a peer
- ``server``          load the state, plan changes, write them (nothing on error)
- ``enrolment``       ``VpnServer``: init, genconf, add, remove, removeconf, revoke
- ``services``        broker and upload server kept in step with the registry
- ``interface``       kernel or ``wireguard-go`` interfaces and their run state
- ``hub_rules``       forwarding policy on the server (iptables)
- ``tunnels``         ``server_up``, ``connect``, ``down``
- ``status``          ``wg show`` parsing and the tables of ``list`` and ``status``
- ``cli``             ``fedward vpn ...``
"""
