"""Scanning stored attachments (``affix scan``), and the quarantine admins keep
(``affix quarantine``).

``affix scan`` scans every attachment waiting for a scan (``uploaded`` while scanning is on,
``rescan``) in order of id, a batch of rows read at a time, each row's new status committed as
soon as clamd answered: stopped at any point (a crash, clamd gone), it goes on where it stopped
when run again. ``--rescan`` first marks every ``scanned`` attachment ``rescan``, in one
transaction, for signatures that changed.

A quarantined attachment's bytes move to a new key (:func:`_quarantine`): every link to them
handed out before, a pre-signed S3 URL among them, then names an object that is gone.
"""
import dataclasses
import logging

from affix.app.attachments.lifecycle import WAITING_FOR_SCAN
from affix.app.uploads.finishing import stored_chunks
from affix.storage.models import QUARANTINED, RESCAN, SCANNED
from affix.plugins.clamav import ScanRefused

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 100


@dataclasses.dataclass
class ScanReport:
    scanned: int = 0
    quarantined: int = 0
    # deleted while the scan ran
    gone: int = 0
    # (id, clamd's answer) of each attachment clamd would not scan; they keep waiting
    refused: list = dataclasses.field(default_factory=list)


def mark_for_rescan(catalog) -> int:
    """Mark every scanned attachment ``rescan``; returns how many."""
    Attachment = catalog.Attachment
    with catalog.write_transaction():
        return Attachment.update(status=RESCAN).where(Attachment.status == SCANNED).execute()


def _waiting(catalog, after_id, batch_size):
    Attachment = catalog.Attachment
    return list(
        Attachment.select()
        .where(Attachment.status.in_(WAITING_FOR_SCAN) & (Attachment.id > after_id))
        .order_by(Attachment.id)
        .limit(batch_size)
    )


def scan_waiting(catalog, blob_store, scanner, events, webhooks, batch_size=DEFAULT_BATCH_SIZE,
                 report=None) -> ScanReport:
    """Scan what waits for a scan with ``scanner`` (a :class:`~affix.plugins.clamav.ClamdScanner`)
    and tell plugins through ``events`` (and webhooks, in each verdict's transaction, through
    ``webhooks``). A :class:`~affix.plugins.clamav.ScannerUnavailable`
    stops it, what was done so far committed, in ``report``; a file clamd refuses to scan
    (:class:`~affix.plugins.clamav.ScanRefused`) keeps waiting, and the scan goes on."""
    report = ScanReport() if report is None else report
    last_id = 0
    while batch := _waiting(catalog, last_id, batch_size):
        for record in batch:
            last_id = record.id
            try:
                blob = blob_store.open(record.storage_key)
            except FileNotFoundError:
                report.gone += 1
                continue
            try:
                with blob:
                    finding = scanner.scan_file(blob)
            except ScanRefused as error:
                log.warning("attachment %s was not scanned: %s", record.id, error)
                report.refused.append((record.id, str(error)))
                continue
            if finding is None:
                updated = _record_verdict(catalog, record, SCANNED, None, record.storage_key,
                                          webhooks.scanned)
            else:
                updated = _quarantine(catalog, blob_store, record, finding, webhooks)
            if not updated:
                report.gone += 1
                continue
            if finding is None:
                report.scanned += 1
                events.scanned(record)
            else:
                report.quarantined += 1
                events.quarantined(record, finding)
    return report


def _record_verdict(catalog, record, status, finding, storage_key, webhook) -> bool:
    """Give ``record`` its scan's ``status`` and ``finding``, its bytes at ``storage_key``,
    and tell ``webhook`` in the same transaction; only if nothing changed it since it was read
    (deleted, scanned by another run). Whether it did."""
    Attachment = catalog.Attachment
    with catalog.write_transaction():
        updated = (
            Attachment.update(status=status, scan_finding=finding, storage_key=storage_key)
            .where((Attachment.id == record.id) & (Attachment.status == record.status)
                   & (Attachment.storage_key == record.storage_key))
            .execute()
        )
        if updated:
            record.status, record.scan_finding, record.storage_key = status, finding, storage_key
            webhook(record)
    return bool(updated)


def _quarantine(catalog, blob_store, record, finding, webhooks) -> bool:
    """Put ``record`` in quarantine under a new storage key, its bytes kept for the admins
    (``affix quarantine``); whether it did.

    Every link handed out before (a pre-signed S3 URL in an answer, a download that read the
    row before) names the old key, and no store can take back a pre-signed URL: deleting the
    object is what cuts them all off. The bytes are copied first, the row then names the copy,
    and only then does the old object go; a crash on the way leaves the row naming bytes that
    are there, and a blob no row names, which ``affix gc`` removes."""
    old_key = record.storage_key
    try:
        quarantine_key = _copy_blob(blob_store, old_key)
    except FileNotFoundError:
        return False
    if not _record_verdict(catalog, record, QUARANTINED, finding, quarantine_key,
                           webhooks.quarantined):
        blob_store.delete(quarantine_key)
        return False
    blob_store.delete(old_key)
    return True


def _copy_blob(blob_store, storage_key) -> str:
    """A copy of blob ``storage_key`` under a new storage key; ``FileNotFoundError`` when the
    blob is gone."""
    staged = blob_store.stage()
    try:
        for chunk in stored_chunks(blob_store, storage_key):
            staged.write(chunk)
        return staged.commit()
    except BaseException:
        staged.discard()
        raise


def quarantined(catalog, ids=None) -> list:
    """The quarantined attachments (those of ``ids`` only, when given), oldest first, with
    their authors."""
    Attachment = catalog.Attachment
    query = (Attachment.select(Attachment, catalog.User).join(catalog.User)
             .where(Attachment.status == QUARANTINED))
    if ids is not None:
        query = query.where(Attachment.id.in_(list(ids)))
    return list(query.order_by(Attachment.id))


def delete_quarantined(catalog, blob_store, events, webhooks, record) -> bool:
    """Delete a quarantined attachment, row then blob; False when it is gone or no longer
    quarantined."""
    Attachment = catalog.Attachment
    with catalog.write_transaction():
        deleted = (Attachment.delete()
                   .where((Attachment.id == record.id) & (Attachment.status == QUARANTINED))
                   .execute())
        if deleted:
            webhooks.deleted(record, None)
    if not deleted:
        return False
    blob_store.delete(record.storage_key)
    events.deleted(record, None)
    return True
