"""What sniffing a content type costs with libmagic, by the size of the prefix it is given and by
libmagic's flags, and whether the answers stay those of the full 8 KiB without flags.

    python -m tests.bench.sniffing            # about a minute
    python -m tests.bench.sniffing --quick    # a smoke run

The files are tests/support/content.py's: the kinds the test suite uploads (as the tests send
them and grown past 8 KiB) and files shaped as tests/test_fuzz.py's file parts. Times are CPU
microseconds per call (``time.process_time``), the median of rounds run in alternation, for
text (the two long text files) and for binary data (4 and 16 KiB of random bytes); "differ"
counts the files whose answer is not the one of 8 KiB without flags.
"""
import argparse
import os
import statistics
import sys
import time

import magic

from affix.app.content_types import SNIFF_PREFIX
from tests.support.content import fuzz_shaped_files, known_files

FULL = 8 * 1024
PREFIXES = (256, 512, 1024, 2048, 4096, FULL)
# libmagic 5.44's magic.h; python-magic names some of these by their older meanings
NO_CHECK = {
    "compress": 0x0001000,
    "tar": 0x0002000,
    "soft": 0x0004000,
    "apptype": 0x0008000,
    "elf": 0x0010000,
    "text": 0x0020000,
    "cdf": 0x0040000,
    "csv": 0x0080000,
    "tokens": 0x0100000,
    "encoding": 0x0200000,
    "json": 0x0400000,
    "simh": 0x0800000,
}
FLAG_SETS = {"none": (), **{f"no {name}": (name,) for name in NO_CHECK}}


def sniffer(flags=()):
    handle = magic.Magic(mime=True, mime_encoding=True)
    if flags:
        current = magic.MAGIC_MIME_TYPE | magic.MAGIC_MIME_ENCODING
        for name in flags:
            current |= NO_CHECK[name]
        magic.magic_setflags(handle.cookie, current)
    return handle


def cpu_microseconds(handle, files, prefix, repeat):
    started = time.process_time()
    for _ in range(repeat):
        for data in files:
            handle.from_buffer(data[:prefix])
    return (time.process_time() - started) / (repeat * len(files)) * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.bench.sniffing",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and fuzz files")
    args = parser.parse_args(argv)
    rounds, repeat, fuzz_count = (3, 20, 500) if args.quick else (5, 60, 5000)
    known = known_files()
    corpus = [data for data in known.values() if data] + [
        data for data in fuzz_shaped_files(fuzz_count) if data]
    text = [known["ascii lines, 30 KB"], known["utf-8 text, 16 KB"]]
    binary = [known["random, 4 KiB"], known["random, 16 KiB"]]
    reference = sniffer()
    expected = [reference.from_buffer(data[:FULL]) for data in corpus]

    variants = [(prefix, "none") for prefix in PREFIXES]
    variants += [(FULL, name) for name in FLAG_SETS if name != "none"]
    handles = {name: sniffer(flags) for name, flags in FLAG_SETS.items()}
    times = {variant: {"text": [], "binary": []} for variant in variants}
    for number in range(rounds):
        order = variants if number % 2 == 0 else variants[::-1]
        for prefix, flags in order:
            for kind, files in (("text", text), ("binary", binary)):
                times[(prefix, flags)][kind].append(
                    cpu_microseconds(handles[flags], files, prefix, repeat))

    print(f"libmagic {magic.version() if hasattr(magic, 'version') else '?'}, "
          f"{len(corpus)} files ({len(known)} known kinds, the rest fuzz-shaped), load average "
          f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}; affix sniffs "
          f"{SNIFF_PREFIX} bytes")
    print("| prefix, bytes | libmagic flags | text, us | binary, us | answers that differ |")
    print("|---|---|---|---|---|")
    for prefix, flags in variants:
        handle = handles[flags]
        differ = sum(handle.from_buffer(data[:prefix]) != answer
                     for data, answer in zip(corpus, expected))
        print(f"| {prefix} | {flags} | {statistics.median(times[(prefix, flags)]['text']):.0f} | "
              f"{statistics.median(times[(prefix, flags)]['binary']):.0f} | {differ} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
