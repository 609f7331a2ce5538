"""Plugins whose upload inspectors (``affix_inspect_upload``) record what they are shown and
answer what a test tells them to."""
from affix import hookimpl


class Recorder:
    """An inspector that keeps what it was shown and answers ``answer``."""

    def __init__(self, answer=None, fails_in=None):
        self.answer = answer
        self.fails_in = fails_in
        self.chunks = []
        self.judged = []
        self.closed = 0

    def feed(self, chunk):
        if self.fails_in == "feed":
            raise RuntimeError("feed broke")
        self.chunks.append(bytes(chunk))

    def verdict(self, upload):
        if self.fails_in == "verdict":
            raise RuntimeError("verdict broke")
        self.judged.append(upload)
        return self.answer

    def close(self):
        self.closed += 1


class Inspecting:
    """A plugin whose inspectors are the given recorders, one per upload."""

    def __init__(self, *recorders, fails=False):
        self.recorders = list(recorders)
        self.asked = []
        self.fails = fails

    @hookimpl
    def affix_inspect_upload(self, user, container_type):
        self.asked.append((user.login, container_type))
        if self.fails:
            raise RuntimeError("the hook broke")
        return self.recorders.pop(0)
