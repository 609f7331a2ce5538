"""One file over tus as several partial uploads at once, then the final upload that joins them
(tus's concatenation), for servers that advertise it: one PATCH at a time leaves a fast link,
and a server's cores, idle while each request waits for its answer.

The file is cut into ``parallel`` ranges, each a partial upload sent by a thread of its own,
with a session of its own, chunk by chunk as :meth:`Uploader.upload_tus` sends one. Each
partial upload's URL is remembered as soon as it exists, so that the same command, run again
after an interruption, asks the server how far each got and sends only the rest. One progress
bar counts the bytes of all of them.
"""
import concurrent.futures
import dataclasses
import threading
import urllib.parse

from affix.app.client.uploads import (
    ANSWER_TIMEOUT, API, TUS_VERSION, ResumeState, Stopped, Uploaded, UploadError,
    attachment_link, expect, finishing, raise_failure, tus_metadata,
)

# no partial upload is smaller: a file smaller than two of them goes up as one upload, where
# the requests a partial upload costs more than the parallel sending gains
MIN_PART_SIZE = 8 * 1024 * 1024
WAY = "tus-parallel"


def part_bounds(size, parallel) -> list[tuple[int, int]]:
    """(start, end) of each partial upload of a file of ``size`` bytes: ``parallel`` of them
    at most, none smaller than :data:`MIN_PART_SIZE`."""
    count = max(1, min(parallel, size // MIN_PART_SIZE))
    # an empty file: no part at all
    step = -(-size // count) or 1
    return [(start, min(start + step, size)) for start in range(0, size, step)]


def goes_in_parallel(size, parallel) -> bool:
    return len(part_bounds(size, parallel)) > 1


class SharedBar:
    """The file's one progress bar, moved by the threads of its partial uploads: each says
    where its own upload stands, the bar shows the sum."""

    def __init__(self, bar, offsets):
        self.bar = bar
        self.offsets = list(offsets)
        self.lock = threading.Lock()

    def of_part(self, index) -> "PartBar":
        return PartBar(self, index)


class PartBar:
    """What a partial upload's thread moves: its share of the :class:`SharedBar`."""

    def __init__(self, shared, index):
        self.shared, self.index = shared, index

    def update(self, count):
        with self.shared.lock:
            self.shared.offsets[self.index] += count
            self.shared.bar.update(count)

    def reset_to(self, offset):
        with self.shared.lock:
            self.shared.offsets[self.index] = offset
            self.shared.bar.reset_to(sum(self.shared.offsets))

    def note(self, text):
        with self.shared.lock:
            self.shared.bar.note(text)


def run_entry(entry, bounds) -> dict:
    """What the resume state remembers of a parallel run that cut the file into ``bounds``:
    ``entry`` when it is one, else a new one (for none, a run that cut the file otherwise with
    another --parallel, or an entry of another shape)."""
    if (isinstance(entry, dict) and entry.get("bounds") == bounds
            and isinstance(entry.get("partials"), list)
            and len(entry["partials"]) == len(bounds)
            and all(url is None or isinstance(url, str) for url in entry["partials"])):
        return entry
    return {"bounds": bounds, "partials": [None] * len(bounds)}


class ParallelTusUpload:
    """Uploads files through ``uploader`` (an :class:`~affix.app.client.uploads.Uploader`)
    as ``parallel`` partial uploads each, joined by a final one."""

    def __init__(self, uploader, parallel):
        self.uploader = uploader
        self.parallel = parallel
        self.endpoint = f"{uploader.root}{API}/attachments/tus"
        # set when one partial upload failed or the user stopped the command: the others
        # send no further chunk
        self._stopping = threading.Event()

    def upload(self, path, size, work_package, description) -> Uploaded:
        uploader = self.uploader
        key = ResumeState.upload_key(uploader.root, path, work_package, description)
        bounds = [list(each) for each in part_bounds(size, self.parallel)]
        found = uploader.state.upload_url(key)
        remembered = run_entry(found, bounds)
        if remembered is not found:
            uploader.state.remember(key, remembered)
        resumed = [self._resumable(url, end - start)
                   for url, (start, end) in zip(remembered["partials"], bounds)]
        offsets = [offset for _, offset in resumed]
        with uploader.progress(path.name, size, sum(offsets)) as bar:
            urls = self._send_parts(key, path, bounds, [url for url, _ in resumed], offsets,
                                    SharedBar(bar, offsets))
        container = f"{API}/work_packages/{work_package}" if work_package else None
        final = expect(uploader.session.post(self.endpoint, timeout=finishing(size), headers={
            "Tus-Resumable": TUS_VERSION, "Upload-Concat": "final;" + " ".join(urls),
            "Upload-Metadata": tus_metadata([("filename", path.name),
                                             ("description", description),
                                             ("container", container)])}), 201)
        return dataclasses.replace(uploader.attachment_at(attachment_link(final), WAY),
                                   state_key=key)

    def _resumable(self, url, length):
        """(URL, offset) of the partial upload the server still holds at ``url``, else
        (None, 0)."""
        response = None if url is None else self.uploader.held_tus_upload(url, length)
        if response is None:
            return None, 0
        return url, int(response.headers["Upload-Offset"])

    def _send_parts(self, key, path, bounds, urls, offsets, shared) -> list[str]:
        """Every partial upload sent to its end, each by a thread of its own; their URLs.
        The first failure stops the others after their chunk in flight, and is raised."""
        self._stopping.clear()
        with concurrent.futures.ThreadPoolExecutor(len(bounds)) as pool:
            futures = [pool.submit(self._send_part, key, index, path, bounds, url, offset,
                                   shared.of_part(index))
                       for index, (url, offset) in enumerate(zip(urls, offsets))]
            try:
                concurrent.futures.wait(futures,
                                        return_when=concurrent.futures.FIRST_EXCEPTION)
            finally:
                # Ctrl-C, or a failed partial upload: the others end after their chunk
                self._stopping.set()
        raise_failure(futures)
        return [future.result() for future in futures]

    def _send_part(self, key, index, path, bounds, url, offset, bar) -> str:
        start, end = bounds[index]
        length = end - start
        sender = self.uploader.sibling()
        try:
            if url is None:
                created = expect(sender.session.post(self.endpoint, timeout=ANSWER_TIMEOUT,
                                                     headers={
                    "Tus-Resumable": TUS_VERSION, "Upload-Length": str(length),
                    "Upload-Concat": "partial"}), 201)
                url = urllib.parse.urljoin(created.url, created.headers["Location"])
                self._remember(key, bounds, index, url)
            while offset < length:
                if self._stopping.is_set():
                    raise Stopped()
                answer = sender.send_chunk(url, path, length, offset,
                                           min(sender.chunk_size, length - offset), bar,
                                           file_start=start)
                reached = int(answer.headers["Upload-Offset"])
                if reached <= offset:
                    raise UploadError(f"the server kept none of the bytes from "
                                      f"{start + offset} on")
                offset = reached
            return url
        finally:
            sender.close()

    def _remember(self, key, bounds, index, url):
        def with_partial(entry):
            # another run of the command may have finished (and forgotten it) meanwhile
            entry = run_entry(entry, bounds)
            entry["partials"][index] = url
            return entry
        self.uploader.state.change(key, with_partial)
