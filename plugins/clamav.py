"""ClamAV, shipped with affix: clamd's INSTREAM command, fed while an upload streams.

clamd reads a stream as chunks, each framed by its length (4 bytes, network order) and ended by
a chunk of length 0; it answers ``stream: OK`` or ``stream: <signature> FOUND``, or a line
ending in ``ERROR``. The ``z`` form of the command ends every line with a NUL byte. The client
libraries on PyPI take a file to read from; an upload arrives chunk by chunk and is read once,
so affix speaks the protocol itself.
"""
import dataclasses
import logging
import socket
import struct
from collections.abc import Mapping
from typing import BinaryIO

from affix.plugins import hookimpl
from affix.plugins.uploads import SCANNED, ScanPassed, UploadCandidate

log = logging.getLogger(__name__)

MODES = ("off", "stream", "after")
DEFAULT_TIMEOUT_SECONDS = 30
_END_OF_STREAM = struct.pack(">I", 0)
# clamd's longest answer is one line: the signature's name and a few words
_MAX_REPLY = 4096
READ_SIZE = 1024 * 1024


class ScannerUnavailable(Exception):
    """clamd could not be reached, took longer than the timeout, or answered with an error:
    the bytes are not scanned. Never a clean result."""


class ScanRefused(ScannerUnavailable):
    """clamd answered with an error about this stream (longer than its StreamMaxLength, for
    one): this file is not scanned, others may well be."""


@dataclasses.dataclass(frozen=True)
class ScanOptions:
    """How affix scans: ``mode`` off, stream (while uploading) or after (``affix scan``);
    ``clamd`` a unix socket's path or ``host:port``; ``timeout`` seconds for any one read or
    write to clamd; ``accept_unscanned`` keeps uploads clamd could not scan, in stream mode, as
    ``uploaded`` for ``affix scan`` instead of refusing them."""

    # the settings reference is written from each field's metadata: the variable it is read
    # from, what that holds, what it means
    mode: str = dataclasses.field(default="off", metadata={
        "variable": "AFFIX_SCAN_MODE", "form": " or ".join(MODES),
        "meaning": "virus scanning with ClamAV: `stream` scans every upload while it arrives, "
                   "`after` leaves it to `affix scan`"})
    clamd: str | None = dataclasses.field(default=None, metadata={
        "variable": "AFFIX_CLAMD", "form": "path or HOST:PORT",
        "meaning": "clamd's unix socket (e.g. `/run/clamav/clamd.ctl`) or `host:port`; needed "
                   "when scanning is on"})
    timeout: float = dataclasses.field(default=DEFAULT_TIMEOUT_SECONDS, metadata={
        "variable": "AFFIX_CLAMD_TIMEOUT", "form": "number",
        "meaning": "seconds affix waits for clamd at any one step (connecting, sending a chunk, "
                   "the answer)"})
    accept_unscanned: bool = dataclasses.field(default=False, metadata={
        "variable": "AFFIX_SCAN_ACCEPT_UNSCANNED", "form": "flag",
        "meaning": "in stream mode, keep an upload clamd could not scan (down, too slow) as "
                   "`uploaded` for `affix scan`, instead of refusing it with 503"})

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


def scan_options(environ: Mapping[str, str]) -> ScanOptions:
    """The ``AFFIX_SCAN_*`` and ``AFFIX_CLAMD*`` settings; ValueError names a bad one."""
    mode = environ.get("AFFIX_SCAN_MODE", "").strip().lower() or "off"
    if mode not in MODES:
        raise ValueError(f"AFFIX_SCAN_MODE must be one of {', '.join(MODES)}, not {mode!r}")
    clamd = environ.get("AFFIX_CLAMD", "").strip() or None
    if mode != "off" and clamd is None:
        raise ValueError(f"AFFIX_SCAN_MODE={mode} needs AFFIX_CLAMD: clamd's unix socket "
                         "(a path) or host:port")
    if clamd is not None:
        clamd_address(clamd)
    raw_timeout = environ.get("AFFIX_CLAMD_TIMEOUT", "").strip()
    try:
        timeout = float(raw_timeout) if raw_timeout else DEFAULT_TIMEOUT_SECONDS
    except ValueError:
        timeout = 0
    if not timeout > 0:
        raise ValueError(f"AFFIX_CLAMD_TIMEOUT must be a number of seconds greater than 0, "
                         f"not {raw_timeout!r}")
    raw_accept = environ.get("AFFIX_SCAN_ACCEPT_UNSCANNED", "").strip().lower()
    if raw_accept not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
        raise ValueError(f"AFFIX_SCAN_ACCEPT_UNSCANNED must be 1 or 0 (true or false), "
                         f"not {raw_accept!r}")
    return ScanOptions(mode=mode, clamd=clamd, timeout=timeout,
                       accept_unscanned=raw_accept in ("1", "true", "yes", "on"))


def clamd_address(text: str) -> str | tuple[str, int]:
    """clamd's address: a unix socket's path, or (host, port) of ``host:port``."""
    if "/" in text:
        return text
    host, separator, port = text.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"AFFIX_CLAMD must be a unix socket's path or host:port, not {text!r}")
    return host.strip("[]"), int(port)


def _connected(address: str, timeout: float, command: bytes) -> socket.socket:
    """A connection to clamd that sent ``command``."""
    target = clamd_address(address)
    connection = None
    try:
        if isinstance(target, str):
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.settimeout(timeout)
            connection.connect(target)
        else:
            connection = socket.create_connection(target, timeout=timeout)
        connection.sendall(command)
    except OSError as error:
        if connection is not None:
            connection.close()
        raise ScannerUnavailable(f"clamd at {address} cannot be reached: {error}") from None
    return connection


def _reply(connection: socket.socket) -> str:
    """clamd's answer to the command sent on ``connection``, up to its closing NUL."""
    received = b""
    while not received.endswith(b"\0") and len(received) < _MAX_REPLY:
        data = connection.recv(_MAX_REPLY)
        if not data:
            break
        received += data
    return received.rstrip(b"\0").decode("utf-8", "replace").strip()


class ClamdStream:
    """One INSTREAM scan: connected when made, fed with :meth:`send`, answered by
    :meth:`finish`. Every failure is a :class:`ScannerUnavailable`."""

    def __init__(self, address: str, timeout: float) -> None:
        self._socket = _connected(address, timeout, b"zINSTREAM\0")
        self._address = address

    def send(self, chunk: bytes) -> None:
        if not chunk:
            # a chunk of length 0 would end the stream
            return
        try:
            self._socket.sendall(struct.pack(">I", len(chunk)))
            self._socket.sendall(chunk)
        except OSError as error:
            # clamd closes the stream when it exceeds its StreamMaxLength, saying why first
            raise self._reason(f"sending to clamd at {self._address} failed: {error}") from None

    def finish(self) -> str | None:
        """The name of the signature clamd found, or None for a clean stream."""
        try:
            self._socket.sendall(_END_OF_STREAM)
        except OSError as error:
            raise self._reason(f"sending to clamd at {self._address} failed: {error}") from None
        try:
            reply = _reply(self._socket)
        except OSError as error:
            raise ScannerUnavailable(f"clamd at {self._address} did not answer: {error}") from None
        finally:
            self.close()
        if not reply:
            raise ScannerUnavailable(
                f"clamd at {self._address} closed the connection without an answer")
        if reply == "stream: OK":
            return None
        if reply.startswith("stream: ") and reply.endswith(" FOUND"):
            return reply[len("stream: "):-len(" FOUND")]
        raise ScanRefused(f"clamd at {self._address} answered {reply!r}")

    def _reason(self, fallback: str) -> ScannerUnavailable:
        try:
            reply = _reply(self._socket)
        except OSError:
            reply = ""
        finally:
            self.close()
        if not reply:
            return ScannerUnavailable(fallback)
        return ScanRefused(f"clamd at {self._address} answered {reply!r}")

    def close(self) -> None:
        sock = getattr(self, "_socket", None)
        if sock is not None:
            sock.close()


class ClamdScanner:
    """Where clamd is and how long to wait for it."""

    def __init__(self, address: str, timeout: float) -> None:
        self.address = address
        self.timeout = timeout

    def stream(self) -> ClamdStream:
        return ClamdStream(self.address, self.timeout)

    def version(self) -> str:
        """What clamd says it is (``ClamAV 1.0.7/27480/...``): that it answers now."""
        connection = _connected(self.address, self.timeout, b"zVERSION\0")
        try:
            reply = _reply(connection)
        except OSError as error:
            raise ScannerUnavailable(f"clamd at {self.address} did not answer: {error}") from None
        finally:
            connection.close()
        if not reply.startswith("ClamAV "):
            # something else listens there (a web server, another daemon's socket)
            raise ScannerUnavailable(f"clamd at {self.address} answered {reply[:80]!r} to "
                                     "VERSION: is that clamd?")
        return reply

    def scan_file(self, file: BinaryIO) -> str | None:
        """Scan a binary file object: the signature found, or None when clean."""
        stream = self.stream()
        try:
            while chunk := file.read(READ_SIZE):
                stream.send(chunk)
            return stream.finish()
        finally:
            stream.close()


def refusal(finding: str) -> str:
    return f"The file was refused: the virus scanner found {finding} in it."


class ClamavInspector:
    """Streams one upload's file part to clamd as it arrives (see ``affix_inspect_upload``)."""

    def __init__(self, scanner: ClamdScanner, accept_unscanned: bool) -> None:
        self._accept_unscanned = accept_unscanned
        self._stream: ClamdStream | None = None
        try:
            self._stream = scanner.stream()
        except ScannerUnavailable as error:
            self._unscanned(error)

    def _unscanned(self, error: ScannerUnavailable) -> None:
        if not self._accept_unscanned:
            raise error
        log.warning("%s; the upload is kept unscanned, for affix scan", error)
        self.close()
        self._stream = None

    def feed(self, chunk: bytes) -> None:
        if self._stream is not None:
            try:
                self._stream.send(chunk)
            except ScannerUnavailable as error:
                self._unscanned(error)

    def verdict(self, upload: UploadCandidate) -> ScanPassed | str | None:
        if self._stream is None:
            return None
        try:
            finding = self._stream.finish()
        except ScannerUnavailable as error:
            self._unscanned(error)
            return None
        return SCANNED if finding is None else refusal(finding)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


class ClamavPlugin:
    """Scans every upload while it streams (``AFFIX_SCAN_MODE=stream``); registered by
    :func:`~affix.app.composition.compose` when the settings ask for it."""

    def __init__(self, scanner: ClamdScanner, accept_unscanned: bool) -> None:
        self.scanner = scanner
        self.accept_unscanned = accept_unscanned

    @hookimpl
    def affix_inspect_upload(self) -> ClamavInspector:
        return ClamavInspector(self.scanner, self.accept_unscanned)
