"""Files the tests upload, and the md5 affix reports for them."""
import hashlib
import random
import struct
import zlib

KiB = 1024
MiB = 1024 * KiB


def png_bytes(width=1, height=1) -> bytes:
    """A real, minimal PNG that libmagic recognises as image/png."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\0" + b"\xff\0\0" * width for _ in range(height)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


def random_bytes(size, seed=0) -> bytes:
    # seeded: a failure reproduces with the very same bytes
    return random.Random(seed).randbytes(size)


def md5(data) -> str:
    return hashlib.md5(data).hexdigest()
