"""Files the tests upload, and the md5 affix reports for them."""
import hashlib
import io
import random
import struct
import zipfile
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


def zip_bytes(files=(("inside.txt", b"hello"),)) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return buffer.getvalue()


SVG = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
       b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
       b'<script>alert(1)</script><rect width="10" height="10"/></svg>\n')
# the first bytes of a Windows program (a DOS header)
DOS_PROGRAM = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(48)
LINES = b"".join(b"line %05d of a long text file\n" % number for number in range(1000))
UTF8_LINE = "Grüße aus Köln ✓ — naïve café\n".encode()


def known_files() -> dict:
    """The kinds of file the test suite uploads, each as the tests send it and grown past
    8 KiB (where a sniffer reading a prefix sees less than the whole), by name."""
    return {
        "png": png_bytes(),
        "png 64x64": png_bytes(64, 64),
        "ascii text": b"hello world\n",
        "ascii lines, 30 KB": LINES,
        "utf-8 text": UTF8_LINE,
        "utf-8 text, 16 KB": UTF8_LINE * (16 * KiB // len(UTF8_LINE)),
        "html": b"<html><body><script>alert(1)</script></body></html>",
        "html, 16 KB": b"<html><body>" + b"<p>paragraph</p>\n" * 1000 + b"</body></html>\n",
        "svg": SVG,
        "zip": zip_bytes(),
        "zip, 64 KB": zip_bytes([(f"{number}.bin", random_bytes(4 * KiB, number))
                                 for number in range(16)]),
        "pdf": b"%PDF-1.4\n%%EOF\n",
        "pdf, 16 KB": b"%PDF-1.4\n" + b"1 0 obj << /Type /Catalog >> endobj\n" * 450 + b"%%EOF\n",
        "gif": b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
        "dos program": DOS_PROGRAM,
        "dos program, 16 KB": DOS_PROGRAM + random_bytes(16 * KiB),
        "byte ramp": bytes(range(256)) * 4,
        "byte ramp, 16 KB": bytes(range(256)) * 64,
        "random, 4 KiB": random_bytes(4 * KiB),
        "random, 16 KiB": random_bytes(16 * KiB, 1),
        "empty": b"",
    }


def fuzz_shaped_files(count, seed=0, small_limit=64 * KiB) -> list:
    """Files shaped as tests/functional/test_fuzz.py's file parts: up to 300 arbitrary bytes, or
    the first 100 of them followed by NUL bytes up to a size limit or a little past it (seeded)."""
    rng = random.Random(seed)
    files = []
    for _ in range(count):
        data = rng.randbytes(rng.randint(0, 300))
        shape = rng.choice(["small", "small", "small", "limit", "over"])
        if shape != "small":
            size = small_limit + (rng.randint(1, 3000) if shape == "over" else 0)
            data = data[:100] + b"\0" * (size - min(len(data), 100))
        files.append(data)
    return files
