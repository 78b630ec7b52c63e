"""fedward: federated learning for biomedical research, inside a WireGuard VPN.

Table of contents (one concept per package; see ARCHITECTURE in the README):

- ``errors``      the one exception tree
- ``sqlite_file`` one SQLite file shared by processes (node and GUI databases)
- ``text_table``  plain-text tables for the command lines
- ``core``        pure domain: ids, messages, parameters, plan digests, aggregation math
- ``protocol``    bytes <-> messages, MQTT topics, parameters <-> safetensors
- ``transport``   Channel interface, in-memory and MQTT channels, blob client
- ``storage``     SQLite stores, atomic files, file locks
- ``config``      typed configuration per component (TOML + environment)
- ``learning``    training-plan base classes, dataset loaders, metrics
- ``node``        node daemon, request handlers, job runner, CLI
- ``researcher``  ``Experiment`` and the request fan-out / fan-in
- ``uploads``     the upload server (``restful`` in the seed)
- ``broker``      Mosquitto configuration rendering, embedded demo broker
- ``vpn``/``lab`` WireGuard peer management; network-namespace lab
- ``gui``         node admin web GUI
"""

__version__ = "0.1.0"
