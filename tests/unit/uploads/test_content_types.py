"""Sniffing a prefix of the file gives the answers sniffing all of the upload's head did.

An upload keeps the first ``SNIFF_SIZE`` (8 KiB) bytes of its file; libmagic is given only
``SNIFF_PREFIX`` of them, which costs less (python -m tests.bench.sniffing). These tests hold the
answers identical on the kinds of file the test suite uploads and on files shaped as the fuzzer's.
"""
import threading

import pytest
from hypothesis import given, settings, strategies as st

from affix.app.uploads.content_types import SNIFF_PREFIX, ContentSniffer, Sniffed
from affix.app.uploads.multipart import SNIFF_SIZE
from support.content import KiB, fuzz_shaped_files, known_files
from support.defaults import SMALL_LIMIT

KNOWN = known_files()
# a seeded sample of fuzz-shaped files; among them, files whose answer libmagic finds only
# past 2 KiB (random bytes it reads as an executable's header pointing further in)
FUZZ_SHAPED = fuzz_shaped_files(5000)


@pytest.fixture(scope="module")
def sniffers():
    """(affix's sniffer, one reading the whole head an upload keeps)"""
    return ContentSniffer(), ContentSniffer(prefix=SNIFF_SIZE)


def head_of(data) -> bytes:
    return data[:SNIFF_SIZE]


def test_the_prefix_is_shorter_than_the_head():
    assert (SNIFF_PREFIX, SNIFF_SIZE) == (4 * KiB, 8 * KiB)


@pytest.mark.parametrize("data", KNOWN.values(), ids=KNOWN.keys())
def test_known_kinds_sniff_alike(sniffers, data):
    prefix_sniffer, head_sniffer = sniffers
    assert prefix_sniffer.sniff(head_of(data)) == head_sniffer.sniff(head_of(data))


def test_known_kinds_answers():
    # what the answers are, so that "alike" above cannot mean "alike and wrong"
    sniffer = ContentSniffer()
    answers = {name: sniffer.sniff(head_of(data)) for name, data in KNOWN.items()}
    assert answers == {
        "png": Sniffed("image/png", None),
        "png 64x64": Sniffed("image/png", None),
        "ascii text": Sniffed("text/plain", "us-ascii"),
        "ascii lines, 30 KB": Sniffed("text/plain", "us-ascii"),
        "utf-8 text": Sniffed("text/plain", "utf-8"),
        "utf-8 text, 16 KB": Sniffed("text/plain", "utf-8"),
        "html": Sniffed("text/html", "us-ascii"),
        "html, 16 KB": Sniffed("text/html", "us-ascii"),
        "svg": Sniffed("image/svg+xml", None),
        "zip": Sniffed("application/zip", None),
        "zip, 64 KB": Sniffed("application/zip", None),
        "pdf": Sniffed("application/pdf", None),
        "pdf, 16 KB": Sniffed("application/pdf", None),
        "gif": Sniffed("image/gif", None),
        "dos program": Sniffed("application/x-dosexec", None),
        "dos program, 16 KB": Sniffed("application/x-dosexec", None),
        "byte ramp": Sniffed("image/x-tga", None),
        "byte ramp, 16 KB": Sniffed("image/x-tga", None),
        "random, 4 KiB": Sniffed("application/octet-stream", None),
        "random, 16 KiB": Sniffed("application/octet-stream", None),
        "empty": Sniffed("application/octet-stream", None),
    }


def test_threads_sniffing_at_once_get_the_answers_one_thread_gets():
    """The sniffer's handles are shared by a worker's threads: each sniff's answer is its own."""
    samples = [head_of(data) for data in [*KNOWN.values(), *FUZZ_SHAPED[:400]]]
    alone = [ContentSniffer().sniff(head) for head in samples]
    shared = ContentSniffer()
    threads = 8
    start = threading.Barrier(threads)
    answers = [None] * threads

    def sniff_all(number):
        start.wait()
        # each thread from a place of its own, so that different files are sniffed at once
        first = number * len(samples) // threads
        order = [*range(first, len(samples)), *range(first)]
        answers[number] = {index: shared.sniff(samples[index]) for index in order}

    sniffing = [threading.Thread(target=sniff_all, args=(number,)) for number in range(threads)]
    for thread in sniffing:
        thread.start()
    for thread in sniffing:
        thread.join()
    assert [[found[index] for index in range(len(samples))] for found in answers] == [
        alone] * threads


def test_fuzz_shaped_files_sniff_alike(sniffers):
    prefix_sniffer, head_sniffer = sniffers
    differing = [data[:100] for data in FUZZ_SHAPED
                 if prefix_sniffer.sniff(head_of(data)) != head_sniffer.sniff(head_of(data))]
    assert differing == []


def test_a_shorter_prefix_would_answer_otherwise():
    # the seeded sample holds the files that make 4 KiB the least prefix: at 2 KiB they differ
    short, head_sniffer = ContentSniffer(prefix=2 * KiB), ContentSniffer(prefix=SNIFF_SIZE)
    differing = [data for data in FUZZ_SHAPED
                 if short.sniff(head_of(data)) != head_sniffer.sniff(head_of(data))]
    assert [(len(data), head_sniffer.sniff(head_of(data))) for data in differing] == [
        (SMALL_LIMIT, Sniffed("application/x-dosexec", None))] * len(differing)
    assert differing


# tests/functional/test_fuzz.py's file parts: up to 300 arbitrary bytes, or their first 100
# followed by NUL bytes up to the size limit or a little past it
fuzz_files = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.binary(max_size=100), st.integers(0, 3000)).map(
        lambda drawn: drawn[0] + b"\0" * (SMALL_LIMIT + drawn[1] - len(drawn[0]))),
)


@settings(max_examples=300, deadline=None)
@given(data=fuzz_files)
def test_fuzz_files_sniff_alike(sniffers, data):
    prefix_sniffer, head_sniffer = sniffers
    assert prefix_sniffer.sniff(head_of(data)) == head_sniffer.sniff(head_of(data))
