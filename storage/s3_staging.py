"""Where clients upload to the bucket themselves (OpenProject's direct uploads): a staging
folder of the store's prefix, ``<prefix>/.direct-uploads/``, that pre-signed POST forms write to.

A form may write to its staged key only, and only until it expires; so an object there is
nothing affix has checked. Completing an upload copies the staged object, inside the bucket, to
a key of the store's own (:func:`~affix.storage.blob_store.new_storage_key`) that no form can
write to, and deletes the staged one once the upload is complete: a form replayed after
completion writes a new staged object, never what an attachment serves (OpenProject's advisory
GHSA-c5j2-2mfg-49h7). The bytes are checked at that final key, after the copy, so what is
checked is what is served whatever a replay does to the staged key meanwhile.

Staged keys are not storage keys (:func:`~affix.storage.blob_store.is_storage_key`): the store
never lists them as blobs, so ``affix gc`` never takes them; :meth:`S3UploadStaging.sweep`
removes those left behind.
"""
import contextlib
import datetime
import secrets
from collections.abc import Iterator

from affix.storage.blob_store import new_storage_key
from affix.storage.s3 import (
    DIRECT_STAGING_FOLDER, S3BlobStore, as_storage_errors, naive_utc, store_errors,
)

STAGING_FOLDER = DIRECT_STAGING_FOLDER
# S3 takes at most 5 GiB in one POST, and copies at most 5 GiB in one CopyObject
MAX_DIRECT_UPLOAD_SIZE = 5 * 1024 ** 3
# what the form asks S3 to answer a successful upload with (its default is 204)
SUCCESS_STATUS = "201"


# what S3 answers for an object that is not there: a HEAD has no body to say NoSuchKey in
_MISSING = ("404", "NoSuchKey")


@contextlib.contextmanager
def _missing_as_not_found(staged_key: str) -> Iterator[None]:
    try:
        yield
    except store_errors() as error:
        response = getattr(error, "response", None) or {}
        if response.get("Error", {}).get("Code") in _MISSING:
            raise FileNotFoundError(staged_key) from None
        raise


class S3UploadStaging:
    """The staging folder of one :class:`~affix.storage.s3.S3BlobStore`; forms that write to it
    live ``form_lifetime`` seconds."""

    def __init__(self, store: S3BlobStore, form_lifetime: int) -> None:
        self._store = store
        self.form_lifetime = form_lifetime

    def new_key(self) -> str:
        """A new staged key, as the attachment's row holds it until completion (so that
        deleting the row's blob deletes the staged object)."""
        return f"{STAGING_FOLDER}/{secrets.token_hex(16)}"

    def form(self, staged_key: str, size: int,
             lifetime: int | None = None) -> tuple[str, dict[str, str]]:
        """(URL, form fields) of a pre-signed POST that stores exactly ``size`` bytes at
        ``staged_key``, and nothing anywhere else, for ``lifetime`` seconds (at most, and by
        default, ``form_lifetime``)."""
        with as_storage_errors("sign an upload form"):
            signed = self._store.client.generate_presigned_post(
                Bucket=self._store.bucket, Key=self._store.object_key(staged_key),
                Fields={"success_action_status": SUCCESS_STATUS},
                Conditions=[{"success_action_status": SUCCESS_STATUS},
                            ["content-length-range", size, size]],
                ExpiresIn=min(lifetime or self.form_lifetime, self.form_lifetime),
            )
        return signed["url"], signed["fields"]

    def staged_size(self, staged_key: str) -> int:
        """The size of the staged object; ``FileNotFoundError`` when there is none."""
        client = self._store.client
        with as_storage_errors("look at the uploaded object"), _missing_as_not_found(staged_key):
            answer = client.head_object(
                Bucket=self._store.bucket, Key=self._store.object_key(staged_key))
        size: int = answer["ContentLength"]
        return size

    def promote(self, staged_key: str) -> str:
        """Copy the staged object to a new storage key inside the bucket; returns the storage
        key. ``FileNotFoundError`` when nothing is staged. The staged object stays: a
        completion repeated meanwhile copies it too, and only the one that completes the
        upload discards it."""
        store = self._store
        storage_key = new_storage_key()
        with as_storage_errors("copy the uploaded object"), _missing_as_not_found(staged_key):
            store.client.copy_object(
                Bucket=store.bucket, Key=store.object_key(storage_key),
                CopySource={"Bucket": store.bucket, "Key": store.object_key(staged_key)},
            )
        return storage_key

    def discard(self, staged_key: str) -> None:
        """Delete a staged object, and the multipart upload open at its key if any
        (nothing happens when there is none)."""
        self._store.delete(staged_key)

    def sweep(self, cutoff: datetime.datetime) -> int:
        """Delete staged objects last modified before ``cutoff`` (naive UTC), and abort the
        multipart uploads of direct uploads in parts initiated before it; returns how many
        objects. Every form that could have written one has expired once ``cutoff`` is at
        least a form's lifetime ago: what is left is a replayed form's, or an abandoned
        upload's."""
        store = self._store
        prefix = store.object_key(STAGING_FOLDER) + "/"
        store.abort_stale_uploads(prefix, cutoff)
        pages = store.client.get_paginator("list_objects_v2").paginate(
            Bucket=store.bucket, Prefix=prefix, PaginationConfig={"PageSize": store.list_page_size})
        swept = 0
        with as_storage_errors("sweep the staged uploads"):
            for page in pages:
                for item in page.get("Contents", ()):
                    if naive_utc(item["LastModified"]) < cutoff:
                        store.client.delete_object(Bucket=store.bucket, Key=item["Key"])
                        swept += 1
        return swept
