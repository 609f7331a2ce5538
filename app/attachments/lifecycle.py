"""An attachment's status, as OpenProject defines it, and what each status allows.

``prepared``: a direct upload announced, its bytes not yet received; only its author sees it,
nobody downloads or claims it. ``uploaded``: received; while virus scanning is on it waits for
a scan, and until then only its author may download it. ``scanned``: the scanner found nothing.
``rescan``: scanned before, waiting to be scanned again with newer signatures (served as it was
served after its first scan). ``quarantined``: the scanner found malware; it stays listed where
it was, is never served to anyone, cannot be claimed, and admins see and delete it wherever it
is.
"""
from affix.app.errors import DomainError, not_found, not_permitted, property_violation
from affix.storage.models import PREPARED, QUARANTINED, RESCAN, SCANNED, UPLOADED

# what ``affix scan`` scans
WAITING_FOR_SCAN = (UPLOADED, RESCAN)
# what no claim may take
UNCLAIMABLE = (PREPARED, QUARANTINED)


class Lifecycle:
    """The status rules; ``scanning`` says whether virus scanning is on (any AFFIX_SCAN_MODE
    but off)."""

    def __init__(self, scanning: bool):
        self.scanning = scanning

    def initial_status(self, scanned: bool) -> str:
        """The status of a new upload: ``scanned`` when a scanner read it as it streamed."""
        return SCANNED if scanned else UPLOADED

    def pending_scan(self, record) -> bool:
        return self.scanning and record.status == UPLOADED

    def may_see(self, user, record, by_container: bool) -> bool:
        """Whether ``user`` may see ``record``, ``by_container`` being what the container's
        rules (or authorship) allow."""
        if record.status == PREPARED:
            return record.author_id == user.id
        if record.status == QUARANTINED and user.admin:
            return True
        return by_container

    def may_delete(self, user, record, by_container: bool) -> bool:
        if record.status == QUARANTINED and user.admin:
            return True
        return by_container

    def require_downloadable(self, user, record):
        """403 for a quarantined file (for everyone) and for one waiting for its scan (for
        all but its author), as OpenProject answers; 404 for one not uploaded yet."""
        if record.status == QUARANTINED:
            raise not_permitted(
                f"The file {record.file_name} is quarantined: the virus scanner found "
                "malware in it.")
        if record.status == PREPARED:
            raise not_found("The file has not been uploaded yet.")
        if self.pending_scan(record) and record.author_id != user.id:
            raise not_permitted(
                f"The file {record.file_name} has not been scanned for viruses yet: until "
                "then, only its author may download it.")

    def may_serve_elsewhere(self, user, record) -> bool:
        """Whether a pre-signed URL may be handed to ``user``: never where the download
        itself is refused."""
        try:
            self.require_downloadable(user, record)
        except DomainError:
            return False
        return True

    @staticmethod
    def require_claimable(record):
        """422 for an attachment no claim may take."""
        if record.status == QUARANTINED:
            raise property_violation(
                "attachments", "Attachments in quarantine cannot be claimed.")
        if record.status == PREPARED:
            raise property_violation(
                "attachments", "Attachments still being uploaded cannot be claimed.")
