"""Bytes <-> messages, and where they travel.

- ``codec``        JSON encoding and checked decoding of control messages
- ``topics``       MQTT topic builders and parsers (the broker ACL is rendered from them)
- ``params_wire``  parameters <-> safetensors bytes/files (never pickle)
"""
