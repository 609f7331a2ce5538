"""What an upload policy is shown of an upload."""
import dataclasses


@dataclasses.dataclass(frozen=True)
class UploadCandidate:
    """A fully received upload that is not yet stored.

    ``content_type`` is what libmagic found in the bytes, never the client's claim; ``head`` is
    the first few KiB of the file; ``container_type`` is the name of the container type the file
    is uploaded into, or None for an upload without a container.
    """

    file_name: str
    description: str
    size: int
    md5: str
    content_type: str
    head: bytes
    container_type: str | None


class ScanPassed:
    """The verdict of a malware scanner that read every byte and found nothing: the upload is
    accepted and starts ``scanned`` rather than ``uploaded``. Use the one instance,
    :data:`SCANNED`."""

    def __repr__(self) -> str:
        return "SCANNED"


SCANNED = ScanPassed()
