"""What every blob store is: the interface the app and the commands use, the errors a store
raises, and how a store names a blob.

An upload is written into a *staged* blob, invisible to readers. ``commit`` makes it permanent
under a key that the store chooses (never derived from client input); ``discard`` removes it. So
a failed upload leaves nothing behind, and a crash mid-upload leaves only staging debris.
"""
import datetime
import re
import secrets
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

if TYPE_CHECKING:
    from affix.storage.partials import PartialStore
    from affix.storage.s3_direct_parts import HeldPart, PartPlan

# keys spread over 256 prefixes named by two hex digits (folders in a local store)
FAN_OUT = tuple(f"{number:02x}" for number in range(256))


class StorageError(Exception):
    """A blob store failed; the message says how, and the cause is chained."""


class StoreUnavailable(StorageError):
    """The store is out of reach or failing on its side: worth trying again later."""


class StoreFull(StorageError):
    """The store has no room left for the blob."""


# <2 hex>/<token starting with them>; and the layout of earlier versions,
# <2 hex>/<2 hex>/<token starting with both>, whose blobs stay where they are
_STORAGE_KEY = re.compile(r"([0-9a-f]{2})/(?:\1[0-9a-f]{30}|([0-9a-f]{2})/\1\2[0-9a-f]{28})")


# what a store's probe writes and removes (``affix check``)
PROBE_BYTES = b"affix probe\n"


def new_storage_key() -> str:
    """A random, content-independent key under one of the :data:`FAN_OUT` prefixes."""
    token = secrets.token_hex(16)
    return f"{token[:2]}/{token}"


def is_storage_key(key: str) -> bool:
    """Whether ``key`` is one :func:`new_storage_key` could have made: the only keys a store
    lists as its blobs, and so the only ones ``affix gc`` may ever remove."""
    return _STORAGE_KEY.fullmatch(key) is not None


class StagedBlob(Protocol):
    def write(self, data: bytes) -> None:
        """Append ``data``."""

    def commit(self) -> str:
        """Make the blob durable and permanent; returns its storage key."""

    def discard(self) -> None:
        """Remove what was written. Best effort: it runs while another error is on its way,
        which it never replaces; what it cannot remove, the staging sweep will."""


class BlobStore(Protocol):
    """Every store. What a store can do beyond this, it declares by the protocols it also
    follows (:class:`TakesDirectUploads`): the app asks for an ability, never for a kind of
    store."""

    def stage(self) -> StagedBlob:
        """A new staged blob to write an upload into."""

    def open(self, key: str) -> BinaryIO:
        """The committed blob ``key``, for reading; ``FileNotFoundError`` when it is gone."""

    def delete(self, key: str) -> None:
        """Remove the committed blob ``key``; nothing happens when it is gone already."""

    def download_url(self, key: str, content_type: str, content_disposition: str) -> str | None:
        """A URL where the store serves ``key`` itself with these headers, or None when the
        app serves the bytes."""

    def stored_blobs(self) -> Iterator[tuple[str, datetime.datetime]]:
        """(key, last modified as naive UTC) of every committed blob; staging is not listed."""

    def sweep_staging(self, cutoff: datetime.datetime | None = None,
                      keep: frozenset[str] = frozenset()) -> int:
        """Remove what interrupted uploads left in staging (with ``cutoff``, only what is
        older), but none of the multipart uploads in ``keep`` (those of resumable uploads
        still going on); returns how many."""

    def check_reachable(self) -> None:
        """Raise a :class:`StorageError` unless blobs can be stored now (one cheap call)."""

    def probe(self) -> None:
        """Write a few bytes where the store writes, and remove them: a :class:`StorageError`
        unless writing works now (``affix check``: permissions a cheap call cannot see)."""

    def partial_store(self) -> "PartialStore":
        """Where the store keeps the bytes of resumable uploads in progress."""


class UploadStaging(Protocol):
    """Where clients upload to a store themselves, with forms that live ``form_lifetime``
    seconds: a staged key holds nothing affix has checked until :meth:`promote`."""

    form_lifetime: int

    def new_key(self) -> str:
        """A new staged key (never a storage key)."""

    def form(self, staged_key: str, size: int,
             lifetime: int | None = None) -> tuple[str, dict[str, str]]:
        """(URL, form fields) of a form that stores exactly ``size`` bytes at
        ``staged_key``, and nothing anywhere else, for ``lifetime`` seconds (at most, and by
        default, ``form_lifetime``)."""

    def staged_size(self, staged_key: str) -> int:
        """The size of what was uploaded to ``staged_key``; ``FileNotFoundError`` for
        nothing."""

    def promote(self, staged_key: str) -> str:
        """Make what was uploaded to ``staged_key`` a blob of a new storage key; that key."""

    def discard(self, staged_key: str) -> None:
        """Remove what was uploaded to ``staged_key``, if anything."""

    def sweep(self, cutoff: datetime.datetime) -> int:
        """Remove staged uploads last written before ``cutoff``; how many."""


@runtime_checkable
class TakesDirectUploads(BlobStore, Protocol):
    """A store that clients can send an upload to themselves, by a form of the store's own."""

    def upload_staging(self, form_lifetime: int) -> UploadStaging:
        """Its staging for uploads by forms that live ``form_lifetime`` seconds."""


class PartStaging(Protocol):
    """Where clients upload a file to a store themselves in parts, several at once, each by a
    URL that lives ``url_lifetime`` seconds (an S3 multipart upload): nothing at a staged key
    until :meth:`join`, which leaves what :meth:`UploadStaging.promote` takes."""

    url_lifetime: int

    def new_key(self) -> str:
        """A new staged key (never a storage key) for an upload in parts."""

    def owns(self, staged_key: str) -> bool:
        """Whether ``staged_key`` is one of :meth:`new_key`'s."""

    def start(self, staged_key: str) -> None:
        """Open the upload at ``staged_key``."""

    def part_urls(self, staged_key: str, plan: "PartPlan", numbers: Iterable[int],
                  lifetime: int) -> dict[int, str]:
        """{number: URL} that uploads exactly part ``number`` of ``plan``, each living
        ``lifetime`` seconds; ``FileNotFoundError`` when the upload is not open."""

    def held_parts(self, staged_key: str) -> "list[HeldPart]":
        """The parts stored so far (``number``, ``size``, ``etag``), by number."""

    def join(self, staged_key: str, parts: "list[HeldPart]") -> None:
        """Make ``parts`` the object at ``staged_key``; the upload is closed from then on."""


@runtime_checkable
class TakesDirectPartUploads(TakesDirectUploads, Protocol):
    """A store that takes direct uploads in parts too."""

    def part_staging(self, url_lifetime: int) -> PartStaging:
        """Its staging for uploads in parts by URLs that live ``url_lifetime`` seconds."""
