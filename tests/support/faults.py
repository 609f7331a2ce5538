"""Faults injected on cue, where the real component cannot be made to fail at that moment.

A part is put on cue by handing :class:`OnCue` of it to the app in its place (mark a test
``@pytest.mark.on_cue("blob_store", ...)`` and conftest's app is made with those parts on cue,
found in ``services``); nothing of affix is patched, and only that app's part is touched: a
second handle on the same database or store (conftest's ``catalog``) stays the real one."""
import functools


class OnCue:
    """``part`` as it is, but for the methods or attributes a test replaces on cue."""

    def __init__(self, part):
        self.part = part
        self._replaced = {}

    @property
    def __class__(self):
        # what isinstance() sees: the app chooses what goes with a store by its class
        return type(self.part)

    def __getattr__(self, name):
        # only what is not the wrapper's own: the replaced names, then the part's
        replaced = self.__dict__["_replaced"]
        return replaced[name] if name in replaced else getattr(self.part, name)

    def replace(self, name, value):
        """``name`` is ``value`` from now on, until :meth:`restore`."""
        self._replaced[name] = value

    def restore(self, name):
        del self._replaced[name]

    def around(self, name, wrapper):
        """``name(...)`` calls ``wrapper(original, ...)`` from now on, ``original`` being the
        part's own method."""
        self.replace(name, functools.partial(wrapper, getattr(self.part, name)))

    def fail_once(self, name, error):
        """``name`` raises ``error`` once, then is itself again: a store or a database out of
        reach for a moment (what the real ones cannot be made to do on cue)."""
        def fail(*args, **kwargs):
            self.restore(name)
            raise error

        self.replace(name, fail)


def catalog_on_cue(catalog) -> OnCue:
    """``catalog`` on cue, its database too: the app's middleware holds the database itself
    (``services.catalog.database.replace("connect", refuse)``)."""
    on_cue = OnCue(catalog)
    on_cue.replace("database", OnCue(catalog.database))
    return on_cue
