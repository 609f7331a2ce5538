"""Virus scanning's attachment statuses, set straight in the database (system/test_clamav.py
has a real clamd set them), and what affix answers about a quarantined file."""
QUARANTINED = "The file {} is quarantined: the virus scanner found malware in it."
# after mode never talks to clamd while serving
NO_CLAMD = "/nonexistent/clamd.sock"


def set_status(catalog, attachment_id, status, finding=None):
    with catalog.database.connection_context():
        catalog.Attachment.update(status=status, scan_finding=finding).where(
            catalog.Attachment.id == attachment_id).execute()
