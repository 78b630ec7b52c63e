"""Durable state: atomic files, file locks, the node's SQLite stores."""
