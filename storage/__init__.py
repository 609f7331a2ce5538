"""Persistence: metadata in a peewee database, bytes in a blob store. Knows nothing about HTTP."""
