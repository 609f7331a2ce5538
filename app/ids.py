"""Ids in URLs and in hrefs: canonical decimal numbers only.

``+1``, ``01`` and digits of other scripts (``１``) are numbers to Python's ``int`` but no
id's spelling: they name nothing, so that each resource has one URL. A number of more digits
than the largest id names nothing either, and is never converted (Python refuses to convert
numbers of more than 4,300 digits).
"""
import re

from affix.storage.models import MAX_ID

_CANONICAL = re.compile(r"[1-9][0-9]*")
# an id that names no row: is_valid_id refuses it
NO_ID = 0


def id_of(text: str) -> int:
    """The id ``text`` spells, or :data:`NO_ID`."""
    if len(text) > len(str(MAX_ID)) or not _CANONICAL.fullmatch(text):
        return NO_ID
    return int(text)
