"""Durable state: atomic files, SQLite stores."""
