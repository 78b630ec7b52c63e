"""Typed configuration per component: TOML file, then environment overrides, validated once.

Only ``loader`` reads ``os.environ``; everything else receives a config object.

- ``model``   the dataclasses (``NodeConfig``, ``ResearcherConfig``, endpoints, ``Secret``)
- ``loader``  TOML + the seed's variables (``MQTT_BROKER``, ``UPLOADS_URL``, ``NODE_ID``, ...)
"""
