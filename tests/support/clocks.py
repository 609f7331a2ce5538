"""A clock a test sets: the app's (``create_app(clock=...)``), instead of sleeping."""


class Clock:
    """The app's clock, set by the test to the moment the next thing happens at."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now
