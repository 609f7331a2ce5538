"""``affix upload``'s fastest way to an S3-backed affix: a direct upload in parts
(:mod:`affix.app.uploads.direct_parts` on the server). The file's parts go straight to the
bucket, ``parallel`` of them at once, each to a URL affix signs for that part; one progress
bar counts the file. The state file remembers the upload as soon as it is prepared: the same
command run again after an interruption (Ctrl-C, a killed process, a dropped connection) asks
the server which parts the bucket holds and sends only the others.
"""
import concurrent.futures
import dataclasses
import json
import threading
import urllib.parse

import requests

from affix.app.client.uploads import (
    ANSWER_TIMEOUT, SEND_TIMEOUT, Body, FileSlice, ResumeState, Stopped, Uploaded, UploadError,
    expect, finishing, raise_failure,
)

# part URLs asked for at once (more when more parts go at once); they are asked for shortly
# before their parts go, so that none expires waiting
URL_BATCH = 16
# what the server answers for an upload it no longer has (completed, cleaned up, deleted)
GONE = (404, 410)


def parts_state_key(root, path, work_package, description) -> str:
    """The state file's key of this file's upload in parts (not a tus upload's)."""
    return json.dumps(["direct-parts", ResumeState.upload_key(root, path, work_package,
                                                             description)])


class PartsUpload:
    """One file's upload in parts, by ``uploader`` (an
    :class:`~affix.app.client.uploads.Uploader`, whose session carries the key)."""

    def __init__(self, uploader, path, size, parallel=1):
        self.uploader = uploader
        self.path, self.size, self.parallel = path, size, parallel
        self._lock = threading.Lock()
        # set when the parts in flight are to end: one failed, or the user stopped the command
        self.stopping = threading.Event()

    def resume(self, parts_url):
        """The server's account of the upload at ``parts_url`` (the UploadParts), or None
        when it no longer has it."""
        response = self.uploader.session.get(parts_url, timeout=ANSWER_TIMEOUT)
        if response.status_code in GONE:
            return None
        return expect(response, 200).json()

    def send(self, parts: dict) -> dict:
        """Send every part the bucket lacks according to ``parts`` (an UploadParts or the
        AttachmentUpload of the preparation), ``parallel`` at a time, then complete the
        upload; the attachment's answer. The first failed part (or Ctrl-C) stops the others
        after the block they are sending, and starts no more; it is raised."""
        held = {part["partNumber"] for part in parts.get("parts", ())
                if part["size"] == self._length(parts, part["partNumber"])}
        missing = [number for number in range(1, parts["partCount"] + 1) if number not in held]
        done = sum(self._length(parts, number) for number in held)
        self.stopping.clear()
        with self.uploader.progress(self.path.name, self.size, done) as bar, \
                concurrent.futures.ThreadPoolExecutor(self.parallel) as pool:
            in_flight: set[concurrent.futures.Future] = set()
            try:
                for part in self._signed(parts, missing):
                    if len(in_flight) == self.parallel:
                        in_flight = self._one_finished(in_flight)
                    in_flight.add(pool.submit(self._put, part, parts["partSize"], bar))
                while in_flight:
                    in_flight = self._one_finished(in_flight)
            finally:
                self.stopping.set()
        return expect(self.uploader.session.get(
            urllib.parse.urljoin(self.uploader.root + "/",
                                 parts["_links"]["completeUpload"]["href"]),
            timeout=finishing(self.size)), 200)

    @staticmethod
    def _one_finished(in_flight):
        """The parts still in flight once one has ended. When one failed, the others (told to
        stop by the failed part) are waited for, and the failure that stopped them is raised,
        not one of theirs."""
        finished, in_flight = concurrent.futures.wait(
            in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
        if any(future.exception() is not None for future in finished):
            concurrent.futures.wait(in_flight)
            raise_failure([*finished, *in_flight])
        return in_flight

    def _signed(self, parts, numbers):
        """The signed UploadPart of each of ``numbers``, asked for shortly before it goes (so
        that none expires waiting), enough at a time to keep ``parallel`` parts in flight."""
        urls_href = parts["_links"]["partUrls"]["href"].split("{", 1)[0]
        batch_size = max(URL_BATCH, self.parallel)
        for first in range(0, len(numbers), batch_size):
            batch = numbers[first:first + batch_size]
            yield from expect(self.uploader.session.get(
                urllib.parse.urljoin(self.uploader.root + "/", urls_href),
                timeout=ANSWER_TIMEOUT, params={"partNumbers": ",".join(map(str, batch))}),
                200).json()["parts"]

    def _length(self, parts, number):
        return min(parts["partSize"], self.size - (number - 1) * parts["partSize"])

    def _put(self, part, part_size, bar):
        offset = (part["partNumber"] - 1) * part_size

        def sent(count):
            # raised between two blocks of the body: the request is abandoned, its connection
            # closed, and the bucket keeps nothing of a part cut short
            if self.stopping.is_set():
                raise Stopped()
            with self._lock:
                bar.update(count)
        try:
            # the bucket is not affix: no API key goes there
            answer = requests.put(
                part["href"], data=Body([FileSlice(self.path, offset, part["size"])], sent),
                timeout=(ANSWER_TIMEOUT, SEND_TIMEOUT))
            if not answer.ok:
                raise UploadError(f"the object store answered {answer.status_code} "
                                  f"{answer.reason} to part {part['partNumber']}")
        except BaseException:
            # the other parts stop now, not once the main thread hears of this one (it may be
            # waiting for the next batch of URLs)
            self.stopping.set()
            raise


def offers_parts(prepared) -> bool:
    """Whether a preparation's answer is an upload in parts (not a form's)."""
    return prepared is not None and "uploadParts" in prepared["_links"]


def prepared_in_parts(uploader, path, size, work_package, container_path, description):
    """(state key, what the server answered): the upload in parts of this file that an earlier
    run began and the server still has (its UploadParts), else a new preparation asking for
    parts: an AttachmentUpload in parts, or a form's where the server has no uploads in parts,
    or None where it has no direct uploads."""
    key = parts_state_key(uploader.root, path, work_package, description)
    parts_url = uploader.state.upload_url(key)
    if isinstance(parts_url, str):
        held = PartsUpload(uploader, path, size).resume(parts_url)
        if held is not None:
            return key, held
        uploader.state.forget(key)
    prepared = uploader.prepare_direct(path, size, container_path, description, parts=True)
    if offers_parts(prepared):
        uploader.state.remember(key, urllib.parse.urljoin(
            uploader.root + "/", prepared["_links"]["uploadParts"]["href"]))
    return key, prepared


def upload_in_parts(uploader, key, path, size, parts, parallel) -> Uploaded:
    """The file uploaded in parts, ``parallel`` at once, as ``parts`` (what
    :func:`prepared_in_parts` answered) leaves them to send."""
    try:
        completed = PartsUpload(uploader, path, size, parallel).send(parts)
    except UploadError as error:
        if error.refused:
            # the server ended the upload: the next run starts afresh
            uploader.state.forget(key)
        raise
    return dataclasses.replace(uploader.uploaded_from(completed, "direct-parts"), state_key=key)
