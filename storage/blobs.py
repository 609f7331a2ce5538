"""Blob stores: where attachment bytes live.

An upload is written into a *staged* blob, invisible to readers. ``commit`` makes it permanent
under a key that the store chooses (never derived from client input); ``discard`` removes it. So
a failed upload leaves nothing behind, and a crash mid-upload leaves only staging debris.
"""
import datetime
import os
import secrets
from pathlib import Path

STAGING_DIR = ".staging"
# keys spread over 256 folders named by two hex digits, made once when the store opens: a
# commit then creates no folder, so the only directory it must make durable is its own
FAN_OUT = tuple(f"{number:02x}" for number in range(256))


def new_storage_key() -> str:
    """A random, content-independent key under one of the :data:`FAN_OUT` prefixes (folders in
    a local store)."""
    token = secrets.token_hex(16)
    return f"{token[:2]}/{token}"


def fsync_directory(path: Path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StagedLocalBlob:
    """A blob being written into the staging folder of a :class:`LocalBlobStore`."""

    def __init__(self, store: "LocalBlobStore"):
        self._store = store
        self.path = store.staging / secrets.token_hex(16)
        self._file = open(self.path, "xb")

    def write(self, data: bytes):
        self._file.write(data)

    def commit(self) -> str:
        """Make the blob durable and permanent; returns its storage key."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        key = new_storage_key()
        target = self._store.path_of(key)
        os.rename(self.path, target)
        # the rename is durable only once the directory entry is
        fsync_directory(target.parent)
        return key

    def discard(self):
        self._file.close()
        self.path.unlink(missing_ok=True)


class LocalBlobStore:
    """Blobs as files in a folder on the local disk."""

    def __init__(self, root):
        self.root = Path(root)
        self.staging = self.root / STAGING_DIR
        self.staging.mkdir(parents=True, exist_ok=True)
        for name in FAN_OUT:
            (self.root / name).mkdir(exist_ok=True)
        # the folders' entries, durable before a blob is renamed into one; also when they were
        # found rather than made: their maker may have crashed, or still be on its way, before
        # its own fsync
        fsync_directory(self.root)

    def sweep_staging(self) -> int:
        """Remove what uploads cut short by a crash left in staging; returns how many.

        Only safe while no upload is running: ``affix serve`` calls it before any worker starts.
        """
        swept = 0
        for path in self.staging.iterdir():
            path.unlink(missing_ok=True)
            swept += 1
        return swept

    def stage(self) -> StagedLocalBlob:
        return StagedLocalBlob(self)

    def path_of(self, key: str) -> Path:
        return self.root / key

    def open(self, key: str):
        """A binary file object of the blob, for reading."""
        return open(self.path_of(key), "rb")

    def delete(self, key: str):
        self.path_of(key).unlink(missing_ok=True)

    def download_url(self, key, content_type, content_disposition):
        """None: a local blob has no URL of its own; the app serves its bytes."""
        return None

    def stored_blobs(self):
        """(key, last modified as naive UTC) of every committed blob; staging is not listed."""
        for path in self.root.rglob("*"):
            relative = path.relative_to(self.root)
            if relative.parts[0] == STAGING_DIR:
                continue
            try:
                if not path.is_file():
                    continue
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                # deleted while we looked: nothing to collect
                continue
            modified = datetime.datetime.fromtimestamp(mtime, datetime.UTC)
            yield relative.as_posix(), modified.replace(tzinfo=None)


def open_blob_store(url: str, s3_options=None):
    """The blob store for ``url``: a plain path or ``file://`` URL names a local folder,
    ``s3://bucket/prefix`` a bucket reached with ``s3_options`` (a :class:`storage.s3.S3Options`).
    """
    if url.startswith("file://"):
        return LocalBlobStore(url[len("file://"):])
    if url.startswith("s3://"):
        # imported here: boto3 is needed only by those who store in S3
        from storage.s3 import S3BlobStore, S3Options
        return S3BlobStore(url, s3_options or S3Options())
    if "://" in url:
        raise ValueError(f"unsupported storage URL {url!r}: use a folder path, a file:// URL "
                         "or s3://bucket/prefix")
    return LocalBlobStore(url)
