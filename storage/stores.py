"""Choosing the blob store: the one place that knows every kind."""
from affix.storage.blob_store import BlobStore
from affix.storage.local import LocalBlobStore


def open_blob_store(url: str, s3_options=None) -> BlobStore:
    """The blob store for ``url``: a plain path or ``file://`` URL names a local folder,
    ``s3://bucket/prefix`` a bucket reached with ``s3_options`` (a
    :class:`affix.storage.s3.S3Options`)."""
    if url.startswith("file://"):
        return LocalBlobStore(url[len("file://"):])
    if url.startswith("s3://"):
        # imported here: boto3 is needed only by those who store in S3
        from affix.storage.s3 import S3BlobStore, S3Options
        return S3BlobStore(url, s3_options or S3Options())
    if "://" in url:
        raise ValueError(f"unsupported storage URL {url!r}: use a folder path, a file:// URL "
                         "or s3://bucket/prefix")
    return LocalBlobStore(url)


def open_upload_staging(blob_store, form_lifetime: int):
    """Where clients upload to ``blob_store`` themselves with forms that live
    ``form_lifetime`` seconds (an :class:`affix.storage.s3_staging.S3UploadStaging`); None
    when the store cannot take such uploads: a local folder has no URL a client could send
    bytes to without passing through affix."""
    from affix.storage.s3 import S3BlobStore
    if not isinstance(blob_store, S3BlobStore):
        return None
    from affix.storage.s3_staging import S3UploadStaging
    return S3UploadStaging(blob_store, form_lifetime)


def open_partial_store(blob_store):
    """Where ``blob_store`` keeps the bytes of resumable uploads in progress (a
    :class:`affix.storage.partials.PartialStore`)."""
    from affix.storage.s3 import S3BlobStore
    if isinstance(blob_store, S3BlobStore):
        from affix.storage.s3_partials import S3Partials
        return S3Partials(blob_store)
    from affix.storage.partials import LocalPartials
    return LocalPartials(blob_store)
