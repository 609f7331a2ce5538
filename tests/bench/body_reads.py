"""What reading a large request body costs the thread that reads it: through gunicorn's own
reader (``wsgi.input``) and through :mod:`affix.app.http.socket_body`, in the 1 MiB reads an
upload makes, on a socket pair whose other end a thread keeps full.

    python -m tests.bench.body_reads                 # 7 rounds of 256 MiB each way
    python -m tests.bench.body_reads --rounds 3 --size-mib 64

Rounds alternate which goes first; the figures are medians: the reading thread's CPU per MiB
(what the upload's parsing thread no longer has for itself) and MB/s (MB = 10^6 bytes).
"""
import argparse
import os
import socket
import statistics
import threading
import time

from gunicorn.http.body import Body, LengthReader
from gunicorn.http.unreader import SocketUnreader

from affix.app.http.socket_body import request_body
from tests.bench.run import MiB

READ_SIZE = MiB  # as app/uploads/multipart.py reads


def gunicorn_reader(body, sock):
    return body


def socket_reader(body, sock):
    return request_body({"wsgi.input": body, "gunicorn.socket": sock})


WAYS = {"gunicorn's reader": gunicorn_reader, "affix's socket body": socket_reader}


def one_read(make_stream, size, payload):
    """(seconds, reading thread's CPU seconds) of reading a ``size``-byte body."""
    server, client = socket.socketpair()
    sender = threading.Thread(target=lambda: [client.sendall(payload)
                                              for _ in range(size // len(payload))])
    with server, client:
        stream = make_stream(Body(LengthReader(SocketUnreader(server), size)), server)
        sender.start()
        started, cpu = time.perf_counter(), time.thread_time()
        received = 0
        while data := stream.read(READ_SIZE):
            received += len(data)
        elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
        sender.join()
    if received != size:
        raise SystemExit(f"read {received} of {size} bytes")
    return elapsed, cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--size-mib", type=int, default=256)
    args = parser.parse_args(argv)
    size = args.size_mib * MiB
    payload = os.urandom(MiB)
    figures = {name: {"cpu": [], "mbps": []} for name in WAYS}
    for number in range(args.rounds):
        order = list(WAYS.items()) if number % 2 == 0 else list(reversed(WAYS.items()))
        for name, make_stream in order:
            elapsed, cpu = one_read(make_stream, size, payload)
            figures[name]["cpu"].append(cpu * 1000 / args.size_mib)
            figures[name]["mbps"].append(size / elapsed / 1e6)
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{args.size_mib} MiB bodies read in {READ_SIZE // MiB} MiB reads, median of "
          f"{args.rounds} rounds (load average {load})")
    print("| reader | reading thread's CPU, ms per MiB | MB/s |")
    print("| --- | --- | --- |")
    for name, measured in figures.items():
        print(f"| {name} | {statistics.median(measured['cpu']):.3f} "
              f"| {statistics.median(measured['mbps']):.0f} |")


if __name__ == "__main__":
    main()
