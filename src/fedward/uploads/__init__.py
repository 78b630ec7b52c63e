"""The upload server (``restful`` in the seed): content-addressed blobs behind bearer tokens.

- ``app``         the ASGI app: ``create_app(data_dir, tokens_file, max_blob_bytes)``
- ``blob_space``  blobs and their reader lists on disk
- ``tokens``      the tokens file: ``add_token``, ``set_token``, ``remove_token``, ``TokenRegistry``
- ``server``      ``UploadServer`` (uvicorn on a background thread) and the shared uvicorn settings
- ``asgi``        the ASGI vocabulary the app is written in
- ``cli``         ``fedward uploads serve`` and ``fedward uploads token add|remove|list``

The client side is ``fedward.transport.http_blobs.HttpBlobStore``. Nothing here imports
uvicorn until ``server`` is imported, so the app and tokens work without it.
"""
