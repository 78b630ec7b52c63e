"""The MQTT broker (``mqtt`` in the seed): Mosquitto configured by fedward, or an embedded one.

- ``peers``           ``BrokerPeer`` (role, id, password) and the TOML peers file
- ``passwords``       Mosquitto ``$7$`` PBKDF2-SHA512 password lines: hash, verify, read, write
- ``acl``             the ACL file, rendered only from ``protocol.topics.acl_rules``; ``AclPolicy``
- ``render``          ``render_broker_config`` -> ``BrokerFiles`` (mosquitto.conf, passwords, acl)
- ``process``         ``start_broker`` -> ``RunningBroker`` (Mosquitto child or embedded thread)
- ``embedded``        the embedded MQTT 3.1.1 broker (``python -m fedward.broker.embedded``)
- ``client_session``  one client connection of the embedded broker
- ``packets``         MQTT 3.1.1 packet parsing and encoding for the embedded broker
- ``limits``          the embedded broker's resource limits, each with the reason for its value
- ``cli``             ``fedward broker config | run | reload``
"""
