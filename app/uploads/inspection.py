"""Driving the inspectors plugins give an upload (``affix_inspect_upload``): each chunk of
the file part as it arrives, a verdict before anything is stored.

An inspector that fails is the service's fault, not the client's: 503, and the upload is not
kept. A refusal is the client's: 422 with the inspector's message.

Every path that receives bytes drives one :class:`Inspection`: ``begin`` before the first
byte, ``feed`` each chunk once as it arrives, ``verdict`` before anything is committed, and
``close`` however it ends. An inspector lives in one process for one upload: a path whose
bytes arrive over several requests (resumable uploads, possibly to different workers) drives
its inspection where it assembles them, reading each chunk once, in order.
"""
import dataclasses
import logging

from affix.app.errors import ServiceUnavailable, property_violation
from affix.plugins.uploads import SCANNED

log = logging.getLogger(__name__)

# how an inspected upload ended, as the metrics count it: a scanner read it and found nothing,
# every inspector accepted it (none scanned it), one refused it (422), one failed (503)
SCANNED_OUTCOME, ACCEPTED, REFUSED, FAILED = "scanned", "accepted", "refused", "failed"
OUTCOMES = (SCANNED_OUTCOME, ACCEPTED, REFUSED, FAILED)


def inspection_failed():
    return ServiceUnavailable("The file could not be checked. Please try again later.")


def _name(inspector) -> str:
    kind = type(inspector)
    return f"{kind.__module__}.{kind.__qualname__}"


@dataclasses.dataclass(frozen=True)
class Acceptance:
    """What the inspectors decided of an accepted upload."""

    scanned: bool


def _tally(count, outcome):
    if count is not None:
        count(outcome)


class Inspection:
    """The inspectors of one upload; ``count`` is told the outcome (one of OUTCOMES) of an
    upload that had inspectors, or is None when nobody counts."""

    def __init__(self, inspectors, count=None):
        self._inspectors = inspectors
        self._count = count if inspectors else None

    @classmethod
    def begin(cls, plugin_manager, user, container_type, count=None) -> "Inspection":
        """Ask every plugin for an inspector of an upload by ``user`` into ``container_type``
        (a name, or None); 503 when one fails (the hook logs it, with the plugin's name)."""
        try:
            answers = plugin_manager.hook.affix_inspect_upload(
                user=user, container_type=container_type)
        except Exception:
            _tally(count, FAILED)
            raise inspection_failed() from None
        return cls([inspector for inspector in answers if inspector is not None], count)

    def _failed(self, inspector, step):
        log.exception("upload inspector %s failed in %s", _name(inspector), step)
        _tally(self._count, FAILED)
        self.close()
        return inspection_failed()

    def feed(self, chunk: bytes):
        if not chunk:
            # the parser hands on empty chunks at times; an inspector is never shown one
            return
        for inspector in self._inspectors:
            try:
                inspector.feed(chunk)
            except Exception:
                raise self._failed(inspector, "feed") from None

    def verdict(self, upload) -> Acceptance:
        """Every inspector's verdict on ``upload`` (an UploadCandidate); the first refusal
        raises 422, a failure 503."""
        scanned = False
        for inspector in self._inspectors:
            try:
                answer = inspector.verdict(upload)
            except Exception:
                raise self._failed(inspector, "verdict") from None
            if answer is SCANNED:
                scanned = True
            elif answer:
                _tally(self._count, REFUSED)
                raise property_violation("file", str(answer))
        _tally(self._count, SCANNED_OUTCOME if scanned else ACCEPTED)
        return Acceptance(scanned=scanned)

    def close(self):
        """Let every inspector let go of what it holds; called however the upload ends."""
        inspectors, self._inspectors = self._inspectors, []
        self._count = None
        for inspector in inspectors:
            close = getattr(inspector, "close", None)
            if close is None:
                continue
            try:
                close()
            except Exception:
                log.exception("upload inspector %s failed in close", _name(inspector))
