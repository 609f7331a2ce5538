"""The services speak no HTTP: no module of app/ outside its HTTP layer imports falcon or the HTTP
layer's errors; they raise the domain errors of app/errors.py, which import nothing, and the
HTTP layer maps them to HAL errors in one place (app/http/errors.py)."""
import ast
from pathlib import Path

import pytest

import affix.app
from affix.app import errors
from affix.app.http.errors import api_error_of

APP = Path(affix.app.__file__).parent
DOMAIN_ERRORS = APP / "errors.py"


def is_http_layer(path: Path) -> bool:
    """The HTTP layer: app/http/, the resources and routes of each package (work-package forms
    too), and the app built from them (app/__init__.py, app/testing.py: its fixtures for plugin
    authors)."""
    relative = path.relative_to(APP)
    return (relative.parts[0] == "http"
            or relative.name.endswith(("resources.py", "routes.py"))
            or str(relative) in {"work_packages/forms.py", "__init__.py", "testing.py"})


SERVICE_MODULES = sorted(path for path in APP.rglob("*.py") if not is_http_layer(path))


def run_nodes(tree):
    """The nodes of ``tree`` that can run: all but those under ``if TYPE_CHECKING:``."""
    waiting = [tree]
    while waiting:
        node = waiting.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)):
                waiting.append(child)


def imported_modules(path: Path) -> set:
    """Every module ``path`` imports when it runs, at its top or inside a function, as
    written."""
    modules = set()
    for node in run_nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            modules.add(node.module)
            # ``from falcon import testing``, ``from affix.app.http import errors``
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def speaks_http(module: str) -> bool:
    return module == "falcon" or module.startswith("falcon.") or module == "affix.app.http.errors"


def test_the_service_layer_is_every_module_but_the_http_layer():
    names = {str(path.relative_to(APP)) for path in SERVICE_MODULES}
    assert {"errors.py", "uploads/tus.py", "uploads/multipart.py", "uploads/direct.py",
            "attachments/service.py", "work_packages/service.py", "work_packages/queries.py",
            "accounts/auth.py"} <= names
    assert not names & {"uploads/tus_resources.py", "http/errors.py", "__init__.py"}


@pytest.mark.parametrize("path", SERVICE_MODULES, ids=lambda path: str(path.relative_to(APP)))
def test_a_service_module_imports_no_falcon_and_no_http_errors(path):
    assert sorted(filter(speaks_http, imported_modules(path))) == []


def source_of(module: str) -> Path | None:
    """The file of one of affix's own modules (not a package's ``__init__``, which Python runs
    first anyway, and not a name inside a module); None for any other."""
    if not module.startswith("affix."):
        return None
    path = APP.parent.joinpath(*module.split(".")[1:])
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def reached_through(path: Path) -> dict:
    """Every module of affix that importing ``path`` imports in turn, each with the falcon
    modules it imports itself."""
    reached, waiting = {}, [path]
    while waiting:
        current = waiting.pop()
        if current in reached:
            continue
        modules = imported_modules(current)
        reached[current] = sorted(filter(speaks_http, modules))
        waiting.extend(filter(None, map(source_of, modules)))
    return reached


# the faces that are no service: the command line and the upload client build the app or call
# it over HTTP
FACES = ("cli", "client")


@pytest.mark.parametrize("path", [path for path in SERVICE_MODULES
                                  if path.relative_to(APP).parts[0] not in FACES],
                         ids=lambda path: str(path.relative_to(APP)))
def test_no_service_module_reaches_falcon_through_another(path):
    speaking = {str(module.relative_to(APP.parent)): found
                for module, found in reached_through(path).items() if found}
    assert speaking == {}


def test_the_domain_errors_import_nothing():
    assert imported_modules(DOMAIN_ERRORS) == set()


def test_the_parse_sees_imports_in_every_spelling(tmp_path):
    source = tmp_path / "speaking.py"
    source.write_text("import falcon.media\nfrom affix.app.http import errors\n"
                      "def later():\n    from falcon import testing\n"
                      "if TYPE_CHECKING:\n    import falcon.asgi\n", encoding="utf-8")
    assert sorted(filter(speaks_http, imported_modules(source))) == [
        "affix.app.http.errors", "falcon", "falcon.media", "falcon.testing"]


DOMAIN_ERROR_KINDS = sorted(
    (kind for kind in vars(errors).values()
     if isinstance(kind, type) and issubclass(kind, errors.DomainError)),
    key=lambda kind: kind.__name__)


@pytest.mark.parametrize("kind", DOMAIN_ERROR_KINDS, ids=lambda kind: kind.__name__)
def test_every_domain_error_maps_to_a_named_status_and_its_identifier(kind):
    answer = api_error_of(kind("what went wrong"))
    code, reason = answer.status.split(" ", 1)
    assert (int(code), answer.identifier, answer.message) == (
        kind.status, kind.identifier, "what went wrong")
    assert reason and reason != "Unknown"
    assert answer.to_hal() == {
        "_type": "Error",
        "errorIdentifier": f"urn:openproject-org:api:v3:errors:{kind.identifier}",
        "message": "what went wrong",
    }
