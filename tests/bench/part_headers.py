"""Time streaming-form-data parsing a two-part 4 KiB upload body, with its part headers read by
the email package (the library's own way) and by affix's app/uploads/part_headers.py, interleaved in
one process.

    python -m tests.bench.part_headers              # 5 rounds of 3000 parses each way
    python -m tests.bench.part_headers --rounds 3 --parses 1000
"""
import argparse
import email.parser
import os
import statistics
import time

from streaming_form_data import StreamingFormDataParser
from streaming_form_data.targets import NullTarget, ValueTarget

from affix.app.uploads import part_headers

BOUNDARY = "affix-0123456789abcdef"
BODY = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n'
    f'Content-Type: application/json\r\n\r\n{{"fileName": "a.bin"}}\r\n'
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="upload.bin"\r\n'
    f"Content-Type: application/octet-stream\r\n\r\n"
).encode() + os.urandom(4096) + f"\r\n--{BOUNDARY}--\r\n".encode()


def parse():
    parser = StreamingFormDataParser(
        headers={"Content-Type": f'multipart/form-data; boundary="{BOUNDARY}"'}, strict=True)
    parser.register("metadata", ValueTarget())
    parser.register("file", NullTarget())
    parser.data_received(BODY)


def cpu_ms(parses) -> float:
    for _ in range(parses // 10):
        parse()
    start = time.process_time()
    for _ in range(parses):
        parse()
    return (time.process_time() - start) / parses * 1000


def main(argv=None):
    options = argparse.ArgumentParser(prog="python -m tests.bench.part_headers",
                                      description=__doc__.split("\n\n")[0])
    options.add_argument("--rounds", type=int, default=5)
    options.add_argument("--parses", type=int, default=3000)
    args = options.parse_args(argv)
    times = {"email package": [], "affix's reader": []}
    for _ in range(args.rounds):
        part_headers.compiled_parser.Parser = email.parser.Parser
        times["email package"].append(cpu_ms(args.parses))
        if not part_headers.install():
            raise SystemExit("bench: this streaming-form-data is not a version affix's reader "
                             "was tested with")
        times["affix's reader"].append(cpu_ms(args.parses))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name}: {median:.3f} ms of CPU per parse (median of {args.rounds} rounds of "
              f"{args.parses})")
    stock, fast = medians.values()
    print(f"ratio: {stock / fast:.1f}x")


if __name__ == "__main__":
    main()
