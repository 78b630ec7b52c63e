"""How bytes move.

- ``channel``  the ``Channel`` interface for small control messages (publish / subscribe)
- ``memory``   in-process channel and blob store, for unit tests of node and researcher logic
- ``mqtt``     ``MqttChannel`` on paho-mqtt 2.x (the only paho import)
- ``blobs``    the ``BlobStore`` interface; ``http_blobs``: ``HttpBlobStore`` over ``http_pool``
"""
