"""Choosing the blob store: the one place that knows every kind."""
from pathlib import Path

from affix.storage.blob_store import (
    BlobStore, PartStaging, StorageError, TakesDirectPartUploads, TakesDirectUploads,
    UploadStaging,
)
from affix.storage.local import LocalBlobStore
from affix.storage.partials import PartialStore
from affix.storage.s3 import S3Options


def open_blob_store(url: str, s3_options: S3Options | None = None) -> BlobStore:
    """The blob store for ``url``: a plain path or ``file://`` URL names a local folder,
    ``s3://bucket/prefix`` a bucket reached with ``s3_options``."""
    if url.startswith("file://"):
        return LocalBlobStore(url[len("file://"):])
    if url.startswith("s3://"):
        from affix.storage.s3 import S3BlobStore
        return S3BlobStore(url, s3_options or S3Options())
    if "://" in url:
        raise ValueError(f"unsupported storage URL {url!r}: use a folder path, a file:// URL "
                         "or s3://bucket/prefix")
    return LocalBlobStore(url)


def create_store(url: str, s3_options: S3Options | None = None) -> tuple[str, bool]:
    """Make the place where the store at ``url`` keeps its blobs, unless it is there: the
    bucket (where the credentials allow) or the folder. (What that place is, whether this call
    made it); a :class:`StorageError` for a refusal, S3's or the file system's."""
    if url.startswith("s3://"):
        from affix.storage.s3 import S3BlobStore
        store = S3BlobStore(url, s3_options or S3Options())
        return f"the bucket {store.bucket!r}", store.create_bucket()
    folder = Path(url.removeprefix("file://"))
    there = folder.is_dir()
    try:
        # a local store makes its folder, and the staging folder inside, when it opens
        open_blob_store(url)
    except OSError as error:
        raise StorageError(f"could not create the folder {folder}: {error.strerror}") from None
    return f"the folder {folder}", not there


def open_upload_staging(blob_store: BlobStore, form_lifetime: int) -> UploadStaging | None:
    """Where clients upload to ``blob_store`` themselves with forms that live
    ``form_lifetime`` seconds; None when the store cannot take such uploads (a local folder
    has no URL a client could send bytes to without passing through affix)."""
    if isinstance(blob_store, TakesDirectUploads):
        return blob_store.upload_staging(form_lifetime)
    return None


def open_part_staging(blob_store: BlobStore, url_lifetime: int) -> PartStaging | None:
    """Where clients upload to ``blob_store`` themselves in parts, by part URLs that live
    ``url_lifetime`` seconds; None when the store cannot take such uploads."""
    if isinstance(blob_store, TakesDirectPartUploads):
        return blob_store.part_staging(url_lifetime)
    return None


def open_partial_store(blob_store: BlobStore) -> PartialStore:
    """Where ``blob_store`` keeps the bytes of resumable uploads in progress."""
    return blob_store.partial_store()
