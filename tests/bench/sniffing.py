"""What sniffing a content type costs with libmagic, by the size of the prefix it is given and by
libmagic's flags, and whether the answers stay those of the full 8 KiB without flags.

    python -m tests.bench.sniffing            # about a minute
    python -m tests.bench.sniffing --quick    # a smoke run

The files are tests/support/content.py's: the kinds the test suite uploads (as the tests send
them and grown past 8 KiB) and files shaped as tests/functional/test_fuzz.py's file parts. Times
are CPU microseconds per call (``time.process_time``), the median of rounds run in alternation,
for text (the two long text files) and for binary data (4 and 16 KiB of random bytes); "differ"
counts the files whose answer is not the one of 8 KiB without flags.

A second table times the same calls as affix makes them (its prefix, no flags) with the CPU's
caches cold: before each call, a buffer of N MiB is copied, as a worker's other work between two
uploads evicts libmagic's database (its compiled magic file, several MB, which every call walks
entry by entry) from the caches. Only the call itself is timed.
"""
import argparse
import ctypes
import itertools
import os
import statistics
import sys

import magic

from affix.app.uploads.content_types import SNIFF_PREFIX
from tests.bench.run import cpu_per_call
from tests.support.content import fuzz_shaped_files, known_files

MiB = 1024 * 1024
FULL = 8 * 1024
# what is copied before each call of the cold table, MiB (0: the caches warm, as above)
EVICT_MIB = (0, 1, 4, 16)
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


def cpu_microseconds(handle, files, prefix, repeat, evict=b""):
    """CPU microseconds per call on the first ``prefix`` bytes of each of ``files``, each call
    after copying ``evict`` (empty: the caches warm)."""
    calls = itertools.cycle(files)
    return cpu_per_call(lambda: handle.from_buffer(next(calls)[:prefix]),
                        repeat * len(files), evict) * 1e6


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

    database = magic_database_size()
    print(f"\naffix's calls ({SNIFF_PREFIX} bytes, no flags) with the caches cold: N MiB copied "
          f"before each call; libmagic's database: {database / MiB:.1f} MiB")
    evictions = {size: bytearray(os.urandom(size * MiB)) for size in EVICT_MIB}
    cold = {size: {"text": [], "binary": []} for size in EVICT_MIB}
    for number in range(rounds):
        for size in (EVICT_MIB if number % 2 == 0 else EVICT_MIB[::-1]):
            for kind, files in (("text", text), ("binary", binary)):
                cold[size][kind].append(cpu_microseconds(
                    reference, files, SNIFF_PREFIX, max(repeat // 4, 5), evictions[size]))
    print("| copied before each call, MiB | text, us | binary, us |")
    print("|---|---|---|")
    for size in EVICT_MIB:
        print(f"| {size} | {statistics.median(cold[size]['text']):.0f} | "
              f"{statistics.median(cold[size]['binary']):.0f} |")
    return 0


def magic_database_size() -> int:
    """Bytes of the magic files libmagic loads: its path list (``MAGIC``, or the built-in one),
    each entry's compiled ``.mgc`` where there is one."""
    getpath = magic.libmagic.magic_getpath
    getpath.restype, getpath.argtypes = ctypes.c_char_p, [ctypes.c_char_p, ctypes.c_int]
    size = 0
    for entry in os.fsdecode(getpath(None, 0)).split(":"):
        for candidate in (f"{entry}.mgc", entry):
            if os.path.isfile(candidate):
                size += os.path.getsize(candidate)
                break
    return size


if __name__ == "__main__":
    sys.exit(main())
