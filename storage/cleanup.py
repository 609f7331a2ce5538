"""Removing uploads that nobody claimed in time."""


def remove_unclaimed(catalog, blob_store, cutoff, kept_statuses) -> int:
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
