"""The modules streaming-form-data imports at its start and affix never uses, loaded on first use.

streaming-form-data 2.1's ``targets`` module imports smart_open (for its S3 and GCS targets) and
aiofiles (for its asynchronous targets) as it is imported. With boto3 installed (affix's ``s3``
extra), smart_open imports it and requests for its transports: about 0.25 s of CPU in every
process that imports affix (every ``affix`` command, every server's start), half of what
``affix --help`` costs. affix parses with the synchronous parser into targets of its own and
uses neither module.

The change to send upstream imports each inside the targets that use it. Until a release has it,
affix puts a stand-in for each in ``sys.modules`` before streaming-form-data is first imported,
on the streaming-form-data versions this was checked on (:data:`TESTED_VERSIONS`): the first
attribute anything asks of a stand-in imports the real module, which then takes the stand-in's
place in ``sys.modules``. A plugin that uses ``S3Target``, or any other importer of either
module, gets the module itself. Where a module was imported already, is not installed, or the
version differs, nothing is put in its place. Importing this module does it, and
``affix.app`` imports it before anything else.
"""
import importlib
import importlib.metadata
import importlib.util
import sys
import threading
import types

TESTED_VERSIONS = ("2.1.0",)
UNUSED_BY_AFFIX = ("smart_open", "aiofiles")
# the module whose import brings them in: once it is imported, they are too
IMPORTER = "streaming_form_data.targets"


class DeferredModule(types.ModuleType):
    """Stands in ``modules`` for the module of ``spec`` until an attribute is asked of it."""

    def __init__(self, spec, modules):
        super().__init__(spec.name)
        self.__spec__ = spec
        # in the instance's own namespace, so that reaching them never loads the module
        self.__dict__["_affix_modules"] = modules
        self.__dict__["_affix_loading"] = threading.Lock()

    def __getattr__(self, attribute):
        # only asked for what the stand-in lacks: everything but the few names above
        return getattr(self._affix_loaded(), attribute)

    def _affix_loaded(self) -> types.ModuleType:
        with self._affix_loading:
            module = self._affix_modules.get(self.__name__)
            if module is None or module is self:
                self._affix_modules.pop(self.__name__, None)
                module = importlib.import_module(self.__name__)
            return module


def defer_unused_imports(modules=None) -> bool:
    """Put a :class:`DeferredModule` in ``modules`` (``sys.modules``) for each module of
    :data:`UNUSED_BY_AFFIX` not imported yet, when streaming-form-data is a tested version and
    has not been imported; whether it did."""
    modules = sys.modules if modules is None else modules
    if IMPORTER in modules:
        return False
    try:
        version = importlib.metadata.version("streaming-form-data")
    except importlib.metadata.PackageNotFoundError:
        return False
    if version not in TESTED_VERSIONS:
        return False
    for name in UNUSED_BY_AFFIX:
        if name in modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is not None:
            modules[name] = DeferredModule(spec, modules)
    return True


defer_unused_imports()
