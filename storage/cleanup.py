"""Removing uploads that nobody claimed in time, direct uploads nobody completed, and
resumable uploads past their expiry."""
import datetime
from collections.abc import Collection

from affix.storage.blob_store import BlobStore, UploadStaging
from affix.storage.models import PREPARED, Catalog
from affix.storage.partials import PartialStore
from affix.storage.resumable import ResumableUploads, remove_unless_leased


def remove_unclaimed(catalog: Catalog, blob_store: BlobStore, cutoff: datetime.datetime,
                     kept_statuses: Collection[str]) -> int:
    """Delete attachments without a container created before ``cutoff``, rows and blobs,
    except those whose status is one of ``kept_statuses``; returns how many.

    Each row goes in a conditional DELETE that a claim (a conditional UPDATE) cannot overlap:
    either the claim came first and the row stays, or the row is gone and the claim finds
    nothing. The blob is deleted only after its row, so no row is ever left without its blob.
    """
    Attachment = catalog.Attachment
    candidates = list(
        Attachment.select(Attachment.id, Attachment.storage_key)
        .where(Attachment.container_type.is_null() & (Attachment.created_at < cutoff)
               # a direct upload whose form may still be in use, or a tus upload waiting for
               # its retry: each has its own expiry (remove_expired_direct_uploads)
               & (Attachment.status != PREPARED)
               & Attachment.status.not_in(kept_statuses))
    )
    removed = 0
    for candidate in candidates:
        deleted = (
            Attachment.delete()
            .where((Attachment.id == candidate.id) & Attachment.container_type.is_null()
                   & Attachment.status.not_in(kept_statuses))
            .execute()
        )
        if deleted:
            blob_store.delete(candidate.storage_key)
            removed += 1
    return removed


def remove_expired_direct_uploads(catalog: Catalog, resumable_uploads: ResumableUploads,
                                  staging: UploadStaging,
                                  cutoff: datetime.datetime) -> int:
    """Delete direct uploads prepared before ``cutoff`` and never completed, rows and staged
    objects, then every staged object last modified before ``cutoff`` (what a form replayed
    after completion left); returns how many uploads were removed. ``cutoff`` must lie at
    least a form's lifetime back, so that no form that could still be used is affected.

    A prepared row that one of ``resumable_uploads`` became is no direct upload: its tus upload
    waits for the retry of its last PATCH, its bytes at the row's key, until the upload's own
    expiry (:func:`remove_expired_resumable_uploads`). One whose upload is gone (a crash cut
    that removal short) goes here with its object.

    Each row goes in a conditional DELETE that a completion (a conditional UPDATE) cannot
    overlap: either the completion came first and the row stays, or the row is gone and the
    completion finds nothing.
    """
    Attachment = catalog.Attachment
    ResumableUpload = resumable_uploads.ResumableUpload
    # a tus upload records the row it became in the transaction that inserts it
    became = (ResumableUpload.select(ResumableUpload.attachment_id)
              .where(ResumableUpload.attachment_id.is_null(False)))
    candidates = list(
        Attachment.select(Attachment.id, Attachment.storage_key)
        .where((Attachment.status == PREPARED) & (Attachment.created_at < cutoff)
               & Attachment.id.not_in(became))
    )
    removed = 0
    for candidate in candidates:
        deleted = (
            Attachment.delete()
            .where((Attachment.id == candidate.id) & (Attachment.status == PREPARED))
            .execute()
        )
        if deleted:
            staging.discard(candidate.storage_key)
            removed += 1
    staging.sweep(cutoff)
    return removed


def remove_expired_resumable_uploads(uploads: ResumableUploads, partials: PartialStore,
                                     blob_store: BlobStore, now: datetime.datetime) -> int:
    """Delete resumable uploads expired at ``now``, rows and bytes; returns how many. One that
    a PATCH still writes (its lease valid) stays until it is done. An attachment a finished
    upload became stays too, unless a crash cut its finishing short: then it is still
    ``prepared``, nobody's attachment, and goes with its blob."""
    removed = 0
    Attachment = uploads.catalog.Attachment
    for candidate in uploads.expired(now):
        # a PATCH since the listing may have moved its expiry on: only what is expired still
        # when read under the lease goes
        upload = remove_unless_leased(uploads, partials, candidate, now, expired_only=True)
        if upload is None:
            continue
        removed += 1
        if upload.attachment_id is not None and (
                Attachment.delete().where((Attachment.id == upload.attachment_id)
                                          & (Attachment.status == PREPARED)).execute()):
            blob_store.delete(upload.storage_key)
    return removed
