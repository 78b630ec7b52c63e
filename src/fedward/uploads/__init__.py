"""The upload server (``restful`` in the seed): content-addressed blobs behind bearer tokens.

- ``app``           the routes: ``create_app(data_dir, tokens_file, max_blob_bytes, quotas)``
- ``blob_space``    blobs and their reader lists on disk
- ``incoming_blob`` one upload as its bytes arrive
- ``quotas``        how much one peer, and all of them, may keep stored (507 past it)
- ``tokens``        the tokens file: ``add_token``, ``set_token``, ``remove_token``,
                    ``TokenRegistry``
- ``http_wire``     the strict HTTP/1.1 request heads it reads, the response heads it writes
- ``http_server``   ``BlobHttpServer``: a thread per connection, ``sendfile`` downloads
- ``server``        ``UploadServer`` (the server on a background thread) and the listener
- ``cli``           ``fedward uploads serve`` and ``fedward uploads token add|remove|list``

The client side is ``fedward.transport.http_blobs.HttpBlobStore``. The server needs
nothing beyond the standard library.
"""
