"""Faults injected on cue, where the real component cannot be made to fail at that moment."""


def failing_once(monkeypatch, owner, name, error):
    """``owner.name`` raises ``error`` once, then is itself again: a store or a database out
    of reach for a moment (what the real ones cannot be made to do on cue)."""
    original = getattr(owner, name)

    def fail(*args, **kwargs):
        monkeypatch.setattr(owner, name, original)
        raise error

    monkeypatch.setattr(owner, name, fail)
