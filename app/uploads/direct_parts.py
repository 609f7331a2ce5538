"""Direct uploads in parts (issue #29): an extension of OpenProject's prepare/complete flow in
which the client sends a file's parts straight to the bucket, several at once, and resumes
after any interruption.

1. ``prepare`` with ``"parts": true`` in the declaration: affix opens a multipart upload at a
   new staged key and answers how the file is cut (``partSize``, ``partCount``, chosen within
   S3's rules) and where to ask for part URLs; no form.
2. ``GET .../parts/urls?partNumbers=1,2,3``: a pre-signed UploadPart per part, bound to this
   upload, that part number and its exact length, expiring soon
   (``AFFIX_DIRECT_PART_URL_EXPIRY``). The client PUTs each part to its URL.
3. ``GET .../parts``: the parts the bucket holds (ListParts): what a client resuming after an
   interruption still has to send.
4. ``GET .../uploaded``, as for a form's upload: affix joins the parts the bucket reports
   (CompleteMultipartUpload) when they are exactly the declared file's, then finishes the upload
   as a form's (:mod:`affix.app.uploads.direct`). Parts that are not the file's are a refusal,
   which ends the upload as any refusal does.

Only the author sees any of it (404 for everyone else, and for an upload that is no longer
prepared or was not prepared in parts).
"""
import dataclasses
import datetime
from typing import Any

from affix.app.errors import InvalidQuery, not_found, property_violation
from affix.storage.s3_direct_parts import HeldPart, PartPlan

# part URLs per request: a client asks again for the next ones as it goes
MAX_URLS_PER_REQUEST = 100


def held_as_planned(plan: PartPlan, held) -> list[str]:
    """What is wrong with the parts ``held`` (by number) for the file of ``plan``; nothing
    when they are the whole file."""
    problems = []
    numbers = [part.number for part in held]
    missing = sorted(set(range(1, plan.count + 1)) - set(numbers))
    if missing:
        problems.append(f"part{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(map(str, missing[:10]))}{'...' if len(missing) > 10 else ''}"
                        f" of {plan.count} not uploaded")
    for part in held:
        if part.number > plan.count:
            problems.append(f"part {part.number} is beyond the {plan.count} parts of the file")
        elif part.size != plan.length(part.number):
            problems.append(f"part {part.number} has {part.size} bytes, not "
                            f"{plan.length(part.number)}")
    return problems


def join_parts(parts, record) -> None:
    """Join the parts the bucket holds of ``record``'s upload into its staged object; a
    refusal (422 on ``fileSize``) when they are not exactly the declared file's.
    ``FileNotFoundError`` when the upload is not open (joined or aborted before)."""
    plan = PartPlan.for_size(record.file_size)
    held = parts.held_parts(record.storage_key)
    problems = held_as_planned(plan, held)
    if problems:
        raise property_violation(
            "fileSize", f"The uploaded parts are not the file declared: {'; '.join(problems)}.")
    parts.join(record.storage_key, held)


def parse_part_numbers(text, plan: PartPlan) -> list[int]:
    """The part numbers of a ``partNumbers`` query (``1,2,3``); 400 InvalidQuery for any
    other text, a number outside the file's parts or more than :data:`MAX_URLS_PER_REQUEST`."""
    words = [word.strip() for word in (text or "").split(",")]
    # ASCII digits: str.isdigit() takes "²", which int() refuses
    if not all(word.isascii() and word.isdigit() for word in words):
        raise InvalidQuery("partNumbers must be part numbers separated by commas (1,2,3).")
    # one of more digits than the count of parts lies past the last part, whatever it is
    # (never converted: Python refuses numbers of over 4,300 digits)
    past = any(len(word.lstrip("0")) > len(str(plan.count)) for word in words)
    numbers = sorted({int(word) for word in words}) if not past else []
    if past or numbers[0] < 1 or numbers[-1] > plan.count:
        raise InvalidQuery(f"partNumbers must lie between 1 and {plan.count}, the parts of "
                           "this file.")
    if len(numbers) > MAX_URLS_PER_REQUEST:
        raise InvalidQuery(f"At most {MAX_URLS_PER_REQUEST} partNumbers at a time.")
    return numbers


@dataclasses.dataclass(frozen=True)
class PartUrls:
    record: object
    plan: PartPlan
    urls: dict
    expires_at: datetime.datetime


@dataclasses.dataclass(frozen=True)
class HeldParts:
    record: object
    plan: PartPlan
    held: list


class DirectPartUploads:
    """The parts of prepared uploads in parts, for their authors: ``direct_uploads`` is the
    :class:`~affix.app.uploads.direct.DirectUploads` that prepares and completes them."""

    def __init__(self, direct_uploads):
        self.direct_uploads = direct_uploads
        self.service = direct_uploads.service
        self._parts = direct_uploads.parts

    def part_urls(self, user, attachment_id, part_numbers) -> PartUrls:
        record, plan, upload_lifetime = self._prepared_in_parts(user, attachment_id)
        numbers = parse_part_numbers(part_numbers, plan)
        # no URL outlives the upload it is for
        lifetime = min(self._parts.url_lifetime, upload_lifetime)
        # the moment of signing, on the app's clock: the URLs expire that long after it
        signed_at = self.service.clock()
        try:
            urls = self._parts.part_urls(record.storage_key, plan, numbers, lifetime)
        except FileNotFoundError:
            raise not_found() from None
        return PartUrls(record, plan, urls, signed_at + datetime.timedelta(seconds=lifetime))

    def held(self, user, attachment_id) -> HeldParts:
        record, plan, _ = self._prepared_in_parts(user, attachment_id)
        try:
            held = self._parts.held_parts(record.storage_key)
        except FileNotFoundError:
            held = self._joined(record, plan)
        return HeldParts(record, plan, held)

    def _joined(self, record, plan) -> list:
        """Every part, held, when a completion that failed after joining them left the whole
        file at the staged key (the upload waits for the completion's repeat); 404 when there
        is neither an open upload nor that file."""
        try:
            size = self.direct_uploads.staged_size(record.storage_key)
        except FileNotFoundError:
            raise not_found() from None
        if size != record.file_size:
            raise not_found()
        return [HeldPart(number, plan.length(number), "") for number in range(1, plan.count + 1)]

    def _prepared_in_parts(self, user, attachment_id) -> tuple[Any, PartPlan, int]:
        """(row, plan, seconds left) of the author's upload in parts while it waits for its
        file, as :meth:`~affix.app.uploads.direct.DirectUploads.pending` finds it (not
        expired, and its author still may upload); 404 for anything else."""
        _, _, prepared = self.direct_uploads.pending(user, attachment_id)
        if prepared.plan is None:
            raise not_found()
        return prepared.record, prepared.plan, prepared.lifetime
