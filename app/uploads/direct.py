"""OpenProject's direct uploads: the client sends the bytes to the object store itself.

1. ``prepare``: the client declares a file (name, size, description); affix writes a row in
   status ``prepared`` whose blob is a staged key, and answers a pre-signed POST form that
   stores exactly that many bytes at that key, until the form expires.
2. The client POSTs the file to the store with that form; affix sees none of it.
   Until it is complete, its author may ask for it again (``pending``): the same form, signed
   anew to expire when the first one does, so that asking never lengthens its life.
3. ``complete``: the author only (anyone else gets 404) tells affix the upload is done. affix
   checks the staged object's size, copies it inside the bucket to a key no form can write to,
   then reads the copy once for its md5 and the head its content type is sniffed from, and
   asks the upload policies, like any upload (:mod:`affix.app.uploads.finishing`). Only then does
   the row become ``uploaded``, and the staged object is deleted. A refusal (a permission, a
   size, a policy, the virus scanner's no) deletes the row and every object of the upload,
   unless a repeat of the completion completed it meanwhile; a passing failure (the database,
   the store or the virus scanner out of reach) only the copy, and the author's retry
   completes the upload. Completing again answers the attachment as it is.

The store's policy pins the key and the size, but not every S3-compatible server enforces a
policy (moto does not): completion checks size and content itself, at the key it copied to.

A declaration with ``"parts": true`` asks for an upload in parts instead of the form, where the
store takes one (:mod:`affix.app.uploads.direct_parts`): the client sends the parts itself, and
completion first joins the parts the bucket holds into the staged object, then goes on as above.
"""
import contextlib
import dataclasses
from typing import Any

from affix.app.uploads.content_types import OCTET_STREAM
from affix.app.uploads.direct_parts import join_parts
from affix.app.errors import is_refusal, not_found, property_violation, property_violations
from affix.app.http.request_json import parse_json, storable_document
from affix.app.uploads.finishing import Finished, size_mismatch
from affix.app.uploads.multipart import description_of, file_too_large, receive_metadata
from affix.storage.blob_store import is_storage_key
from affix.storage.models import PREPARED
from affix.storage.s3_direct_parts import PartPlan

NOT_AVAILABLE = ("Direct file upload is not available due to a system configuration issue. "
                 "Please contact your administrator.")
NOT_UPLOADED = "The file has not been uploaded to the storage."


@dataclasses.dataclass(frozen=True)
class DeclaredUpload:
    """What a client declares of the file it is about to upload to the store."""

    file_name: str
    size: int
    description: str
    # an upload in parts asked for (sent as parts, if the store takes them)
    parts: bool = False


@dataclasses.dataclass(frozen=True)
class PreparedUpload:
    """A prepared upload's row, and how the client sends its bytes: the form's URL and fields,
    or, for an upload in parts, how the file is cut."""

    record: Any
    # seconds until prepare's answer expires: nothing signed for it may outlive that
    lifetime: int
    form_url: str | None = None
    form_fields: dict | None = None
    plan: PartPlan | None = None


def parse_declaration(raw: bytes, size_limit: int, allowlist) -> DeclaredUpload:
    """The declaration in a prepare request's metadata part; 400 or 422 when unusable.
    A ``contentType`` the client names is checked against ``allowlist`` (an early answer
    only: what counts is the type sniffed on completion) and not kept."""
    document = storable_document(parse_json(raw))
    errors = []
    file_name = document.get("fileName")
    if not isinstance(file_name, str) or not file_name.strip():
        errors.append(property_violation("fileName", "File can't be blank."))
        file_name = ""
    # the schema says fileSize, the spec's example filesize: clients send either
    size: Any = document.get("fileSize", document.get("filesize"))
    if size is None:
        errors.append(property_violation("fileSize", "Size can't be blank."))
    elif isinstance(size, bool) or not isinstance(size, int) or size < 0:
        errors.append(property_violation("fileSize", "Size must be a whole number of bytes."))
    elif size > size_limit:
        errors.append(file_too_large(size_limit))
    content_type = document.get("contentType")
    if content_type is not None:
        if not isinstance(content_type, str):
            errors.append(property_violation("contentType", "Content type must be a text."))
        elif not allowlist.allows(content_type.lower(), file_name):
            errors.append(property_violation(
                "contentType", f"'{content_type}' is not allowed for upload."))
    description = description_of(document, errors)
    parts = document.get("parts", False)
    if not isinstance(parts, bool):
        errors.append(property_violation("parts", "Parts must be true or false."))
    if errors:
        raise property_violations(errors)
    return DeclaredUpload(file_name=file_name, size=size, description=description, parts=parts)


class DirectUploads:
    """Preparing and completing direct uploads, on top of the attachment service.

    ``stored`` finishes an upload whose bytes are in the store
    (:class:`~affix.app.uploads.finishing.StoredUploads`); ``staging`` is the store's
    :class:`~affix.storage.s3_staging.S3UploadStaging`, None when the store takes no direct
    uploads; ``parts`` its :class:`~affix.storage.blob_store.PartStaging`, None when it takes
    no uploads in parts; ``size_limit`` bounds a declared size; ``allowlist`` answers a
    declared content type early.
    """

    def __init__(self, *, service, stored, staging, size_limit, allowlist, parts=None):
        # public: the routes render attachments through it
        self.service = service
        self._stored = stored
        self._catalog = service.catalog
        self._staging = staging
        self.parts = parts
        self._size_limit = size_limit
        self._allowlist = allowlist

    @property
    def available(self) -> bool:
        """Whether clients may upload to the store directly (what a work package's
        ``prepareAttachment`` link tells them, as OpenProject's does): only a store that gives
        clients a URL of its own."""
        return self._staging is not None

    def prepare(self, user, body, kind=None, container=None) -> PreparedUpload:
        """A prepared upload into ``container`` of ``kind`` (or without a container) from
        the metadata part of ``body``. The same permission as an upload's, checked before the
        body is read; 422 without a store that takes direct uploads."""
        self.service.require_may_upload(user, kind, container)
        if not self.available:
            raise property_violation(None, NOT_AVAILABLE)
        declared = parse_declaration(receive_metadata(body), self._size_limit, self._allowlist)
        if declared.parts and self.parts is not None:
            staged_key = self.parts.new_key()
            self.parts.start(staged_key)
            try:
                record = self._add_prepared(user, declared, staged_key, kind, container)
            except BaseException:
                # no row names the upload: nothing else would ever abort it
                self.service.delete_blob(staged_key)
                raise
            return PreparedUpload(record, self._staging.form_lifetime,
                                  plan=PartPlan.for_size(declared.size))
        staged_key = self._staging.new_key()
        form_url, form_fields = self._staging.form(staged_key, declared.size)
        record = self._add_prepared(user, declared, staged_key, kind, container)
        return PreparedUpload(record, self._staging.form_lifetime, form_url=form_url,
                              form_fields=form_fields)

    def _add_prepared(self, user, declared, staged_key, kind, container):
        with self._catalog.write_transaction():
            record = self._catalog.add_attachment(
                file_name=declared.file_name, file_size=declared.size,
                content_type=OCTET_STREAM, charset=None, md5="",
                description=declared.description, author=user,
                container_type=kind.name if kind else None,
                container_id=container.id if container else None,
                status=PREPARED, storage_key=staged_key, created_at=self.service.clock(),
            )
        return record

    def pending(self, user, attachment_id):
        """The direct upload ``attachment_id`` of ``user`` while it waits for its file: its
        kind and container, and the upload as prepare answered it. A form is signed anew but
        expires when prepare's did. 404 for any other id, another user's upload, one complete
        (an attachment now), one whose form expired, and the row of a tus upload."""
        if not self.available:
            raise not_found()
        record = self.authored_by(user, attachment_id)
        # a tus upload's row is prepared too, but at a storage key: no form writes there
        if record is None or record.status != PREPARED or is_storage_key(record.storage_key):
            raise not_found()
        kind, container = self.service.container_of(record)
        if kind is not None and container is None:
            raise not_found()
        self.service.require_may_upload(user, kind, container)
        age = (self.service.clock() - record.created_at).total_seconds()
        lifetime = int(self._staging.form_lifetime - age)
        if lifetime < 1:
            raise not_found()
        if self.parts is not None and self.parts.owns(record.storage_key):
            return kind, container, PreparedUpload(record, lifetime,
                                                   plan=PartPlan.for_size(record.file_size))
        form_url, form_fields = self._staging.form(record.storage_key, record.file_size,
                                                   lifetime)
        return kind, container, PreparedUpload(record, lifetime, form_url=form_url,
                                               form_fields=form_fields)

    def complete(self, grants, attachment_id):
        """The attachment of the upload ``attachment_id`` of ``grants.user``, completed now or
        before (completion is a GET: clients and proxies repeat it), as they see it; 404 for
        any other id, another user's, or an upload whose file is not in the store. With it,
        the :class:`~affix.app.uploads.finishing.Finished` upload when this call completed
        it, None when it was complete before."""
        if not self.available:
            raise not_found()
        user = grants.user
        record = self.authored_by(user, attachment_id)
        # a tus upload's row is prepared too (its finishing failed, waiting for the retry),
        # at a storage key: a completion would take it for a direct upload and abandon it
        if record is None or (record.status == PREPARED and is_storage_key(record.storage_key)):
            raise not_found()
        if record.status != PREPARED:
            return self.service.find_visible(grants, attachment_id), None
        began = record.created_at
        try:
            completed = self._complete(user, record)
        except Exception:
            # a repeat that ran at the same time completed it: the upload stands, and so does
            # its answer
            now = self.authored_by(user, attachment_id)
            if now is None or now.status == PREPARED:
                raise
            return self.service.find_visible(grants, attachment_id), None
        return (self.service.view(grants, completed),
                Finished.since(completed, began, self.service.clock()))

    def _complete(self, user, record):
        """Copy the staged object, check the copy and make the row an attachment. Repeats of
        it may run at the same time: each checks a copy of its own, exactly one makes the row
        an attachment (a conditional UPDATE), and the staged object goes only after that, so
        none of them finds it gone while the upload is still prepared.

        A refusal (:func:`~affix.app.errors.is_refusal`) deletes the row, while it is still
        prepared, and the staged object. A passing failure deletes only this completion's
        copy: the row and the staged object wait for the author's retry, and a repeat
        running meanwhile goes on undisturbed."""
        staged_key = record.storage_key
        storage_key = None
        try:
            kind, container = self.service.container_of(record)
            if kind is not None and container is None:
                raise not_found()
            self.service.require_may_upload(user, kind, container)
            try:
                if self.parts is not None and self.parts.owns(staged_key):
                    # an earlier try joined them, and failed after: the object is there
                    with contextlib.suppress(FileNotFoundError):
                        join_parts(self.parts, record)
                size = self._staging.staged_size(staged_key)
                if size != record.file_size:
                    raise size_mismatch(size, record.file_size)
                storage_key = self._staging.promote(staged_key)
            except FileNotFoundError:
                raise not_found(NOT_UPLOADED) from None
            record = self._stored.finish(record, storage_key)
        except BaseException as error:
            if is_refusal(error):
                # finishing deleted the copy already, if it made one
                self._stored.abandon(record, staged_key)
            elif storage_key is not None:
                self._stored.discard(storage_key)
            raise
        self._staging.discard(staged_key)
        return record

    def staged_size(self, staged_key) -> int:
        """The size of the file at ``staged_key``; ``FileNotFoundError`` when there is none."""
        return self._staging.staged_size(staged_key)

    def authored_by(self, user, attachment_id):
        """The row of attachment ``attachment_id`` if ``user`` is its author; None otherwise
        (uploads in parts look their rows up with it too)."""
        Attachment = self._catalog.Attachment
        record = self._catalog.by_id(
            Attachment.select(Attachment, self._catalog.User).join(self._catalog.User),
            Attachment, attachment_id)
        return record if record is not None and record.author_id == user.id else None
