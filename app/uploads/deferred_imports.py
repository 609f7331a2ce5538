"""The modules streaming-form-data imports at its start and affix never uses, loaded on first use.

streaming-form-data 2.1's ``targets`` module imports smart_open (for its S3 and GCS targets) and
aiofiles (for its asynchronous targets) as it is imported; smart_open imports its transports,
boto3 among them where it is installed (affix's ``s3`` extra). affix parses with the synchronous
parser into targets of its own and uses neither module. Left out with boto3 (which
``storage/s3.py`` imports only when a store makes its client), they no longer slow every
``affix`` command and every server's start (docs/performance.md).

The change to send upstream imports each inside the targets that use it. Until a release has it,
affix puts a stand-in for each in ``sys.modules`` before streaming-form-data is first imported,
on the streaming-form-data versions this was checked on (:data:`TESTED_VERSIONS`). The first
attribute anything asks of a stand-in, or sets or deletes on it, imports the real module, which
takes the stand-in's place in ``sys.modules``; a module that imported the stand-in meanwhile
(streaming-form-data's targets, or anything imported after affix) keeps it, and reaches the
real module through it. Where a module was imported already, is not installed, or the version
differs, nothing is put in its place. Importing this module does it, and ``affix.app`` imports
it before anything else.

``importlib.reload`` of a stand-in is not supported: reload the real module once it is loaded.
"""
import importlib
import importlib.metadata
import importlib.util
import sys
import threading
import types

# the only versions pyproject.toml allows (a test holds the two together)
TESTED_VERSIONS = ("2.1.0",)
UNUSED_BY_AFFIX = ("smart_open", "aiofiles")
# the module whose import brings them in: once it is imported, they are too
IMPORTER = "streaming_form_data.targets"


# Stands in ``sys.modules`` for the module of ``spec`` until it is used. Its own namespace holds
# only its name, the real module's spec (so that importlib finds the module without loading it)
# and the lock of its swap; every other attribute is the real module's, ``__doc__`` too (a
# class's docstring would answer in its place, hence this comment).
class DeferredModule(types.ModuleType):

    def __init__(self, spec):
        super().__init__(spec.name)
        namespace = self.__dict__
        # ModuleType's own None for these would answer in the real module's place
        for name in ("__doc__", "__loader__", "__package__"):
            namespace.pop(name, None)
        # set in the namespace directly: setting an attribute loads the module
        namespace["__spec__"] = spec
        namespace["_affix_swapping"] = threading.Lock()

    @property
    def __doc__(self):
        return self._affix_loaded().__doc__

    def __getattr__(self, attribute):
        try:
            module = self._affix_loaded()
        except ImportError as error:
            if attribute.startswith("__") and attribute.endswith("__"):
                # getattr(module, "__file__", None) and its like, as on any module without it
                raise AttributeError(
                    f"{self.__name__} could not be imported: {error}") from error
            raise
        return getattr(module, attribute)

    def __setattr__(self, attribute, value):
        setattr(self._affix_loaded(), attribute, value)

    def __delattr__(self, attribute):
        delattr(self._affix_loaded(), attribute)

    def _affix_loaded(self) -> types.ModuleType:
        """The real module, imported the first time."""
        # the lock covers the swap only: held across the import, it could wait on the import
        # system's own lock of a submodule whose importer waits on it in turn
        with self._affix_swapping:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
        return importlib.import_module(self.__name__)


def defer_unused_imports(modules=None, *,
                         tested_versions: tuple[str, ...] = TESTED_VERSIONS) -> bool:
    """Put a :class:`DeferredModule` in ``modules`` (``sys.modules``) for each module of
    :data:`UNUSED_BY_AFFIX` not imported yet, when streaming-form-data is a version of
    ``tested_versions`` and has not been imported; whether it did."""
    modules = sys.modules if modules is None else modules
    if IMPORTER in modules:
        return False
    try:
        version = importlib.metadata.version("streaming-form-data")
    except importlib.metadata.PackageNotFoundError:
        return False
    if version not in tested_versions:
        return False
    for name in UNUSED_BY_AFFIX:
        if name in modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is not None:
            modules[name] = DeferredModule(spec)
    return True


defer_unused_imports()
