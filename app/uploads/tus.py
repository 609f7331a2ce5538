"""Resumable uploads with the tus protocol 1.0 (core, creation, creation-with-upload,
termination, expiration, checksum, concatenation, creation-defer-length), ending in an ordinary
attachment.

An upload's state is a row of ``resumable_uploads`` (:mod:`affix.storage.resumable`), its
bytes a partial blob of the store (:mod:`affix.storage.partials`): a PATCH may reach any worker
of any node. A PATCH holds the upload's lease while it writes, so two never interleave; the
loser answers 423, as tusd does, and a PATCH at the wrong offset 409. The bytes of a PATCH are
durable before its 204 names the new offset.

When the last byte has arrived, the upload is finished like every upload whose bytes are in the
store (:mod:`affix.app.uploads.finishing`): the permission to upload into its container asked
again, the bytes read once for the digest, the sniffed type and the inspectors, the policies
asked, then an attachment row with its webhook event. A refusal answers the PATCH with the HAL
error and leaves no attachment, no bytes, and no upload behind.
"""
import datetime
import hashlib
import hmac
import io
import secrets

from affix.app.errors import (
    ChecksumMismatch, ContentTooLarge, InvalidRequestBody, Locked, UpdateConflict,
    invalid_request_body, is_refusal, not_found, not_permitted, property_violation,
    property_violations,
)
from affix.app.uploads.content_types import OCTET_STREAM
from affix.app.uploads.finishing import Finished
from affix.app.uploads.multipart import (
    READ_CHUNK_SIZE, RequestBody, description_of, read_body_chunk,
)
from affix.storage.blob_store import new_storage_key
from affix.storage.models import PREPARED
from affix.storage.resumable import (
    FINAL, LEASE_DURATION, LEASE_RENEWAL, PARTIAL, remove_unless_leased,
)

TUS_VERSION = "1.0.0"
EXTENSIONS = ("creation", "creation-with-upload", "termination", "expiration", "checksum",
              "concatenation", "creation-defer-length")
CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1, "md5": hashlib.md5, "sha256": hashlib.sha256}
OFFSET_OCTET_STREAM = "application/offset+octet-stream"


def too_large(limit):
    return ContentTooLarge(f"File is too large (maximum size is {limit} Bytes).")


def offset_mismatch(received, offset):
    return UpdateConflict(f"The upload has {received} bytes: a PATCH continues at "
                          f"Upload-Offset {received}, not {offset}.")


def locked():
    return Locked(
        "Another request is writing to this upload. Try again once it has finished.")


def checksum_mismatch():
    return ChecksumMismatch(
        "The bytes sent do not match Upload-Checksum: none of them were stored.")


def upload_not_found():
    return not_found("The upload does not exist, or has expired.")


def final_takes_no_bytes():
    return not_permitted(
        "This upload is the concatenation of partial uploads: it takes no bytes of its own.")


def not_joinable(url, why):
    return invalid_request_body(f"Upload-Concat names {url}, {why}.")


class Declaration:
    """What the pairs of an ``Upload-Metadata`` say of the file: its name (``filename``, or
    ``name`` as Uppy sends it), description, and the href of the container to upload into (or
    None)."""

    def __init__(self, pairs):
        errors = []
        self.file_name = pairs.get("filename") or pairs.get("name") or ""
        if not self.file_name.strip():
            errors.append(property_violation("fileName", "File name can't be blank."))
        self.description = description_of(pairs, errors)
        if errors:
            raise property_violations(errors)
        self.container_href = pairs.get("container")


class TusUploads:
    """Resumable uploads on top of the attachment ``service``: their rows in ``table``
    (:class:`~affix.storage.resumable.ResumableUploads`), their bytes in ``partials``, finished
    by ``stored`` (:class:`~affix.app.uploads.finishing.StoredUploads`). ``max_size`` bounds an
    upload (0: tus is off); an unfinished upload expires ``expiry`` seconds after its last
    PATCH."""

    def __init__(self, *, service, stored, table, partials, max_size, expiry):
        self.service = service
        self._stored = stored
        self._table = table
        self._partials = partials
        self.max_size = max_size
        self._expiry = datetime.timedelta(seconds=expiry)

    @property
    def enabled(self) -> bool:
        return self.max_size > 0

    def create(self, user, length, metadata, declaration, kind=None, container=None, *,
               body=None, checksum=None):
        """A new upload of ``length`` bytes (None: the client declares it later) by ``user``
        into ``container`` of ``kind`` (or without one), whose first bytes are ``body``
        (creation-with-upload; None for none); the permission is checked before any byte is
        read. ``declaration`` None makes a partial upload (concatenation): bytes that become
        no attachment of their own, but part of a final upload's. A failure of the first
        bytes leaves no upload behind: its client never learnt where it was. (upload,
        Finished or None), as :meth:`append`."""
        self.service.require_may_upload(user, kind, container)
        if length is not None and length > self.max_size:
            raise too_large(self.max_size)
        upload = self._add(user, metadata, declaration, kind, container,
                           upload_length=self.max_size if length is None else length,
                           length_deferred=length is None,
                           concat=PARTIAL if declaration is None else None)
        if body is None:
            if length is None or length:
                return upload, None
            # an empty file is complete at once: it becomes an attachment now
            body = RequestBody(io.BytesIO(), None, 0)
        try:
            return self.append(upload, 0, body, checksum)
        except BaseException:
            self._remove(upload)
            raise

    def _add(self, user, metadata, declaration, kind, container, **values):
        now = self.service.clock()
        return self._table.add(
            token=secrets.token_urlsafe(32), author=user, metadata=metadata or "",
            file_name="" if declaration is None else declaration.file_name,
            description="" if declaration is None else declaration.description,
            container_type=kind.name if kind else None,
            container_id=container.id if container else None,
            storage_key=new_storage_key(), created_at=now, expires_at=now + self._expiry,
            **values)

    def create_final(self, user, metadata, declaration, kind, container, partial_urls):
        """The final upload (concatenation) of ``user``'s finished partial uploads named by
        ``partial_urls`` ({url as the client wrote it: token}, in order), finished as an
        upload whose last byte arrived: (upload, Finished). Every partial upload is checked
        and leased before a byte is joined; a refusal leaves them as they were. Once joined,
        their bytes go and their rows remember the final upload until they expire; the same
        final upload sent again (its answer was lost, or finishing failed for a passing
        reason) answers the one they were joined into, finished."""
        self.service.require_may_upload(user, kind, container)
        sent_before = self._final_sent_before(user, partial_urls)
        if sent_before is not None:
            return self._finished_again(sent_before)
        leased = []
        try:
            for url, token in partial_urls.items():
                partial = self._joinable(user, url, token)
                leased.append((partial, self._lease(partial)))
                # read again under the lease: a PATCH or another final may have come between
                leased[-1] = (self._joinable(user, url, token), leased[-1][1])
            length = sum(partial.upload_length for partial, _ in leased)
            if length > self.max_size:
                raise too_large(self.max_size)
            final = self._add(user, metadata, declaration, kind, container,
                              upload_length=length,
                              concat=FINAL + " ".join(partial_urls))
            return final, self._join(final, leased)
        finally:
            for partial, lease in leased:
                self._table.release_lease(partial, lease)

    def _final_sent_before(self, user, partial_urls):
        """``user``'s final upload that joined the partial uploads ``partial_urls`` named in
        the same order, or None."""
        partials = [self._table.by_token(token) for token in partial_urls.values()]
        if any(partial is None or partial.author_id != user.id for partial in partials):
            return None
        finals = {partial.joined_into for partial in partials}
        if len(finals) != 1 or None in finals:
            return None
        final = self._table.by_token(finals.pop())
        if (final is None or final.author_id != user.id
                or final.concat != FINAL + " ".join(partial_urls)
                or final.expires_at <= self.service.clock()):
            return None
        return final

    def _finished_again(self, upload):
        """The complete ``upload`` as a client that sends its last request again finds it:
        finished now when an earlier try failed for a passing reason or a crash cut it short.
        (upload, Finished or None), as :meth:`append`."""
        lease = self._lease(upload)
        try:
            current = self._table.reread(upload)
            if current is None:
                raise upload_not_found()
            finished = (None if self.attachment_of(current) is not None
                        else self._finish(current, lease))
        finally:
            self._table.release_lease(upload, lease)
        return current, finished

    def _joinable(self, user, url, token):
        """``user``'s finished partial upload ``token``, named by ``url``, that no final
        upload took yet; 400 for anything else."""
        partial = self._table.by_token(token)
        if (partial is None or partial.author_id != user.id or not partial.is_partial
                or partial.expires_at <= self.service.clock()):
            raise not_joinable(url, "which is no partial upload of yours")
        if partial.joined_into is not None:
            raise not_joinable(url, "which is part of another final upload already")
        if not partial.complete:
            length = ("of a length not yet declared" if partial.length_deferred
                      else f"of {partial.upload_length}")
            raise not_joinable(
                url, f"which is not finished: it has {partial.received} bytes {length}")
        return partial

    def _join(self, final, leased):
        """Join the bytes of the partial uploads ``leased`` ((upload, its lease), in order)
        into the new ``final`` upload, then finish it. Until the partial uploads record that
        they were joined (all in one transaction), a failure removes the final upload and
        leaves them as they were."""
        lease = self._lease(final)
        try:
            joined = final.progress
            try:
                joined = self._partials.join(
                    final.progress, [partial.progress for partial, _ in leased])
                if not self._table.record_progress(final, lease, joined,
                                                   self.service.clock() + self._expiry):
                    raise locked()
                if not self._table.joined(leased, final.token):
                    raise locked()
            except BaseException:
                # the bytes joined so far, which the row may not name yet (a multipart upload)
                if self._table.remove(final, lease):
                    self._partials.discard(joined)
                raise
            for partial, _ in leased:
                self._partials.remove_joined(partial.progress)
            return self._finish(final, lease)
        finally:
            self._table.release_lease(final, lease)

    def _remove(self, upload) -> bool:
        """Remove ``upload`` and its bytes unless a PATCH holds it, and the attachment it
        prepared while that is nobody's yet (its finishing failed); whether it did."""
        removed = remove_unless_leased(self._table, self._partials, upload, self.service.clock())
        if removed is None:
            return False
        record = self._became(removed)
        if record is not None and record.status == PREPARED:
            self._stored.abandon(record, record.storage_key)
        return True

    def _became(self, upload):
        """The attachment row ``upload`` became, or None."""
        catalog = self.service.catalog
        return (None if upload.attachment_id is None
                else catalog.get(catalog.Attachment, upload.attachment_id))

    def find(self, user, token):
        """``user``'s upload ``token``; 404 for another's, a missing or an expired one."""
        upload = self._table.by_token(token)
        if (upload is None or upload.author_id != user.id
                or upload.expires_at <= self.service.clock()):
            raise upload_not_found()
        return upload

    def _lease(self, upload):
        now = self.service.clock()
        lease = self._table.take_lease(upload, now, now + LEASE_DURATION)
        if lease is None:
            raise self._not_leased(upload)
        return lease

    def _not_leased(self, upload):
        """The error for a lease ``upload`` did not give: 423 while another request holds it,
        404 once it is gone (terminated meanwhile), which a client gives up on at once rather
        than retrying as it does a 423."""
        return upload_not_found() if self._table.reread(upload) is None else locked()

    def _confirm(self, upload, lease):
        """Make sure ``lease`` still holds ``upload``, for a lease's time from now: 423 when
        another request took the upload over (this one stalled past its lease)."""
        if not self._table.renew_lease(upload, lease, self.service.clock() + LEASE_DURATION):
            raise locked()

    def append(self, upload, offset, body, checksum, declared_length=None):
        """Write ``body`` (a :class:`~affix.app.uploads.multipart.RequestBody`) to ``upload`` at
        ``offset``; finish it when its last byte has arrived. ``checksum`` is
        :func:`~affix.app.uploads.tus_resources.parse_checksum`'s; ``declared_length`` the
        length of an upload that deferred it (creation-defer-length), or None. The upload's
        row, as it is now, and the :class:`~affix.app.uploads.finishing.Finished` upload when
        this call finished it (None otherwise: a retry of a finished upload's last PATCH
        finishes nothing again, and a partial upload never becomes an attachment)."""
        if upload.is_final:
            raise final_takes_no_bytes()
        leased = upload
        finished = None
        # the length this PATCH declares for an upload that deferred it: recorded with the
        # PATCH's bytes, so that a PATCH refused leaves the upload as it was
        declaring = None
        lease = self._lease(leased)
        try:
            # what was read before the lease may be stale: a PATCH that held it since (a
            # client's retry that overtook its first try) moved the offset on, or finished
            # the upload; or a termination removed it
            upload = self._table.reread(leased)
            if upload is None:
                raise upload_not_found()
            try:
                if declared_length is not None:
                    declaring = self._declared_length(upload, declared_length)
                if upload.complete:
                    # every byte is in: a client's retry of the last PATCH, whose answer it
                    # never saw, learns where the attachment is again; or finishing failed
                    # for a passing reason, or a crash cut it short, and the retry (or an
                    # empty PATCH at the end) finishes it, storing nothing of its body
                    if not upload.is_partial and self.attachment_of(upload) is None:
                        finished = self._finish(upload, lease)
                    return upload, finished
                if offset != upload.received:
                    raise offset_mismatch(upload.received, offset)
                length = upload.upload_length if declaring is None else declaring
                remaining = length - upload.received
                if body.content_length is not None and body.content_length > remaining:
                    raise too_large(length)
                self._write(upload, lease, body, remaining, checksum, declaring)
            except ContentTooLarge:
                if (upload.length_deferred and declaring is None
                        and self._table.remove(upload, lease)):
                    # more bytes than any upload may have: this one can never finish
                    self._partials.discard(upload.progress)
                raise
            if upload.complete and not upload.is_partial:
                finished = self._finish(upload, lease)
        finally:
            self._table.release_lease(leased, lease)
        return upload, finished

    def _declared_length(self, upload, length):
        """The ``length`` the client declares for ``upload``, to record with its bytes when
        the upload deferred it (None when it did not): once, at least the bytes it has, at
        most the size limit (over it, the upload can never finish and goes)."""
        if not upload.length_deferred:
            if length != upload.upload_length:
                raise invalid_request_body(
                    f"Upload-Length must stay {upload.upload_length}, as the upload declared.")
            return None
        if length > self.max_size:
            raise too_large(self.max_size)
        if length < upload.received:
            raise invalid_request_body(
                f"Upload-Length must be at least the {upload.received} bytes the upload has.")
        return length

    def _write(self, upload, lease, body, remaining, checksum, declaring=None):
        """Append the PATCH's bytes and record how far the upload is, all under ``lease``.
        Bytes are kept only while the lease is confirmed: a request that lost it (another
        took the upload over) must not touch what the new holder writes. A failure gives up
        this PATCH's bytes; the partial store goes back to the row's offset only while the
        lease still holds, as its new holder may be writing past it."""
        hasher = checksum[0] if checksum else None
        appended = None
        try:
            appended = self._partials.append(
                upload.progress, self._chunks(body, remaining, hasher, upload, lease))
            if checksum and not hmac.compare_digest(hasher.digest(), checksum[1]):
                raise checksum_mismatch()
            self._confirm(upload, lease)
        except BaseException:
            if appended is not None:
                appended.drop()
            if self._table.renew_lease(upload, lease,
                                       self.service.clock() + LEASE_DURATION):
                self._partials.rewind(upload.progress)
            raise
        appended.keep()
        # an upload that goes on is let go with its progress: the lease would otherwise
        # outlast the offset it recorded, and a client's next PATCH, sent as soon as it reads
        # that offset, would find it locked (423)
        if declaring is None:
            finishing = (appended.progress.received == upload.upload_length
                         and not upload.length_deferred)
        else:
            finishing = appended.progress.received == declaring
        if not self._table.record_progress(upload, lease, appended.progress,
                                           self.service.clock() + self._expiry,
                                           release=not finishing, declared_length=declaring):
            raise locked()
        appended.recorded()

    def _chunks(self, body, remaining, hasher, upload, lease):
        """The PATCH's bytes, at most ``remaining``, renewing the lease as time passes. A body
        cut short ends the bytes: what arrived is kept, as tus wants (its checksum, if any,
        fails)."""
        expected = remaining if body.content_length is None else body.content_length
        read = 0
        renewed = self.service.clock()
        while read < expected or body.content_length is None:
            # one byte more than may come, without a Content-Length: to see a body too large
            wanted = min(READ_CHUNK_SIZE, expected - read + (body.content_length is None))
            try:
                chunk = read_body_chunk(body.stream, wanted)
            except InvalidRequestBody:
                # the client went away: what it sent is the upload's
                return
            if not chunk:
                return
            read += len(chunk)
            if read > remaining:
                # the length declared, or deferred (the most any upload may have)
                raise too_large(upload.received + remaining)
            if hasher is not None:
                hasher.update(chunk)
            now = self.service.clock()
            if now - renewed >= LEASE_RENEWAL:
                if not self._table.renew_lease(upload, lease, now + LEASE_DURATION):
                    raise locked()
                renewed = now
            yield chunk

    def attachment_of(self, upload):
        """The id of the attachment ``upload`` became, or None: also while that attachment
        is still ``prepared``, since a crash cut its finishing short (the next PATCH
        finishes it)."""
        if upload.attachment_id is None:
            return None
        Attachment = self.service.catalog.Attachment
        cut_short = Attachment.select().where(
            (Attachment.id == upload.attachment_id) & (Attachment.status == PREPARED)).exists()
        return None if cut_short else upload.attachment_id

    def _finish(self, upload, lease):
        """Make the complete ``upload`` an attachment: first a ``prepared`` one that the
        upload records it became, then its bytes committed, read back and checked. A refusal
        (:func:`~affix.app.errors.is_refusal`) removes every trace of it; a passing failure
        keeps the upload, every byte and whatever finishing made so far, and the client's
        retry of its last PATCH finishes it from there. The
        :class:`~affix.app.uploads.finishing.Finished` upload."""
        # reading the file back may take long: a lease's time from here, so that nobody
        # (cleanup, a termination) takes the upload over while it becomes an attachment
        self._confirm(upload, lease)
        try:
            record = (self._prepare(upload, lease) if upload.attachment_id is None
                      else self._prepared(upload))
            # committed already when an earlier try failed after it
            self._partials.commit(upload.progress)
            # committing may have stalled past the lease: whoever took the upload over since
            # (a termination) decides what becomes of it
            self._confirm(upload, lease)
            record = self._stored.finish(record, record.storage_key)
        except BaseException as error:
            # the row first, under the lease: a PATCH that lost it leaves the bytes alone
            if is_refusal(error) and self._table.remove(upload, lease):
                self._partials.discard(upload.progress)
            raise
        return Finished.since(record, upload.created_at, self.service.clock())

    def _prepare(self, upload, lease):
        """The ``prepared`` attachment the complete ``upload`` becomes, the permission to
        upload into its container asked again; recorded as what the upload became."""
        service = self.service
        kind, container = service.container_of(upload)
        if kind is not None and container is None:
            raise not_found()
        service.require_may_upload(upload.author, kind, container)
        with service.catalog.write_transaction():
            record = service.catalog.add_attachment(
                file_name=upload.file_name, file_size=upload.upload_length,
                content_type=OCTET_STREAM, charset=None, md5="",
                description=upload.description, author=upload.author,
                container_type=upload.container_type, container_id=upload.container_id,
                status=PREPARED, storage_key=upload.storage_key, created_at=service.clock())
            if not self._table.became(upload, lease, record.id):
                raise locked()
        return record

    def _prepared(self, upload):
        """The attachment ``upload`` became, still ``prepared``: an earlier try to finish it
        failed for a passing reason, or a crash cut it short."""
        record = self._became(upload)
        if record is None:
            # removed meanwhile (its author deleted it): the upload goes with it
            raise upload_not_found()
        return record

    def terminate(self, upload):
        """Remove ``upload`` and its bytes (termination); an attachment it became stays. 423
        while a PATCH writes it."""
        if not self._remove(upload):
            raise self._not_leased(upload)
