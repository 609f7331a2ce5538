"""The upload allowlist: which files may be uploaded at all, as an upload policy."""
import re

from affix.plugins import hookimpl

_MIME_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_EXTENSION_PATTERN = re.compile(r"^\*\.[^\s/*.][^\s/*]*$")


def parse_allowlist(text: str) -> tuple:
    """Entries of a comma- or space-separated list; ValueError names the first bad one."""
    entries = tuple(entry.lower() for entry in re.split(r"[,\s]+", text.strip()) if entry)
    for entry in entries:
        if not (_MIME_TYPE.match(entry) or _EXTENSION_PATTERN.match(entry)):
            raise ValueError(
                f"{entry!r} is neither a MIME type (image/png) nor an extension pattern (*.png)"
            )
    return entries


class Allowlist:
    """Exact MIME types, matched against the sniffed type, and ``*.ext`` patterns, matched
    against the file name's extension. Empty allows everything."""

    def __init__(self, entries):
        self.types = frozenset(entry for entry in entries if not entry.startswith("*."))
        self.extensions = frozenset(entry[1:] for entry in entries if entry.startswith("*."))

    def allows(self, content_type: str, file_name: str) -> bool:
        if not (self.types or self.extensions):
            return True
        if content_type in self.types:
            return True
        name = file_name.lower()
        return any(name.endswith(extension) for extension in self.extensions)


class AllowlistPolicy:
    """The allowlist as a plugin on the ``affix_validate_upload`` hook."""

    def __init__(self, allowlist: Allowlist):
        self.allowlist = allowlist

    @hookimpl
    def affix_validate_upload(self, upload):
        if not self.allowlist.allows(upload.content_type, upload.file_name):
            return (f"The file was rejected by an automatic filter. '{upload.content_type}' is "
                    "not allowed for upload.")
        return None
