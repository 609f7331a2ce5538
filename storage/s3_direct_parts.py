"""Direct uploads in parts: clients send a file's parts straight to the bucket, several at once,
into an S3 multipart upload at a staged key of the staging folder
(:mod:`~affix.storage.s3_staging`), with part URLs that affix signs.

A part URL is an UploadPart of one upload id, one part number and one exact length, signed to
expire soon: it writes nothing anywhere else, and nothing once the upload is completed or
aborted. The multipart upload becomes an object at its staged key only when affix completes it
with the parts the bucket reports; from there on, completion goes as a form's upload does
(copied to a storage key, checked there). An upload id is never stored: the staged key is new
and random, so the bucket's one multipart upload at that key is the upload's
(:meth:`S3DirectParts.upload_id`).

Every open multipart upload is aborted in the end: on a refusal and on a DELETE (the store
deletes a staged key of parts with its upload, :meth:`~affix.storage.s3.S3BlobStore.delete`),
and by ``affix cleanup`` once the upload has expired (:meth:`S3UploadStaging.sweep
<affix.storage.s3_staging.S3UploadStaging.sweep>`).
"""
import contextlib
import dataclasses
import secrets
from collections.abc import Iterable, Iterator

from affix.storage.s3 import PARTS_FOLDER, S3BlobStore, as_storage_errors, is_parts_key

# S3's rules: every part but the last at least 5 MiB, at most 10,000 parts, 5 GiB a part
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10_000
# what the AWS CLI sends: a part lost to an interruption costs at most this much again
PREFERRED_PART_SIZE = 8 * 1024 * 1024
MiB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class PartPlan:
    """How a file of ``size`` bytes is cut: parts of ``part_size``, the last one shorter."""

    size: int
    part_size: int

    @classmethod
    def for_size(cls, size: int) -> "PartPlan":
        """The preferred part size, or the smallest whole MiB that keeps a file within S3's
        10,000 parts."""
        needed = -(-size // MAX_PARTS)
        return cls(size, max(PREFERRED_PART_SIZE, -(-needed // MiB) * MiB))

    @property
    def count(self) -> int:
        # an empty file is one empty part: S3 completes no upload without a part
        return max(1, -(-self.size // self.part_size))

    def length(self, number: int) -> int:
        """The bytes of part ``number`` (1-based)."""
        return min(self.part_size, self.size - (number - 1) * self.part_size)


@dataclasses.dataclass(frozen=True)
class HeldPart:
    """A part the bucket holds."""

    number: int
    size: int
    etag: str


class S3DirectParts:
    """Multipart uploads at staged keys of one store, with part URLs that live
    ``url_lifetime`` seconds."""

    def __init__(self, store: S3BlobStore, url_lifetime: int) -> None:
        self._store = store
        self.url_lifetime = url_lifetime

    def new_key(self) -> str:
        return f"{PARTS_FOLDER}/{secrets.token_hex(16)}"

    def owns(self, staged_key: str) -> bool:
        """Whether ``staged_key`` is one of an upload in parts (not a form's)."""
        return is_parts_key(staged_key)

    def start(self, staged_key: str) -> None:
        """Open the multipart upload at ``staged_key``."""
        store = self._store
        with as_storage_errors("start a multipart upload"):
            store.client.create_multipart_upload(
                Bucket=store.bucket, Key=store.object_key(staged_key))

    @contextlib.contextmanager
    def _closed_as_not_found(self, staged_key: str) -> Iterator[None]:
        """An upload that another request joined or aborted since its id was read is
        ``FileNotFoundError``, as one that was not open in the first place."""
        try:
            yield
        except self._store.client.exceptions.NoSuchUpload:
            raise FileNotFoundError(staged_key) from None

    def upload_id(self, staged_key: str) -> str:
        """The open multipart upload at ``staged_key``; ``FileNotFoundError`` when there is
        none (completed, aborted)."""
        ids = self._store.open_upload_ids(self._store.object_key(staged_key))
        if not ids:
            raise FileNotFoundError(staged_key)
        return ids[0]

    def part_urls(self, staged_key: str, plan: PartPlan, numbers: Iterable[int],
                  lifetime: int) -> dict[int, str]:
        """{number: URL} that uploads exactly part ``number`` of ``plan``, each living
        ``lifetime`` seconds."""
        store = self._store
        upload_id = self.upload_id(staged_key)
        with as_storage_errors("sign part URLs"):
            return {number: store.client.generate_presigned_url(
                "upload_part", Params={
                    "Bucket": store.bucket, "Key": store.object_key(staged_key),
                    "UploadId": upload_id, "PartNumber": number,
                    # signed: the bucket takes no other length at this URL
                    "ContentLength": plan.length(number)},
                ExpiresIn=lifetime) for number in numbers}

    def held_parts(self, staged_key: str) -> list[HeldPart]:
        """The parts the bucket holds of the upload at ``staged_key``, by number."""
        store = self._store
        upload_id = self.upload_id(staged_key)
        pages = store.client.get_paginator("list_parts").paginate(
            Bucket=store.bucket, Key=store.object_key(staged_key), UploadId=upload_id)
        with as_storage_errors("list the uploaded parts"), self._closed_as_not_found(staged_key):
            return [HeldPart(part["PartNumber"], part["Size"], part["ETag"])
                    for page in pages for part in page.get("Parts", ())]

    def join(self, staged_key: str, parts: list[HeldPart]) -> None:
        """Complete the upload at ``staged_key`` with ``parts``: an object there from now
        on, and no upload id that a part URL could still write to."""
        store = self._store
        upload_id = self.upload_id(staged_key)
        with as_storage_errors("join the uploaded parts"), self._closed_as_not_found(staged_key):
            store.client.complete_multipart_upload(
                Bucket=store.bucket, Key=store.object_key(staged_key), UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": part.number, "ETag": part.etag}
                                           for part in parts]})
