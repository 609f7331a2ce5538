"""Removing blobs that no attachment references: what a crash between storing a blob and
writing its row leaves behind.

An upload commits its blob first and inserts its row right after, in the same request; a
deletion removes the row first and the blob after. So a blob without a row is either an orphan
or one of those two steps in flight. Only blobs older than a cutoff are considered, and the
cutoff must lie further back than any upload can last (S3 dates an object from the start of its
multipart upload, not from its completion).
"""

import datetime
from collections.abc import Iterator, Sequence

from affix.storage.blob_store import BlobStore
from affix.storage.models import Catalog

# keys per query: far below every database's limit on bound parameters
ROW_LOOKUP_BATCH = 500


def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def find_orphans(catalog: Catalog, blob_store: BlobStore, cutoff: datetime.datetime, *,
                 batch_size: int = ROW_LOOKUP_BATCH) -> list[str]:
    """Keys of committed blobs last modified before ``cutoff`` that no row references, looked
    up ``batch_size`` keys a query.

    Blobs are listed before rows are looked up: a blob committed after the listing is not a
    candidate, and one whose row arrived meanwhile is found referenced.
    """
    candidates = sorted(
        key for key, last_modified in blob_store.stored_blobs() if last_modified < cutoff
    )
    Attachment = catalog.Attachment
    referenced: set[str] = set()
    for batch in _batches(candidates, batch_size):
        query = Attachment.select(Attachment.storage_key).where(Attachment.storage_key.in_(batch))
        referenced.update(row.storage_key for row in query)
    return [key for key in candidates if key not in referenced]


def remove_orphans(catalog: Catalog, blob_store: BlobStore,
                   cutoff: datetime.datetime) -> list[str]:
    """Delete the blobs :func:`find_orphans` names; returns their keys."""
    orphans = find_orphans(catalog, blob_store, cutoff)
    for key in orphans:
        blob_store.delete(key)
    return orphans
