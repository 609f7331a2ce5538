"""Resumable (tus) uploads in progress: the table of migration 6, and the lease that keeps two
writers of one upload apart.

An upload's state lives here, not in a worker, so that its next PATCH may reach any worker of
any node. Whoever writes an upload's bytes holds its lease: a conditional UPDATE that takes it
only while nobody holds it or the holder's lease has run out (by the clock of the one asking),
so of two PATCHes, whichever nodes they reach, exactly one writes; and a node that died mid-PATCH
holds it no longer than a lease lasts. Every change of the state is conditional on the lease.
"""
import dataclasses
import datetime
import functools
import operator
import secrets
from typing import TYPE_CHECKING, Any

import peewee

from affix.storage.models import BaseModel, Catalog, User, bind_model

if TYPE_CHECKING:
    from affix.storage.partials import PartialStore

# how long a PATCH holds its upload without renewing the lease: also the longest a node that
# died mid-PATCH keeps the upload from its client, and the time finishing an upload (reading
# it back once) may take
LEASE_DURATION = datetime.timedelta(minutes=5)
# a PATCH still reading renews its lease this often
LEASE_RENEWAL = datetime.timedelta(minutes=1)
# what ``concat`` says of a partial upload, and how that of a final one begins (tus's
# Upload-Concat values)
PARTIAL = "partial"
FINAL = "final;"


@dataclasses.dataclass(frozen=True)
class Progress:
    """How far an upload's bytes are in the store, as the partial stores need it:
    ``received`` bytes in all, ``parts_size`` of them in ``part_count`` finished parts of
    the multipart upload ``multipart_id`` (S3; None elsewhere), the rest staged."""

    token: str
    storage_key: str
    received: int = 0
    part_count: int = 0
    parts_size: int = 0
    multipart_id: str | None = None


class ResumableUpload(BaseModel):
    # the upload's name in its URL: unguessable, so that a URL leaks nothing of others
    token = peewee.CharField(max_length=64, unique=True)
    author = peewee.ForeignKeyField(User, on_delete="RESTRICT")
    upload_length = peewee.BigIntegerField()
    received = peewee.BigIntegerField()
    # the Upload-Metadata header as the client sent it, for HEAD to answer
    metadata = peewee.TextField()
    file_name = peewee.TextField()
    description = peewee.TextField()
    container_type = peewee.CharField(max_length=100, null=True)
    container_id = peewee.BigIntegerField(null=True)
    # where the finished file will be (S3: where its multipart upload writes)
    storage_key = peewee.CharField(max_length=255)
    multipart_id = peewee.CharField(max_length=1024, null=True)
    part_count = peewee.IntegerField()
    parts_size = peewee.BigIntegerField()
    # the attachment the finished upload became
    attachment_id = peewee.BigIntegerField(null=True)
    created_at = peewee.DateTimeField()
    expires_at = peewee.DateTimeField()
    lease_token = peewee.CharField(max_length=32, null=True)
    lease_until = peewee.DateTimeField(null=True)
    # Upload-Concat as HEAD answers it: None, PARTIAL, or "final;" and the partials' URLs
    concat = peewee.TextField(null=True)
    # the final upload a partial one was joined into: its bytes are gone, the row stays until
    # it expires, so that another final naming it is told why it is refused
    joined_into = peewee.CharField(max_length=64, null=True)
    # the client declares the length later; until then ``upload_length`` is the size limit
    length_deferred = peewee.BooleanField(default=False)

    class Meta:
        table_name = "resumable_uploads"

    @property
    def is_partial(self) -> bool:
        return self.concat == PARTIAL

    @property
    def is_final(self) -> bool:
        return self.concat is not None and self.concat.startswith(FINAL)

    @property
    def complete(self) -> bool:
        """Whether every byte of the upload has arrived."""
        return not self.length_deferred and self.received == self.upload_length

    @property
    def progress(self) -> Progress:
        return Progress(token=self.token, storage_key=self.storage_key,
                        received=self.received, part_count=self.part_count,
                        parts_size=self.parts_size, multipart_id=self.multipart_id)


class ResumableUploads:
    """The ``resumable_uploads`` table of one catalogue's database. Every method runs on the
    caller's connection."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.ResumableUpload = bind_model(ResumableUpload, catalog.database, catalog.bound)

    def add(self, **values: Any) -> ResumableUpload:
        with self.catalog.write_transaction():
            return self.ResumableUpload.create(
                received=0, part_count=0, parts_size=0, **values)

    def by_token(self, token: str) -> ResumableUpload | None:
        Upload = self.ResumableUpload
        upload: ResumableUpload | None = (
            Upload.select(Upload, self.catalog.User)
            .join(self.catalog.User).where(Upload.token == token).first())
        return upload

    def reread(self, upload: ResumableUpload) -> ResumableUpload | None:
        """``upload``'s row as it is now (None once it is gone): what a request read before
        it took the lease may have changed since, by another request that held it."""
        return self.by_token(upload.token)

    def multipart_ids_in_use(self, now: datetime.datetime) -> set[str]:
        """The multipart uploads (S3) of the uploads that may still go on at ``now``: not
        expired, or written by a PATCH whose lease is valid (it renews the expiry when it
        is done)."""
        ResumableUpload = self.ResumableUpload
        rows = (ResumableUpload.select(ResumableUpload.multipart_id)
                .where(ResumableUpload.multipart_id.is_null(False)
                       & ((ResumableUpload.expires_at > now)
                          | (ResumableUpload.lease_until > now))))
        return {row.multipart_id for row in rows if row.multipart_id is not None}

    def take_lease(self, upload: ResumableUpload, now: datetime.datetime,
                   until: datetime.datetime) -> str | None:
        """A lease on ``upload`` until ``until`` when nobody holds one at ``now``: its token,
        or None."""
        lease = secrets.token_hex(16)
        ResumableUpload = self.ResumableUpload
        with self.catalog.write_transaction():
            taken = (ResumableUpload.update(lease_token=lease, lease_until=until)
                     .where((ResumableUpload.id == upload.id)
                            & (ResumableUpload.lease_token.is_null()
                               | (ResumableUpload.lease_until <= now)))
                     .execute())
        return lease if taken else None

    def _held(self, upload: ResumableUpload, lease: str) -> peewee.Expression:
        ResumableUpload = self.ResumableUpload
        return (ResumableUpload.id == upload.id) & (ResumableUpload.lease_token == lease)

    def renew_lease(self, upload: ResumableUpload, lease: str,
                    until: datetime.datetime) -> bool:
        """Whether ``lease`` still held ``upload``; it does until ``until`` now."""
        with self.catalog.write_transaction():
            return bool(self.ResumableUpload.update(lease_until=until)
                        .where(self._held(upload, lease)).execute())

    def record_progress(self, upload: ResumableUpload, lease: str, progress: Progress,
                        expires_at: datetime.datetime, release: bool = False,
                        declared_length: int | None = None) -> bool:
        """Store how far ``upload`` is, under ``lease``, and with ``release`` give the lease
        up in the same write (a client that reads the new offset may send the next PATCH at
        once), and with ``declared_length`` the length it deferred until now; whether the
        lease still held it."""
        released = {"lease_token": None, "lease_until": None} if release else {}
        declared = ({} if declared_length is None
                    else {"upload_length": declared_length, "length_deferred": False})
        with self.catalog.write_transaction():
            updated = (self.ResumableUpload.update(
                received=progress.received, part_count=progress.part_count,
                parts_size=progress.parts_size, multipart_id=progress.multipart_id,
                expires_at=expires_at, **released, **declared)
                .where(self._held(upload, lease)).execute())
        if updated:
            upload.received, upload.part_count = progress.received, progress.part_count
            upload.parts_size, upload.multipart_id = progress.parts_size, progress.multipart_id
            upload.expires_at = expires_at
            if declared_length is not None:
                upload.upload_length, upload.length_deferred = declared_length, False
        return bool(updated)

    def release_lease(self, upload: ResumableUpload, lease: str) -> None:
        with self.catalog.write_transaction():
            (self.ResumableUpload.update(lease_token=None, lease_until=None)
             .where(self._held(upload, lease)).execute())

    def became(self, upload: ResumableUpload, lease: str, attachment_id: int) -> bool:
        """Record that the finished ``upload`` became the attachment ``attachment_id``; to be
        called in the transaction that makes it an attachment."""
        updated = (self.ResumableUpload.update(attachment_id=attachment_id)
                   .where(self._held(upload, lease)).execute())
        upload.attachment_id = attachment_id
        return bool(updated)

    def joined(self, leased: list[tuple[ResumableUpload, str]], final_token: str) -> bool:
        """Record that the partial uploads ``leased`` ((upload, its lease)) were joined into
        the final upload ``final_token``: all of them, or (when a lease no longer held its
        upload) none; whether it did."""
        ResumableUpload = self.ResumableUpload
        held = functools.reduce(operator.or_, (self._held(upload, lease)
                                               for upload, lease in leased))
        with self.catalog.write_transaction():
            updated = ResumableUpload.update(joined_into=final_token).where(held).execute()
            if updated != len(leased):
                # the final upload's token is new: what names it is what this call wrote
                (ResumableUpload.update(joined_into=None)
                 .where(ResumableUpload.joined_into == final_token).execute())
                return False
        for upload, _ in leased:
            upload.joined_into = final_token
        return True

    def remove(self, upload: ResumableUpload, lease: str) -> bool:
        """Delete ``upload``'s row while ``lease`` holds it; whether it did."""
        with self.catalog.write_transaction():
            return bool(self.ResumableUpload.delete().where(self._held(upload, lease)).execute())

    def expired(self, cutoff: datetime.datetime) -> list[ResumableUpload]:
        """The uploads expired at ``cutoff``."""
        ResumableUpload = self.ResumableUpload
        return list(ResumableUpload.select().where(ResumableUpload.expires_at <= cutoff)
                    .order_by(ResumableUpload.id))


def remove_unless_leased(uploads: ResumableUploads, partials: "PartialStore",
                         upload: ResumableUpload, now: datetime.datetime,
                         expired_only: bool = False) -> ResumableUpload | None:
    """Remove ``upload``'s row and bytes (in ``partials``) unless a PATCH holds its lease at
    ``now`` (or, ``expired_only``, unless it has not expired at ``now``); the row as it was
    when removed, or None. Never an attachment it became.

    The row is read again under the lease: between the caller's read and the lease, a PATCH
    may have moved the upload on (its bytes in another multipart upload, its expiry later, an
    attachment it became), and what is removed is what is there now."""
    lease = uploads.take_lease(upload, now, now + LEASE_DURATION)
    if lease is None:
        return None
    current = uploads.reread(upload)
    if current is None:
        return None
    if expired_only and current.expires_at > now:
        uploads.release_lease(current, lease)
        return None
    if not uploads.remove(current, lease):
        return None
    # the row first: a crash between the two leaves bytes nobody can reach, never an upload
    # whose bytes are gone
    partials.discard(current.progress)
    return current
