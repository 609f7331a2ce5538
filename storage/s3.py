"""Blobs as objects in an S3-compatible bucket, under a prefix (``s3://bucket/prefix``).

An upload streams into a multipart upload, one part of at least :data:`PART_SIZE` bytes at a
time, so a worker holds at most one part per upload; a file smaller than one part is one
PutObject at commit. Nothing is visible in the bucket before ``commit``: a multipart upload
becomes an object only when it is completed, and only ``commit`` completes it. ``discard``
aborts it; one that nobody commits or discards (a worker killed mid-upload, a bug) stays
pending, invisible, until :meth:`S3BlobStore.sweep_staging` aborts it. No finalizer ever
completes it (streaming-form-data's S3Target does, with whatever arrived).

boto3 is an optional dependency (the ``s3`` extra), imported when a store opens its client:
this module imports without it, so that settings can be read anywhere, and the store says what
is missing when it is opened. Nor do those who store in a local folder pay for importing it
in every ``affix`` command and server start (README, *Performance*).
"""
import contextlib
import dataclasses
import datetime
import logging
import secrets
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from affix.storage.blob_store import (
    PROBE_BYTES, StorageError, StoreUnavailable, is_storage_key, new_storage_key,
)
from affix.storage.models import utc_now

if TYPE_CHECKING:
    from affix.storage.s3_direct_parts import S3DirectParts
    from affix.storage.s3_partials import S3Partials
    from affix.storage.s3_staging import S3UploadStaging

log = logging.getLogger(__name__)


def store_errors() -> tuple[type[Exception], ...]:
    """Every error the store's client raises. An ``except store_errors()`` clause calls it
    only when an exception reaches it; botocore is imported then if it was not yet, and
    without it nothing is a store's error."""
    try:
        import botocore.exceptions
    except ImportError:  # pragma: no cover - only without the s3 extra
        return ()
    return botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError


def is_unavailable(error: Exception) -> bool:
    """Whether a :func:`store_errors` error says that the store is out of reach or failing on
    its side (a 5xx), after boto3's retries: worth trying again later."""
    import botocore.exceptions
    if isinstance(error, (botocore.exceptions.ConnectionError,
                          botocore.exceptions.HTTPClientError)):
        return True
    response = getattr(error, "response", None) or {}
    status: int = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return status >= 500


@contextlib.contextmanager
def as_storage_errors(action: str) -> Iterator[None]:
    """The client's errors as the store's own: :class:`StoreUnavailable` when worth retrying,
    :class:`StorageError` for any other answer (access denied, no such bucket)."""
    try:
        yield
    except store_errors() as error:
        kind = StoreUnavailable if is_unavailable(error) else StorageError
        raise kind(f"could not {action}: {error}") from error

# affix is installed from a clone, not from PyPI: its extras are named by the clone's path
MISSING_BOTO3 = ("S3 storage needs boto3: pip install boto3 (or, in affix's folder, "
                 "pip install '.[s3]')")
# S3's minimum for every part but the last is 5 MiB; 8 MiB is what the AWS CLI uses
PART_SIZE = 8 * 1024 * 1024
# several nodes share a bucket: only a multipart upload this old is surely nobody's anymore
DEFAULT_STAGING_MAX_AGE = datetime.timedelta(days=1)
DEFAULT_URL_EXPIRY = 3600
# SigV4 pre-signed URLs live at most seven days
MAX_URL_EXPIRY = 7 * 24 * 3600
ADDRESSING_STYLES = ("path", "virtual")
# keys per listing request: S3's own maximum
LIST_PAGE_SIZE = 1000
# where clients upload to the bucket themselves (:mod:`~affix.storage.s3_staging`): what is
# there has its own expiry, never the staging sweep's
DIRECT_STAGING_FOLDER = ".direct-uploads"
# where those in parts are (:mod:`~affix.storage.s3_direct_parts`): open multipart uploads
PARTS_FOLDER = f"{DIRECT_STAGING_FOLDER}/parts"


def is_parts_key(staged_key: str) -> bool:
    """Whether ``staged_key`` is that of a direct upload in parts."""
    return staged_key.startswith(PARTS_FOLDER + "/")


@dataclasses.dataclass(frozen=True)
class S3Options:
    """How to reach the bucket. ``None`` leaves a value to boto3's own configuration chain
    (environment, ``~/.aws``, instance roles)."""

    # the settings reference is written from each field's metadata: the variable it is read
    # from, what that holds, what it means
    endpoint_url: str | None = dataclasses.field(default=None, metadata={
        "variable": "AFFIX_S3_ENDPOINT_URL", "form": "URL", "unset": "AWS",
        "meaning": "`http(s)://host[:port]` of an S3-compatible server (MinIO, Ceph, ...)"})
    region: str | None = dataclasses.field(default=None, metadata={
        "variable": "AFFIX_S3_REGION", "form": "text", "unset": "boto3's",
        "meaning": "the bucket's region, e.g. `eu-central-1`"})
    access_key_id: str | None = dataclasses.field(default=None, metadata={
        "variable": "AFFIX_S3_ACCESS_KEY_ID", "form": "text", "unset": "boto3's credential chain",
        "meaning": "the access key's id; set with `AFFIX_S3_SECRET_ACCESS_KEY`, or neither"})
    # never in a repr: settings get logged and printed
    secret_access_key: str | None = dataclasses.field(default=None, repr=False, metadata={
        "variable": "AFFIX_S3_SECRET_ACCESS_KEY", "form": "text",
        "unset": "boto3's credential chain",
        "meaning": "the access key's secret; set with `AFFIX_S3_ACCESS_KEY_ID`, or neither"})
    addressing_style: str | None = dataclasses.field(default=None, metadata={
        "variable": "AFFIX_S3_ADDRESSING_STYLE", "form": " or ".join(ADDRESSING_STYLES),
        "unset": "boto3's choice",
        "meaning": "`path` (`host/bucket/key`, what most S3-compatible servers want: MinIO, "
                   "Ceph, moto) or `virtual` (`bucket.host/key`)"})
    url_expiry: int = dataclasses.field(default=DEFAULT_URL_EXPIRY, metadata={
        "variable": "AFFIX_S3_URL_EXPIRY", "form": "whole number",
        "meaning": f"seconds a pre-signed download URL stays valid (at most {MAX_URL_EXPIRY})"})


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket/prefix``; the prefix has no slash at either end."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"{url!r} is not an S3 URL of the form s3://bucket/prefix")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r}: an S3 URL takes no query or fragment")
    return parts.netloc, parts.path.strip("/")


def naive_utc(moment: datetime.datetime) -> datetime.datetime:
    return moment.astimezone(datetime.UTC).replace(tzinfo=None)


def s3_client(options: S3Options) -> Any:
    """A client of its own for the bucket (boto3 has no type information here)."""
    try:
        import boto3.session
        import botocore.config
    except ModuleNotFoundError as missing:
        if (missing.name or "").partition(".")[0] not in ("boto3", "botocore"):
            raise  # a dependency of theirs: a broken installation, said as it is
        raise ValueError(MISSING_BOTO3) from None
    config = botocore.config.Config(
        s3={"addressing_style": options.addressing_style or "auto"},
        # pre-signed URLs too: boto3 would sign some with the deprecated SigV2
        signature_version="s3v4",
        # S3-compatible servers that predate flexible checksums refuse their headers; TCP and
        # TLS already protect the bytes in transit, and the md5 is computed once, upstream
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # a few quick retries, then the request fails (503) instead of holding its thread
        retries={"mode": "standard", "max_attempts": 3},
    )
    # a session of its own: boto3's default session is global state, and not thread-safe
    session = boto3.session.Session()
    return session.client(
        "s3", endpoint_url=options.endpoint_url, region_name=options.region,
        aws_access_key_id=options.access_key_id,
        aws_secret_access_key=options.secret_access_key, config=config,
    )


class StagedS3Blob:
    """A blob being written: bytes gather in one part's buffer; each full part goes into the
    multipart upload, which is started by the first full part."""

    def __init__(self, store: "S3BlobStore") -> None:
        self._store = store
        self.storage_key = new_storage_key()
        self.object_key = store.object_key(self.storage_key)
        self.upload_id: str | None = None
        self._parts: list[dict[str, object]] = []
        self._buffer = bytearray()
        self._commit_attempted = False

    def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= PART_SIZE:
            with as_storage_errors("upload a part"):
                self._upload_part()

    def _upload_part(self) -> None:
        client, bucket = self._store.client, self._store.bucket
        if self.upload_id is None:
            self.upload_id = client.create_multipart_upload(
                Bucket=bucket, Key=self.object_key)["UploadId"]
        number = len(self._parts) + 1
        answer = client.upload_part(
            Bucket=bucket, Key=self.object_key, UploadId=self.upload_id, PartNumber=number,
            # the buffer itself, not a copy of it: one part's memory per upload
            Body=self._buffer,
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self._buffer.clear()

    def commit(self) -> str:
        """Make the object visible, whole; returns its storage key."""
        self._commit_attempted = True
        client, bucket = self._store.client, self._store.bucket
        with as_storage_errors("store the object"):
            if self.upload_id is None:
                client.put_object(Bucket=bucket, Key=self.object_key, Body=self._buffer)
            else:
                if self._buffer:
                    self._upload_part()
                client.complete_multipart_upload(
                    Bucket=bucket, Key=self.object_key, UploadId=self.upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        self._buffer.clear()
        return self.storage_key

    def discard(self) -> None:
        """Abort the multipart upload; after a failed commit, also remove an object the
        server may have completed although its answer never arrived.

        Best effort: it runs while another error is on its way to the client, which must not
        be replaced by this one. What it cannot abort, the staging sweep will.
        """
        self._buffer.clear()
        client, bucket = self._store.client, self._store.bucket
        try:
            if self.upload_id is not None:
                try:
                    client.abort_multipart_upload(
                        Bucket=bucket, Key=self.object_key, UploadId=self.upload_id)
                except client.exceptions.NoSuchUpload:
                    pass
            if self._commit_attempted:
                client.delete_object(Bucket=bucket, Key=self.object_key)
        except store_errors():
            log.exception("could not abort the upload of s3://%s/%s (upload id %s); the "
                          "staging sweep will", bucket, self.object_key, self.upload_id)


class S3BlobStore:
    """Blobs as objects named ``<prefix>/<storage key>`` in one bucket (a
    :class:`~affix.storage.blob_store.BlobStore` that serves downloads itself, by URL)."""

    def __init__(self, url: str, options: S3Options = S3Options(),
                 clock: Callable[[], datetime.datetime] = utc_now, *, client: Any = None,
                 list_page_size: int = LIST_PAGE_SIZE) -> None:
        """A store reached through ``client``, by default one of its own for ``options``;
        each listing request asks for ``list_page_size`` keys."""
        self.bucket, self.prefix = parse_s3_url(url)
        self.options = options
        self.client = s3_client(options) if client is None else client
        self.clock = clock
        self.list_page_size = list_page_size

    def object_key(self, storage_key: str) -> str:
        return f"{self.prefix}/{storage_key}" if self.prefix else storage_key

    @property
    def _listing_prefix(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def check_reachable(self) -> None:
        with as_storage_errors("reach the bucket"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except self.client.exceptions.ClientError as error:
                # HeadBucket answers with a status and no body: 404 is the bucket's absence
                code = error.response.get("Error", {}).get("Code")
                if code == "403":
                    raise StorageError(
                        f"the bucket {self.bucket!r} refuses these keys (403 Forbidden): check "
                        "AFFIX_S3_ACCESS_KEY_ID and AFFIX_S3_SECRET_ACCESS_KEY, and what they "
                        "may do in the bucket") from error
                if code not in ("404", "NoSuchBucket"):
                    raise
                raise StorageError(
                    f"the bucket {self.bucket!r} does not exist: create it (affix storage init "
                    f"does, where the credentials allow), or name another in "
                    f"AFFIX_STORAGE_URL (storage_url in affix.toml)") from error

    def create_bucket(self) -> bool:
        """Make the bucket unless it is there (``affix storage init``); whether this call made
        it. S3's refusal (credentials it does not know, no right to make buckets, a name that
        another account has) is a :class:`StorageError` that carries S3's own code."""
        with as_storage_errors(f"create the bucket {self.bucket!r}"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
                return False
            except self.client.exceptions.ClientError:
                # HeadBucket's answer has no body to say why; CreateBucket's refusal will
                pass
            # us-east-1 is S3's default location, which it refuses to be named
            location = ({} if self.options.region in (None, "us-east-1") else
                        {"CreateBucketConfiguration": {"LocationConstraint": self.options.region}})
            try:
                self.client.create_bucket(Bucket=self.bucket, **location)
            except self.client.exceptions.BucketAlreadyOwnedByYou:
                # made by another of our commands meanwhile
                return False
        return True

    def probe(self) -> None:
        # a name no storage key has: neither gc nor a listing of blobs ever takes it for one
        key = self.object_key(f".probe-{secrets.token_hex(8)}")
        with as_storage_errors(f"write a probe object to s3://{self.bucket}/{key}"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=PROBE_BYTES)
        with as_storage_errors(f"remove the probe object s3://{self.bucket}/{key}"):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def stage(self) -> StagedS3Blob:
        return StagedS3Blob(self)

    def delete(self, key: str) -> None:
        """Delete the object ``key``; a staged key of a direct upload in parts
        (:mod:`~affix.storage.s3_direct_parts`) with its multipart upload, so that deleting
        the upload's row never leaves one open."""
        object_key = self.object_key(key)
        with as_storage_errors("delete the object"):
            # only an upload in parts has a multipart upload to end: a form's has none
            if is_parts_key(key):
                for upload_id in self.open_upload_ids(object_key):
                    self._abort(object_key, upload_id)
            self.client.delete_object(Bucket=self.bucket, Key=object_key)

    def open_upload_ids(self, object_key: str) -> list[str]:
        """The ids of the multipart uploads open at exactly ``object_key``."""
        with as_storage_errors("list the open multipart uploads"):
            return [upload["UploadId"] for upload in self._open_uploads(object_key)
                    if upload["Key"] == object_key]

    def _open_uploads(self, prefix: str) -> Iterator[dict[str, Any]]:
        """The multipart uploads open under ``prefix`` (an object key's beginning), as
        ListMultipartUploads describes them."""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix,
            PaginationConfig={"PageSize": self.list_page_size})
        for page in pages:
            yield from page.get("Uploads", ())

    def _abort(self, object_key: str, upload_id: str) -> bool:
        """Abort one multipart upload; False when it was gone already (completed or
        aborted by another node meanwhile)."""
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=object_key, UploadId=upload_id)
        except self.client.exceptions.NoSuchUpload:
            return False
        return True

    def open(self, key: str) -> BinaryIO:
        """The object's bytes as a stream to read (``affix scan``); ``FileNotFoundError``
        when it is gone."""
        with as_storage_errors("read the object"):
            try:
                body: BinaryIO = self.client.get_object(
                    Bucket=self.bucket, Key=self.object_key(key))["Body"]
                return body
            except self.client.exceptions.NoSuchKey:
                raise FileNotFoundError(key) from None

    def download_url(self, key: str, content_type: str, content_disposition: str) -> str:
        """A pre-signed GET of the object that answers with these headers."""
        with as_storage_errors("sign a download URL"):
            url: str = self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket, "Key": self.object_key(key),
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": content_disposition,
                },
                ExpiresIn=self.options.url_expiry,
            )
        return url

    def partial_store(self) -> "S3Partials":
        # imported here: the partial store builds on this module
        from affix.storage.s3_partials import S3Partials
        return S3Partials(self)

    def upload_staging(self, form_lifetime: int) -> "S3UploadStaging":
        """Pre-signed POST forms into a staging folder of the store's prefix."""
        from affix.storage.s3_staging import S3UploadStaging
        return S3UploadStaging(self, form_lifetime)

    def part_staging(self, url_lifetime: int) -> "S3DirectParts":
        """Multipart uploads into the same staging folder, by part URLs that live
        ``url_lifetime`` seconds."""
        from affix.storage.s3_direct_parts import S3DirectParts
        return S3DirectParts(self, url_lifetime)

    def stored_blobs(self) -> Iterator[tuple[str, datetime.datetime]]:
        """(key, last modified as naive UTC) of every object under the prefix that is named as
        the store names blobs; nothing else in the bucket is ever listed, so nothing else is
        ever collected. Pending multipart uploads are no objects, so they are not listed."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._listing_prefix,
            PaginationConfig={"PageSize": self.list_page_size})
        start = len(self._listing_prefix)
        with as_storage_errors("list the objects"):
            for page in pages:
                for item in page.get("Contents", ()):
                    key = item["Key"][start:]
                    if is_storage_key(key):
                        yield key, naive_utc(item["LastModified"])

    def sweep_staging(self, cutoff: datetime.datetime | None = None,
                      keep: frozenset[str] = frozenset()) -> int:
        """Abort multipart uploads under the prefix initiated before ``cutoff`` (naive UTC;
        default :data:`DEFAULT_STAGING_MAX_AGE` ago), but none whose upload id is in
        ``keep``; returns how many.

        Other nodes may be uploading into the same bucket right now, so unlike a local
        staging folder, only uploads older than any single request lasts are taken. A
        resumable upload's multipart upload lasts as long as the upload goes on, however
        old: its id is to be in ``keep``. A direct upload's in the staging folder lasts until
        the upload expires: ``affix cleanup`` aborts it then
        (:meth:`~affix.storage.s3_staging.S3UploadStaging.sweep`).
        """
        if cutoff is None:
            cutoff = self.clock() - DEFAULT_STAGING_MAX_AGE
        direct_staging = self.object_key(DIRECT_STAGING_FOLDER) + "/"
        with as_storage_errors("sweep the pending uploads"):
            return sum(self._abort(upload["Key"], upload["UploadId"])
                       for upload in self._open_uploads(self._listing_prefix)
                       if naive_utc(upload["Initiated"]) < cutoff
                       and upload["UploadId"] not in keep
                       and not upload["Key"].startswith(direct_staging))

    def abort_stale_uploads(self, prefix: str, cutoff: datetime.datetime) -> int:
        """Abort the multipart uploads under ``prefix`` (an object key's beginning) initiated
        before ``cutoff`` (naive UTC); how many."""
        with as_storage_errors("abort the stale multipart uploads"):
            return sum(self._abort(upload["Key"], upload["UploadId"])
                       for upload in self._open_uploads(prefix)
                       if naive_utc(upload["Initiated"]) < cutoff)
