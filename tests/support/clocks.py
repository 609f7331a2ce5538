"""A clock the test sets: what affix's ``clock=`` collaborators are given instead of time
passing."""


class Clock:
    """Answers ``now`` until the test moves it (``clock.now = ...`` or ``clock.advance(...)``)."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, delta):
        self.now += delta
