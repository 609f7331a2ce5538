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
