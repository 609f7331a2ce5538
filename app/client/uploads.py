"""``affix upload``: the client side of affix's ways in, for people at a terminal.

For each file it takes the fastest way the server offers (``--way auto``): a direct upload in
parts straight to the bucket, several parts at once, where ``prepare`` offers one
(:mod:`affix.app.client.direct_parts`); else OpenProject's direct upload to object storage where
it answers a form; else tus (resumable) when ``OPTIONS`` on the tus endpoint says so; else the
plain multipart upload every OpenProject answers. ``--way`` forces one of them. The same command
run again after Ctrl-C, a dropped connection or a passing fault goes on where it stopped: a
state file remembers each tus upload's URL as soon as it exists (the server is asked how far it
got, and only the rest is sent) and the attachment of each file the command uploaded already;
run again once it finished, it reports those attachments instead of making new ones. A refusal
that the same command would meet again (a wrong key, a refused file) says what to fix instead.

The API key comes from the environment or a config file, never from the command line, where
``ps`` would show it to every user of the machine.
"""
import base64
import contextlib
import copy
import dataclasses
import fcntl
import hashlib
import json
import os
import secrets
import shlex
import ssl
import threading
import time
import tomllib
import urllib.parse
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm

from affix.app.sizes import size_text
from affix.app.xdg import xdg_folder

KEY_VARIABLE = "AFFIX_API_KEY"
CONFIG_FILE = Path("affix", "client.toml")
STATE_FILE = Path("affix", "uploads.json")
TUS_VERSION = "1.0.0"
API = "/api/v3"
# what one tus PATCH carries: a server that drops a PATCH cut short costs at most this much; under
# deploy/nginx.conf's limit (6m, for the default AFFIX_MAX_ATTACHMENT_SIZE of 5 MiB), with room
# for the headers, whatever size of file the server is set to take
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
# parts of one large file in flight at once: tus partial uploads the server joins
# (concatenation), or parts sent straight to the bucket; docs/guides/tus-parallel.md and
# docs/guides/direct-parallel-uploads.md give the measurements
DEFAULT_PARALLEL = 4
# more threads than this only wait for each other's bandwidth
MAX_PARALLEL = 64
# the smallest piece tried after a 413 (a proxy's body limit) for a larger one: a server that
# refuses even this much takes no tus upload
SMALLEST_CHUNK_SIZE = 64 * 1024
# what one write to the socket carries, and how often the progress bar moves
SEND_BLOCK = 1024 * 1024
# for the answers that carry no file: a server that says nothing for this long is gone
ANSWER_TIMEOUT = 60
# how long a file's bytes may wait for the server to take them
SEND_TIMEOUT = 300
# the slowest a server is expected to read a file back when it finishes an upload (for its md5,
# type and virus scan): the answer to the request that finishes it may take that long
READ_BACK_RATE = 5 * 1000 * 1000
# the seconds to wait before each new try of a tus PATCH answered 423 (another request, a
# PATCH of ours cut short whose server side still reads, holds the upload): a minute in all
LOCKED_WAITS = (2, 4, 8, 16, 32)
# OpenProject's (and affix's) answer to prepare when uploads cannot go to the store directly
DIRECT_UPLOAD_NOT_AVAILABLE = "Direct file upload is not available"
# the finished commands whose attachments the state file keeps, the latest ones
FINISHED_COMMANDS_KEPT = 1000
# what to fix after a refusal the same command would meet again, by the answer's status; "{key}"
# is where the key came from. Any other 4xx is a refusal of that kind too; a 5xx, a 408, 409,
# 423 or 429, no answer, or damaged bytes pass, and the same command goes on.
FIXES = {
    401: "the server refused the key: check {key}",
    403: "the key's user lacks a permission this upload needs: ask an admin of the server",
    404: "the server has no such work package or API: check --work-package and --url",
    413: "the file is larger than the server, or a proxy in front of it, takes",
}
OTHER_REFUSAL = "the server refuses this file: the same command would be refused again"
PASSING_STATUSES = (408, 409, 423, 429)
# --way: the fastest the server offers, or one forced
WAYS = ("auto", "direct-parts", "direct", "tus", "multipart")
OTHER_WAY = "force another --way, or none: the default takes the fastest the server offers"


class UploadError(Exception):
    """One file could not be uploaded; the message is what the user reads. ``status``: the
    server's answer, when it refused the request."""

    def __init__(self, message, status=None, fix=None):
        super().__init__(message)
        self.status = status
        # what to change, where it is not the server's answer that says it
        self._fix = fix

    @property
    def refused(self) -> bool:
        """Whether the same command would meet this again (any fault that passes is no
        refusal)."""
        return self._fix is not None or not (
            self.status is None or self.status >= 500 or self.status in PASSING_STATUSES)

    def fix(self, key_origin) -> str | None:
        """What the user must change before the same command can succeed, or None when it may
        succeed as it is (the fault passes)."""
        if not self.refused:
            return None
        return self._fix or FIXES.get(self.status, OTHER_REFUSAL).format(key=key_origin)


class Stopped(Exception):
    """A thread sending one piece of a file beside others (a partial upload, a part) ended
    early, as another failed or the user stopped the command."""


def raise_failure(futures) -> None:
    """Raise the first failure of ``futures`` (each done) that is no :class:`Stopped`: the one
    that stopped the others, not one of theirs."""
    failures = [future.exception() for future in futures if future.exception() is not None]
    if failures:
        raise next((failure for failure in failures if not isinstance(failure, Stopped)),
                   failures[0])


# a TLS connection the client cannot make fails the same way every time: what to change
UNTRUSTED_CERTIFICATE = ("trust the certificate's CA with REQUESTS_CA_BUNDLE=/path/to/ca.pem, "
                         "or name the host the certificate is for in --url")
NO_TLS = "check --url: https:// only for a server (or a proxy) that speaks TLS"


def tls_error(root, error) -> UploadError:
    """A refusal that names why no TLS connection to ``root`` was made, from the ``ssl`` error
    that urllib3 wraps in ``error`` (its own text is a page of urllib3's internals)."""
    causes, seen = [error], set()
    while causes:
        cause = causes.pop()
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            return UploadError(f"{root} sent a certificate this client does not trust: "
                               f"{cause.verify_message}", fix=UNTRUSTED_CERTIFICATE)
        if isinstance(cause, ssl.SSLError):
            return UploadError(f"no TLS connection to {root}: {cause.reason or cause}",
                               fix=NO_TLS)
        causes += [cause.__cause__, cause.__context__, getattr(cause, "reason", None),
                   *(arg for arg in cause.args if isinstance(arg, BaseException))]
    return UploadError(f"no TLS connection to {root}", fix=NO_TLS)


class NoKey(Exception):
    """Neither the environment nor the config file holds an API key for the server."""


def server_root(url) -> str:
    """The server's root from what a user types: with or without a trailing slash or
    ``/api/v3``, so that every spelling shares one key and one resume state."""
    root = url.rstrip("/")
    if root.endswith(API):
        root = root[:-len(API)]
    parts = urllib.parse.urlsplit(root)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UploadError(f"--url is http://host/... or https://host/..., not {url!r}")
    return root


def api_key(environ, root) -> tuple[str, str]:
    """(the key, where it came from): ``AFFIX_API_KEY``, else the config file: the ``api_key``
    of the server's own table (``[servers."https://host"]``), else the file's top-level
    ``api_key``."""
    key = environ.get(KEY_VARIABLE, "").strip()
    if key:
        return key, KEY_VARIABLE
    path = xdg_folder(environ, "XDG_CONFIG_HOME", ".config") / CONFIG_FILE
    try:
        with open(path, "rb") as config:
            document = tomllib.load(config)
    except FileNotFoundError:
        document = {}
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise NoKey(f"cannot read {path}: {error}") from None
    server = document.get("servers", {}).get(root, {})
    key = server.get("api_key") or document.get("api_key")
    if not isinstance(key, str) or not key.strip():
        raise NoKey(f"no API key for {root}: set {KEY_VARIABLE}, or api_key in {path}")
    table = f'[servers."{root}"]' if server.get("api_key") else "the top level"
    return key.strip(), f"api_key in {path} ({table})"


class ResumeState:
    """What lets the same command go on where it stopped, in one JSON file: the tus upload URL
    of each unfinished upload (``uploads``, by server and file), and the attachment each file
    of a command became (``commands``, by the whole command, the latest
    ``FINISHED_COMMANDS_KEPT`` of them), so that running it again uploads none of them twice.
    Every change is a locked read-modify-write: two clients at once lose nothing."""

    def __init__(self, path: Path):
        self.path = path

    @staticmethod
    def upload_key(root, path: Path, work_package, description) -> str:
        # a changed file (size or mtime) is another file, and so is one bound for another
        # container or with another description: the tus upload already carries both
        return json.dumps([root, *file_identity(path), work_package, description])

    @staticmethod
    def command_key(root, paths, work_package, description) -> str:
        return json.dumps([root, [file_identity(path) for path in paths], work_package,
                           description])

    def upload_url(self, key):
        with self._section("uploads") as uploads:
            return uploads.get(key)

    def remember(self, key, upload_url):
        with self._section("uploads") as uploads:
            uploads[key] = upload_url

    def forget(self, key):
        with self._section("uploads") as uploads:
            uploads.pop(key, None)

    def change(self, key, change):
        """Remember ``change(what is remembered at key, or None)`` instead, in one hold of
        the file's lock (which threads of one run hold in turn, as other runs do)."""
        with self._section("uploads") as uploads:
            uploads[key] = change(uploads.get(key))

    def uploaded(self, command) -> dict:
        """{file as given: {"url", "way"}} of what ``command`` uploaded before it stopped."""
        with self._section("commands") as commands:
            return _well_formed(commands.get(command))

    def record_uploaded(self, command, path, url, way):
        with self._section("commands") as commands:
            # the latest command last: the oldest go first once there are too many
            uploaded = _well_formed(commands.pop(command, None))
            commands[command] = {**uploaded, str(path): {"url": url, "way": way}}
            for oldest in list(commands)[:-FINISHED_COMMANDS_KEPT]:
                del commands[oldest]

    def forget_uploaded(self, command, path):
        with self._section("commands") as commands:
            uploaded = _well_formed(commands.pop(command, None))
            uploaded.pop(str(path), None)
            if uploaded:
                commands[command] = uploaded

    def forget_command(self, command):
        with self._section("commands") as commands:
            commands.pop(command, None)

    @contextlib.contextmanager
    def _section(self, name):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                document = json.loads(self.path.read_text())
            except (FileNotFoundError, ValueError):
                document = {}
            # a lost state costs a fresh upload, never a failed command: so does one of
            # another shape
            if not isinstance(document, dict):
                document = {}
            found = document.get(name)
            if not isinstance(found, dict):
                found = {}
            # a copy to the bottom: a change to a command's entries is a change to write
            section = copy.deepcopy(found)
            yield section
            if section != found:
                document[name] = section
                written = self.path.with_suffix(".tmp")
                written.write_text(json.dumps(
                    {key: value for key, value in document.items() if value}, indent=1))
                os.replace(written, self.path)


def _well_formed(entries) -> dict:
    """A command's entries ({file: {"url", "way"}}) as the state file holds them, without any
    of another shape (the file edited by hand): a lost entry costs a fresh upload."""
    if not isinstance(entries, dict):
        return {}
    return {path: {"url": entry["url"], "way": entry["way"]} for path, entry in entries.items()
            if isinstance(entry, dict) and isinstance(entry.get("url"), str)
            and isinstance(entry.get("way"), str)}


def file_identity(path: Path) -> list:
    status = path.stat()
    return [str(path.resolve()), status.st_size, status.st_mtime_ns]


class FileSlice:
    """``length`` bytes of a file from ``offset``, read block by block as they are sent."""

    def __init__(self, path, offset, length):
        self.path, self.offset, self.length = path, offset, length

    def blocks(self):
        with open(self.path, "rb") as source:
            source.seek(self.offset)
            left = self.length
            while left:
                block = source.read(min(SEND_BLOCK, left))
                if not block:
                    raise UploadError(f"{self.path} became shorter while it was uploaded")
                left -= len(block)
                yield block


class Body:
    """A request body of known length (so it goes with Content-Length, which object stores
    require), sent from its parts block by block: bytes of framing (a form's boundaries), and
    slices of the file, each block of which ``sent`` hears of."""

    def __init__(self, parts, sent):
        self.parts = parts
        self.sent = sent

    def __len__(self):
        return sum(len(part) if isinstance(part, bytes) else part.length for part in self.parts)

    def __iter__(self):
        for part in self.parts:
            if isinstance(part, bytes):
                yield part
                continue
            for block in part.blocks():
                yield block
                if self.sent is not None:
                    self.sent(len(block))


def multipart(fields, file_part=None, sent=None):
    """(Body, Content-Type) of a form: ``fields`` ((name, text or (bytes, type))) in their
    order, then, if given, the part ``file`` from ``file_part``, a :class:`FileSlice`."""
    boundary = "affix-" + secrets.token_hex(16)
    parts = []
    for name, value in fields:
        data, content_type = value if isinstance(value, tuple) else (value.encode(), None)
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        parts.append(head.encode() + b"\r\n" + data + b"\r\n")
    if file_part is not None:
        file_name = urllib.parse.quote(Path(file_part.path).name)
        parts.extend([f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                      f'filename="{file_name}"\r\n'
                      "Content-Type: application/octet-stream\r\n\r\n".encode(),
                      file_part, b"\r\n"])
    parts.append(f"--{boundary}--\r\n".encode())
    return Body(parts, sent), f"multipart/form-data; boundary={boundary}"


def error_message(response) -> str:
    """What the server said went wrong: its HAL ``message`` (with the messages of a
    MultipleErrors), else the HTTP status."""
    try:
        document = response.json()
        message = document["message"]
    except (ValueError, KeyError, TypeError):
        return f"the server answered {response.status_code} {response.reason}"
    details = [error.get("message") for error in
               (document.get("_embedded") or {}).get("errors", ()) if isinstance(error, dict)]
    return " ".join([message, *filter(None, details)])


def expect(response, *statuses):
    if response.status_code not in statuses:
        raise UploadError(error_message(response), response.status_code)
    return response


def binary_size(count) -> str:
    """A count of bytes as a person reads it, in powers of 1024: ``512B``, ``16.0MiB``."""
    if count < 1024:
        return f"{count:.0f}B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        count /= 1024
        if count < 1024 or unit == "TiB":
            break
    return f"{count:.1f}{unit}"


def description_metadata(description) -> dict:
    """The metadata's ``description``, as OpenProject takes it, when there is one."""
    return {} if description is None else {"description": {"raw": description}}


def tus_metadata(pairs) -> str:
    return ",".join(f"{name} {base64.b64encode(value.encode()).decode()}"
                    for name, value in pairs if value is not None)


def attachment_link(response):
    """The attachment a finished tus upload became, from its ``Link: <...>; rel="attachment"``."""
    return urllib.parse.urljoin(response.url, response.links["attachment"]["url"])


def finishing(size):
    """The (connect, read) timeouts of a request whose answer waits for the server to read
    ``size`` bytes back."""
    return ANSWER_TIMEOUT, SEND_TIMEOUT + size / READ_BACK_RATE


def check_digest(path, uploaded):
    """The server's md5 of what it stored is the file's: whatever crossed the network, from
    however many runs of a resumed upload."""
    digest = uploaded.attachment.get("digest") or {}
    if digest.get("algorithm") != "md5":
        return
    with open(path, "rb") as source:
        local = hashlib.file_digest(source, "md5").hexdigest()
    if digest.get("hash") != local:
        raise UploadError(f"the server stored other bytes than the file holds (md5 "
                          f"{digest.get('hash')}, the file's {local}): {uploaded.url}")


@dataclasses.dataclass
class Uploaded:
    url: str
    attachment: dict
    way: str
    # the resume state's key of the upload that made it: forgotten once the command recorded
    # the attachment (a run stopped in between resumes that upload, which names it again)
    state_key: str | None = None


class Uploader:
    """Uploads files to one server, each the best way it offers."""

    def __init__(self, root, key, state: ResumeState, progress, chunk_size=DEFAULT_CHUNK_SIZE,
                 wait=time.sleep, way="auto", parallel=DEFAULT_PARALLEL):
        self.root = root
        self._key = key
        # one of WAYS; parallel: parts (or tus partial uploads) in flight at once
        self.way = way
        self.parallel = parallel
        # how the uploader waits (seconds) before it tries a locked upload again
        self.wait = wait
        self.session = requests.Session()
        self.session.auth = ("apikey", key)
        self.state = state
        self.progress = progress
        self.chunk_size = chunk_size
        self._tus_offered: bool | None = None
        self._tus_extensions: set[str] = set()
        self._direct_offered = None
        # the uploader whose chunk size this one's threads share (see sibling)
        self._origin = self
        self._shrinking = threading.Lock()

    def sibling(self) -> "Uploader":
        """An uploader like this one with a session of its own, for another thread; a chunk
        a proxy refuses as too large makes the chunks of all of them smaller."""
        sibling = Uploader(self.root, self._key, self.state, self.progress, self.chunk_size,
                           self.wait, way=self.way, parallel=self.parallel)
        sibling._origin = self._origin
        return sibling

    def close(self):
        self.session.close()

    def upload(self, path: Path, work_package=None, description=None) -> Uploaded:
        """The file uploaded the first way of ``self.way``'s that the server offers; a forced
        way it does not offer is an error. Its md5 is not checked yet, nor its upload's
        resume state forgotten (``state_key``): the command records the attachment first."""
        # opened before anything is sent: a file gone or unreadable is said to be so, not met
        # in the middle of a request (where it would read as the connection's failure)
        with open(path, "rb") as source:
            size = os.fstat(source.fileno()).st_size
        from affix.app.client.direct_parts import offers_parts, prepared_in_parts, upload_in_parts
        way = self.way
        container_path = f"{API}/work_packages/{work_package}" if work_package else API
        if way in ("auto", "direct-parts"):
            key, prepared = prepared_in_parts(self, path, size, work_package, container_path,
                                              description)
            if offers_parts(prepared):
                return upload_in_parts(self, key, path, size, prepared, self.parallel)
            if way == "direct-parts":
                if prepared is not None:
                    # a form nobody will send to
                    self.session.delete(urllib.parse.urljoin(
                        self.root + "/", prepared["_links"]["delete"]["href"]),
                        timeout=ANSWER_TIMEOUT)
                raise UploadError("the server takes no direct uploads in parts (--way "
                                  "direct-parts)", fix=OTHER_WAY)
            if prepared is not None:
                return self.upload_direct(path, size, prepared)
        if way == "direct":
            upload = self.prepare_direct(path, size, container_path, description)
            if upload is None:
                raise UploadError("the server takes no direct uploads (--way direct)",
                                  fix=OTHER_WAY)
            return self.upload_direct(path, size, upload)
        if way in ("auto", "tus"):
            if self.tus_offered():
                # here, not at the top: tus_parallel builds on this module
                from affix.app.client.tus_parallel import ParallelTusUpload, goes_in_parallel
                if ("concatenation" in self._tus_extensions
                        and goes_in_parallel(size, self.parallel)):
                    return ParallelTusUpload(self, self.parallel).upload(
                        path, size, work_package, description)
                return self.upload_tus(path, size, work_package, description)
            if way == "tus":
                raise UploadError("the server offers no tus uploads (--way tus)", fix=OTHER_WAY)
        return self.upload_multipart(path, size, container_path, description)

    def tus_offered(self) -> bool:
        """Whether the server has a tus 1.0 endpoint: asked once."""
        if self._tus_offered is None:
            response = self.session.options(f"{self.root}{API}/attachments/tus",
                                            timeout=ANSWER_TIMEOUT)
            versions = response.headers.get("Tus-Version", "").split(",")
            self._tus_offered = response.ok and TUS_VERSION in map(str.strip, versions)
            self._tus_extensions = {
                each.strip() for each in response.headers.get("Tus-Extension", "").split(",")}
        return self._tus_offered

    # --- tus --------------------------------------------------------------------------------

    def upload_tus(self, path, size, work_package, description) -> Uploaded:
        key = ResumeState.upload_key(self.root, path, work_package, description)
        upload_url, last = self._resumable(key, size)
        if upload_url is None:
            container = f"{API}/work_packages/{work_package}" if work_package else None
            last = expect(self.session.post(
                f"{self.root}{API}/attachments/tus", timeout=ANSWER_TIMEOUT, headers={
                    "Tus-Resumable": TUS_VERSION, "Upload-Length": str(size),
                    "Upload-Metadata": tus_metadata([("filename", path.name),
                                                     ("description", description),
                                                     ("container", container)])}), 201)
            upload_url = urllib.parse.urljoin(last.url, last.headers["Location"])
            self.state.remember(key, upload_url)
        offset = int(last.headers.get("Upload-Offset", 0))
        with self.progress(path.name, size, offset) as bar:
            # until an answer names the attachment: a HEAD after a finished upload does, and
            # the PATCH that brings the last byte (an empty one for an empty file)
            while "attachment" not in last.links:
                if last.request.method == "PATCH" and offset == size:
                    raise UploadError("the server finished the upload without naming its "
                                      "attachment")
                last = self.send_chunk(upload_url, path, size, offset,
                                       min(self.chunk_size, size - offset), bar)
                reached = int(last.headers["Upload-Offset"])
                if reached < offset or reached == offset < size:
                    raise UploadError(f"the server kept none of the bytes from {offset} on")
                offset = reached
        return dataclasses.replace(self.attachment_at(attachment_link(last), "tus"),
                                   state_key=key)

    def _resumable(self, key, size):
        """(upload URL, its HEAD answer) of the upload of this file the server still holds,
        else (None, None)."""
        upload_url = self.state.upload_url(key)
        if not isinstance(upload_url, str):
            # none, or the partial uploads of a parallel run (tus_parallel)
            return None, None
        response = self.held_tus_upload(upload_url, size)
        if response is None:
            self.state.forget(key)
            return None, None
        return upload_url, response

    def held_tus_upload(self, upload_url, size):
        """The HEAD answer of the tus upload at ``upload_url`` while the server holds it with
        a length of ``size``; None when it is gone, not the key's, or of another length."""
        response = self.session.head(upload_url, timeout=ANSWER_TIMEOUT,
                                     headers={"Tus-Resumable": TUS_VERSION})
        if response.status_code in (403, 404, 410):
            return None
        expect(response, 200, 204)
        if response.headers.get("Upload-Length") != str(size):
            return None
        return response

    def send_chunk(self, upload_url, path, size, offset, length, bar, file_start=0):
        """PATCH the ``length`` bytes at ``offset`` of the upload at ``upload_url`` (of
        ``size`` bytes, read from ``path`` from ``file_start`` on); the answer that says how
        far the upload is."""
        # no Upload-Checksum: a server drops a PATCH cut short whose checksum fails, and a
        # dropped connection would cost the whole chunk; the md5 of the whole file is checked
        # at the end instead
        headers = {"Tus-Resumable": TUS_VERSION, "Upload-Offset": str(offset),
                   "Content-Type": "application/offset+octet-stream"}
        waits = iter(LOCKED_WAITS)
        while True:
            bar.reset_to(offset)
            response = self.session.patch(
                upload_url, data=Body([FileSlice(path, file_start + offset, length)],
                                      bar.update),
                headers=headers, timeout=finishing(size))
            if response.status_code == 413 and length > SMALLEST_CHUNK_SIZE:
                # a proxy's body limit (affix's own is the file's size): tus takes pieces of
                # any size, and nothing of this one was kept. The proxy may close the
                # connection once it has answered: the next try goes on a new one
                length = self._smaller_pieces(length, bar)
                self.session.close()
                continue
            wait = next(waits, None) if response.status_code == 423 else None
            if wait is None:
                break
            # a server refuses a locked upload before it reads the body, and may close the
            # connection once it has answered: the next try goes on a new one
            self.session.close()
            self.wait(wait)
        if response.status_code == 409:
            # the server has other bytes than this client thinks (the answer to an earlier
            # PATCH got lost, or another client went on): it says how far it is, on a new
            # connection as after a 423
            self.session.close()
            return expect(self.session.head(upload_url, timeout=ANSWER_TIMEOUT,
                                            headers={"Tus-Resumable": TUS_VERSION}), 200, 204)
        return expect(response, 204)

    def _smaller_pieces(self, refused, bar) -> int:
        """Halves the pieces of this and every later upload of the run (and of the threads
        that upload the same file), and says so once."""
        origin = self._origin
        with origin._shrinking:
            smaller = max(SMALLEST_CHUNK_SIZE, refused // 2)
            if smaller < origin.chunk_size:
                origin.chunk_size = smaller
                bar.note(f"affix: the server refused a piece of {binary_size(refused)} as too "
                         f"large (413); going on with pieces of {binary_size(smaller)} "
                         f"(--chunk-size {size_text(smaller)} next time)")
            self.chunk_size = origin.chunk_size
        return self.chunk_size

    # --- direct upload ----------------------------------------------------------------------

    def prepare_direct(self, path, size, container_path, description, parts=False):
        """The prepared upload (its form, or with ``parts`` where the server takes them, how
        the file is cut; and where to complete it), or None when the server uploads nothing
        directly: a 422 that says so (OpenProject's message), or no route; then it is not
        asked again."""
        if self._direct_offered is False:
            return None
        declared = {"fileName": path.name, "fileSize": size, **description_metadata(description)}
        if parts:
            declared["parts"] = True
        body, content_type = multipart([("metadata", (json.dumps(declared).encode(),
                                                      "application/json"))])
        response = self.session.post(
            f"{self.root}{container_path}/attachments/prepare", data=body,
            headers={"Content-Type": content_type}, timeout=ANSWER_TIMEOUT)
        self._direct_offered = not (response.status_code in (404, 405) or (
            response.status_code == 422
            and error_message(response).startswith(DIRECT_UPLOAD_NOT_AVAILABLE)))
        return expect(response, 200, 201).json() if self._direct_offered else None

    def upload_direct(self, path, size, upload) -> Uploaded:
        form = upload["_links"]["addAttachment"]
        with self.progress(path.name, size, 0) as bar:
            body, content_type = multipart(list(form["form_fields"].items()),
                                           FileSlice(path, 0, size), bar.update)
            # the store is not affix: no API key goes there
            stored = requests.post(form["href"], data=body, timeout=(ANSWER_TIMEOUT, SEND_TIMEOUT),
                                   headers={"Content-Type": content_type})
            if not stored.ok:
                raise UploadError(f"the object store answered {stored.status_code} "
                                  f"{stored.reason}")
        completed = expect(self.session.get(
            urllib.parse.urljoin(self.root + "/", upload["_links"]["completeUpload"]["href"]),
            timeout=finishing(size)), 200)
        return self.uploaded_from(completed, "direct")

    # --- multipart --------------------------------------------------------------------------

    def upload_multipart(self, path, size, container_path, description) -> Uploaded:
        metadata = {"fileName": path.name, **description_metadata(description)}
        with self.progress(path.name, size, 0) as bar:
            body, content_type = multipart(
                [("metadata", (json.dumps(metadata).encode(), "application/json"))],
                FileSlice(path, 0, size), bar.update)
            response = self.session.post(
                f"{self.root}{container_path}/attachments", data=body,
                headers={"Content-Type": content_type}, timeout=finishing(size))
        # affix answers 200, as the spec says; OpenProject 201
        return self.uploaded_from(expect(response, 200, 201), "multipart")

    # --- the attachment ---------------------------------------------------------------------

    def earlier(self, url, way):
        """The attachment an earlier run of the command made, if the server still has it."""
        response = self.session.get(url, timeout=ANSWER_TIMEOUT)
        if response.status_code == 404:
            return None
        return self.uploaded_from(expect(response, 200), way)

    def attachment_at(self, attachment_url, way) -> Uploaded:
        return self.uploaded_from(
            expect(self.session.get(attachment_url, timeout=ANSWER_TIMEOUT), 200), way)

    def uploaded_from(self, response, way) -> Uploaded:
        attachment = response.json()
        url = urllib.parse.urljoin(response.url, attachment["_links"]["self"]["href"])
        return Uploaded(url=url, attachment=attachment, way=way)


class BinaryBar(tqdm):
    """tqdm with the bytes and the rate both in powers of 1024 (``16.0MiB/50.0MiB``,
    ``17.7MiB/s``): tqdm's own scale divides the rate by 1000 whatever the sizes' divisor."""

    BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {done}/{size} [{elapsed}<{remaining}, {speed}]"

    @property
    def format_dict(self):
        values = super().format_dict
        rate = values["rate"]
        if rate is None and values["elapsed"]:
            rate = (values["n"] - values["initial"]) / values["elapsed"]
        return {**values, "done": binary_size(values["n"]), "size": binary_size(values["total"]),
                "speed": "?B/s" if rate is None else f"{binary_size(rate)}/s"}


class ProgressBar:
    """A file's progress on a terminal (bytes, rate, time left); nothing when ``stream`` is
    not one, so that logs and pipes get no control codes."""

    def __init__(self, stream, name, total, initial):
        self.stream = stream
        self.bar = BinaryBar(total=total, initial=initial, desc=name, unit="B",
                             bar_format=BinaryBar.BAR_FORMAT, file=stream,
                             disable=not stream.isatty(), dynamic_ncols=True)

    def update(self, count):
        self.bar.update(count)

    def note(self, text):
        """A line for the user, above the bar (which is drawn again below it)."""
        self.bar.write(text, file=self.stream)

    def reset_to(self, offset):
        """Where the server says the upload stands: bytes sent but not kept are counted
        again."""
        if self.bar.n != offset:
            self.bar.n = offset
            self.bar.refresh()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.bar.close()


def progress_bars(stream):
    return lambda name, total, initial: ProgressBar(stream, name, total, initial)


def command_line(paths, url, work_package, description, as_json, chunk_size, way="auto",
                 parallel=DEFAULT_PARALLEL) -> str:
    """The ``affix upload`` of these arguments, as a user runs it again."""
    words = ["affix", "upload", *map(str, paths), "--url", url]
    if work_package is not None:
        words += ["--work-package", str(work_package)]
    if description is not None:
        words += ["--description", description]
    if as_json:
        words.append("--json")
    if chunk_size != DEFAULT_CHUNK_SIZE:
        words += ["--chunk-size", size_text(chunk_size)]
    if way != "auto":
        words += ["--way", way]
    if parallel != DEFAULT_PARALLEL:
        words += ["--parallel", str(parallel)]
    return shlex.join(words)


def upload_files(paths, url, *, work_package=None, description=None, as_json=False,
                 again=False, environ, out, err, chunk_size=DEFAULT_CHUNK_SIZE,
                 wait=time.sleep, way="auto", parallel=DEFAULT_PARALLEL) -> int:
    """``affix upload``: each file in turn, its attachment's URL on ``out`` as it is done (all
    of them as one JSON array with ``as_json``), what went wrong on ``err``. A file the same
    command uploaded before is not uploaded again but reported, unless ``again``. The exit
    status is 0 when every file was uploaded, 1 when one was not (or there is no key), 2 for a
    bad ``url`` or a path that is no readable file, 130 on Ctrl-C; every way out
    but the first says which files were uploaded, and either that the same command goes on
    from there, or, when the server refused what the same command would send again, what to
    fix."""
    # a URL or a FILE that is none is bad usage, as argparse's own refusals are
    try:
        root = server_root(url)
    except UploadError as error:
        print(f"affix: error: {error}", file=err)
        return 2
    paths = [Path(path) for path in paths]
    unreadable = [path for path in paths if not path.is_file() or not os.access(path, os.R_OK)]
    if unreadable:
        print(f"affix: error: not a readable file: {unreadable[0]}", file=err)
        return 2
    try:
        key, key_origin = api_key(environ, root)
    except NoKey as error:
        print(f"affix: error: {error}", file=err)
        return 1
    state = ResumeState(xdg_folder(environ, "XDG_STATE_HOME", ".local", "state") / STATE_FILE)
    command = ResumeState.command_key(root, paths, work_package, description)
    if again:
        state.forget_command(command)
    earlier = state.uploaded(command)
    uploader = Uploader(root, key, state, progress_bars(err), chunk_size, wait, way, parallel)
    results: list[dict[str, Any]] = []
    refused, reported = [], []

    def report_error(path, error):
        results.append({"file": str(path), "error": str(error)})
        fix = error.fix(key_origin)
        if fix is not None:
            results[-1]["fix"] = fix
            refused.append(path)
        print(f"affix: error: {path}: {error}" + (f"\n  {fix}" if fix else ""),
              file=err, flush=True)

    left = list(paths)
    try:
        while left:
            path = left[0]
            try:
                before = earlier.get(str(path))
                uploaded = uploader.earlier(**before) if before else None
                if uploaded is None:
                    uploaded = uploader.upload(path, work_package, description)
                    # before the upload's own state goes, and before the file is read again
                    # for its md5: a run stopped in between reports this attachment rather
                    # than making another
                    state.record_uploaded(command, path, uploaded.url, uploaded.way)
                    if uploaded.state_key is not None:
                        state.forget(uploaded.state_key)
                else:
                    reported.append(path)
                try:
                    check_digest(path, uploaded)
                except UploadError:
                    # damaged on the way: the next run uploads the file anew
                    state.forget_uploaded(command, path)
                    raise
            except requests.exceptions.SSLError as error:
                report_error(path, tls_error(root, error))
            except requests.RequestException as error:
                # the exception's text is a page of urllib3's internals
                results.append({"file": str(path),
                                "error": f"no answer from {root} ({type(error).__name__})"})
                print(f"affix: error: {path}: {results[-1]['error']}", file=err, flush=True)
            except UploadError as error:
                report_error(path, error)
            except OSError as error:
                if error.filename is None or Path(error.filename).resolve() != path.resolve():
                    raise
                # the file went, or became unreadable, after the command began: the next run
                # says so before it sends anything
                report_error(path, UploadError(f"the file could not be read: {error.strerror}"))
            else:
                results.append({"file": str(path), "url": uploaded.url, "way": uploaded.way,
                                "attachment": uploaded.attachment})
                if not as_json:
                    print(uploaded.url, file=out, flush=True)
            left.pop(0)
        interrupted = False
    except KeyboardInterrupt:
        interrupted = True
    finally:
        uploader.close()
    if as_json:
        print(json.dumps(results, indent=2), file=out, flush=True)
    done = [result["file"] for result in results if "url" in result]
    if len(done) == len(paths):
        if len(reported) == len(paths):
            print("affix: this command ran to the end before: these are the attachments it "
                  "made (--again uploads the files anew)", file=err)
        return 0
    listed = f" ({', '.join(done)})" if done else ""
    report = (f"affix: {'interrupted; ' if interrupted else ''}uploaded {len(done)} of "
              f"{len(paths)} file{'' if len(paths) == 1 else 's'}{listed}")
    if len(done) + len(refused) == len(paths):
        print(f"{report}; the server refused the rest, and the same command would meet the "
              "same refusal: fix what is said above first", file=err)
    else:
        print(f"{report}; to go on, run the same command again:\n  "
              + command_line(paths, url, work_package, description, as_json, chunk_size, way,
                             parallel),
              file=err)
    return 130 if interrupted else 1
