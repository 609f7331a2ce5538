"""The bytes of resumable uploads in progress in an S3 bucket (a
:class:`~affix.storage.partials.PartialStore`).

Each upload writes a multipart upload at its own storage key, one part of at least
:data:`~affix.storage.s3.PART_SIZE` bytes at a time (S3 takes no smaller part but the last);
what a PATCH leaves over, less than a part, is staged as an object of its own,
``<prefix>/.tus/<token>/<parts size>-<received>``, until the next PATCH reads it back and goes
on. The rest is named by the row's state it belongs to, as it is written before the row records
that state: a PATCH whose progress was never recorded (the database failed, the process died)
leaves a rest that no row names, never one in place of the row's, which the next PATCH removes
before it stages its own; the rest of the state a PATCH began from goes once the row has moved
on (a state never comes back: the bytes received only grow), and every rest with the upload. A
worker holds at most one part in memory per PATCH. Nothing is visible at the storage key before
``commit`` completes the multipart upload.

Joining partial uploads (concatenation) completes each, then copies it into the final
upload's multipart upload in the bucket (UploadPartCopy) where it can be a part of its own;
only a source smaller than a part, and those after it, pass through the worker, a part at a
time.

A part is numbered by how many parts the upload's row says there are: a part written past that
(a PATCH cut short, a checksum that did not match) is written over by the next PATCH, and never
completed, since completion names the parts the row counts.
"""
import dataclasses
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from affix.storage.partials import COPY_CHUNK_SIZE, PARTIALS_DIR
from affix.storage.resumable import Progress
from affix.storage.s3 import (
    PART_SIZE, S3BlobStore, as_storage_errors, store_errors,
)

log = logging.getLogger(__name__)

# the largest part S3 copies in one UploadPartCopy
MAX_COPIED_PART = 5 * 1024 ** 3


@dataclasses.dataclass
class _S3Appended:
    partials: "S3Partials"
    progress: Progress
    remainder: bytearray
    # the multipart upload this PATCH started, which nothing else knows of yet
    started: str | None
    # the state the PATCH began from: the row's until it records ``progress``
    before: Progress

    def keep(self) -> None:
        with as_storage_errors("stage the rest of the upload"):
            # under the lease: the rests no row names, of PATCHes whose progress was lost
            self.partials.remove_rests(self.progress, kept=self.before)
            self.partials.stage_remainder(self.progress, self.remainder)

    def recorded(self) -> None:
        # best effort, and maybe after the lease was given up: only the rest of the state
        # before goes, which no later PATCH reads; what is left the upload's end removes
        before = self.partials.remainder_key(self.before)
        if self.before.received == self.before.parts_size or (
                before == self.partials.remainder_key(self.progress)):
            return
        store = self.partials.store
        try:
            store.client.delete_object(Bucket=store.bucket, Key=before)
        except store_errors():
            log.exception("could not remove an earlier rest of the upload %s",
                          self.progress.token)

    def drop(self) -> None:
        self.remainder.clear()
        if self.started is not None:
            self.partials.abort(self.progress)


class S3Partials:
    """The partial uploads of one :class:`~affix.storage.s3.S3BlobStore`."""

    def __init__(self, store: S3BlobStore) -> None:
        self.store = store

    def _rests_prefix(self, progress: Progress) -> str:
        return self.store.object_key(f"{PARTIALS_DIR}/{progress.token}/")

    def remainder_key(self, progress: Progress) -> str:
        return f"{self._rests_prefix(progress)}{progress.parts_size}-{progress.received}"

    def _staged_remainder(self, progress: Progress) -> bytearray:
        if progress.received == progress.parts_size:
            return bytearray()
        store = self.store
        answer = store.client.get_object(Bucket=store.bucket, Key=self.remainder_key(progress))
        return bytearray(answer["Body"].read())

    def _next_part(self, progress: Progress) -> dict[str, Any]:
        """Where the next part of ``progress`` goes: its object, its multipart upload (begun
        here for the first part) and its number, as boto3 takes them."""
        store = self.store
        object_key = store.object_key(progress.storage_key)
        multipart_id: str | None = progress.multipart_id
        if multipart_id is None:
            multipart_id = store.client.create_multipart_upload(
                Bucket=store.bucket, Key=object_key)["UploadId"]
        return {"Bucket": store.bucket, "Key": object_key, "UploadId": multipart_id,
                "PartNumber": progress.part_count + 1}

    @staticmethod
    def _with_part(progress: Progress, part: dict[str, Any], size: int) -> Progress:
        return dataclasses.replace(
            progress, multipart_id=part["UploadId"], part_count=part["PartNumber"],
            parts_size=progress.parts_size + size)

    def _upload_part(self, progress: Progress, buffer: bytearray) -> Progress:
        part = self._next_part(progress)
        self.store.client.upload_part(**part, Body=buffer)
        return self._with_part(progress, part, len(buffer))

    def append(self, progress: Progress, chunks: Iterable[bytes]) -> _S3Appended:
        before = progress
        try:
            with as_storage_errors("store a part of the upload"):
                buffer = self._staged_remainder(progress)
                received = progress.received
                for chunk in chunks:
                    buffer += chunk
                    received += len(chunk)
                    if len(buffer) >= PART_SIZE:
                        progress = self._upload_part(progress, buffer)
                        buffer.clear()
        except BaseException:
            if before.multipart_id is None and progress.multipart_id is not None:
                self.abort(progress)
            raise
        started = progress.multipart_id if before.multipart_id is None else None
        return _S3Appended(self, dataclasses.replace(progress, received=received), buffer,
                           started, before)

    def rewind(self, progress: Progress) -> None:
        # nothing to go back over: the staged rest is written by keep alone, and parts past
        # the row's count are written over by the next PATCH, never completed
        pass

    def stage_remainder(self, progress: Progress, remainder: bytearray) -> None:
        store = self.store
        if remainder:
            store.client.put_object(Bucket=store.bucket, Key=self.remainder_key(progress),
                                    Body=remainder)

    def remove_rests(self, progress: Progress, kept: Progress | None = None) -> None:
        """Delete every rest staged for the upload but the one of ``kept`` (a
        :class:`Progress`; None: all of them), a page of the listing at a time."""
        store = self.store
        kept_key = None if kept is None else self.remainder_key(kept)
        pages = store.client.get_paginator("list_objects_v2").paginate(
            Bucket=store.bucket, Prefix=self._rests_prefix(progress),
            PaginationConfig={"PageSize": store.list_page_size})
        for page in pages:
            for item in page.get("Contents", ()):
                if item["Key"] != kept_key:
                    store.client.delete_object(Bucket=store.bucket, Key=item["Key"])

    def commit(self, progress: Progress) -> str:
        store = self.store
        object_key = store.object_key(progress.storage_key)
        with as_storage_errors("complete the upload"):
            if self._committed(object_key):
                # by an earlier try, whose caller failed after it: nothing else writes that
                # key; what that try left of the rests goes now
                self.remove_rests(progress)
                return progress.storage_key
            if progress.multipart_id is None:
                # smaller than a part: the staged rest is the whole file
                if progress.received:
                    store.client.copy_object(
                        Bucket=store.bucket, Key=object_key,
                        CopySource={"Bucket": store.bucket,
                                    "Key": self.remainder_key(progress)})
                else:
                    store.client.put_object(Bucket=store.bucket, Key=object_key, Body=b"")
            else:
                remainder = self._staged_remainder(progress)
                if remainder:
                    progress = self._upload_part(progress, remainder)
                store.client.complete_multipart_upload(
                    Bucket=store.bucket, Key=object_key, UploadId=progress.multipart_id,
                    MultipartUpload={"Parts": self._parts(progress, object_key)})
            self.remove_rests(progress)
        return progress.storage_key

    def _committed(self, object_key: str) -> bool:
        store = self.store
        try:
            store.client.head_object(Bucket=store.bucket, Key=object_key)
        except store.client.exceptions.ClientError as error:
            if error.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
                raise
            return False
        return True

    def _parts(self, progress: Progress, object_key: str) -> list[dict[str, object]]:
        """The parts the upload's row counts, with their ETags."""
        store = self.store
        pages = store.client.get_paginator("list_parts").paginate(
            Bucket=store.bucket, Key=object_key, UploadId=progress.multipart_id,
            PaginationConfig={"PageSize": store.list_page_size})
        return [{"PartNumber": part["PartNumber"], "ETag": part["ETag"]}
                for page in pages for part in page.get("Parts", ())
                if part["PartNumber"] <= progress.part_count]

    def abort(self, progress: Progress) -> None:
        """Abort the upload's multipart upload, if it has one; best effort, as an error on
        its way must not be replaced (what is left, the staging sweep aborts)."""
        store = self.store
        try:
            store.client.abort_multipart_upload(
                Bucket=store.bucket, Key=store.object_key(progress.storage_key),
                UploadId=progress.multipart_id)
        except store.client.exceptions.NoSuchUpload:
            # completed (a finished upload) or aborted already
            pass
        except store_errors():
            log.exception("could not abort the multipart upload %s", progress.multipart_id)

    def discard(self, progress: Progress) -> None:
        if progress.multipart_id is not None:
            self.abort(progress)
        with as_storage_errors("remove the upload"):
            self.remove_rests(progress)

    def join(self, target: Progress, sources: Sequence[Progress]) -> Progress:
        store = self.store
        progress = target
        buffer = bytearray()
        try:
            for source in sources:
                # the source as one object to copy or read from (done once: committing a
                # committed upload does nothing)
                self.commit(source)
            with as_storage_errors("join the partial uploads"):
                for source in sources:
                    if not buffer and PART_SIZE <= source.received <= MAX_COPIED_PART:
                        progress = self._copy_part(progress, source)
                        continue
                    with store.open(source.storage_key) as stream:
                        while chunk := stream.read(
                                min(COPY_CHUNK_SIZE, PART_SIZE - len(buffer))):
                            buffer += chunk
                            if len(buffer) == PART_SIZE:
                                progress = self._upload_part(progress, buffer)
                                buffer.clear()
                received = sum(source.received for source in sources)
                joined = dataclasses.replace(progress, received=received)
                self.stage_remainder(joined, buffer)
        except BaseException:
            if progress.multipart_id is not None:
                self.abort(progress)
            raise
        return joined

    def _copy_part(self, progress: Progress, source: Progress) -> Progress:
        """``progress`` with the object of the committed ``source`` copied in the bucket as
        its next part."""
        store = self.store
        part = self._next_part(progress)
        store.client.upload_part_copy(
            **part, CopySource={"Bucket": store.bucket,
                                "Key": store.object_key(source.storage_key)})
        return self._with_part(progress, part, source.received)

    def remove_joined(self, progress: Progress) -> None:
        # joining committed it: its object goes, and what is left of its rests
        self.store.delete(progress.storage_key)
        self.discard(progress)
