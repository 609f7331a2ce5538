"""Sizes as people write them, one rule for every size setting and flag: a whole number of
bytes (``5242880``), or of KiB, MiB or GiB (``5M`` or ``5MiB``; ``K``, ``G`` alike, in either
case). ``5MB`` is refused: whether it means 5,000,000 or 5,242,880 bytes is anybody's guess."""
import re

SIZE_FORMS = "bytes (5242880), or K, M, G with or without iB (5M, 5MiB: 1024-based)"
# at most 19 digits: more than any file, and never past what Python's int() converts
_SIZE = re.compile(r"(?P<number>[0-9]{1,19})(?:(?P<unit>[kmg])(?:ib)?)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """The bytes of ``text``; ValueError, saying which forms are sizes, for any other text."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a size: {text!r}; write {SIZE_FORMS}")
    unit = (match["unit"] or "").upper()
    return int(match["number"]) * 1024 ** " KMG".index(unit or " ")


def size_text(size: int) -> str:
    """``size`` as a person would write it for :func:`parse_size`: in the largest unit that
    holds it whole (``4M``, ``1536K``), else in bytes."""
    for unit, factor in (("G", 1024 ** 3), ("M", 1024 ** 2), ("K", 1024)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
