"""One call of pyopenproject's API, run by the interpreter of pyopenproject's own virtual
environment (``openproject_clients.PyOpenProject`` starts it): it imports nothing of affix nor of
the tests, only pyopenproject and the standard library.

The call comes as JSON on standard input::

    {"url": ..., "api_key": ..., "service": "work_package", "method": "find",
     "args": [{"model": "WorkPackage", "fields": {"id": 5}}]}

An argument is plain JSON, a model object (``{"model": "WorkPackage", "fields": {...}}``: its
fields become the object's ``__dict__``, as pyopenproject's models are made from the server's
JSON) or a list of filters (``{"filters": [[name, operator, values], ...]}``). The answer, on
standard output, is ``{"returned": ...}`` (model objects as their ``__dict__``, bytes as latin-1
text) or, when pyopenproject raised its ``BusinessError``, ``{"raised": ..., "body": ...}`` with
the body of the server's answer that pyopenproject put in the message of the error's cause.
"""
import importlib
import json
import sys

from pyopenproject.business.exception.business_error import BusinessError
from pyopenproject.business.util.filter import Filter
from pyopenproject.openproject import OpenProject

# RequestError's message: what went wrong, the URL, then a newline, a space and the body
BODY_SEPARATOR = "\n "


def model(name, fields):
    module = importlib.import_module(
        "pyopenproject.model." + "".join("_" + c.lower() if c.isupper() else c for c in name)[1:])
    return getattr(module, name)(fields)


def argument(value):
    if isinstance(value, dict) and set(value) == {"model", "fields"}:
        return model(value["model"], value["fields"])
    if isinstance(value, dict) and set(value) == {"filters"}:
        return [Filter(name, operator, values) for name, operator, values in value["filters"]]
    return value


def plain(value):
    if isinstance(value, list):
        return [plain(each) for each in value]
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if hasattr(value, "__dict__"):
        return value.__dict__
    return value


def main():
    call = json.load(sys.stdin)
    service = getattr(OpenProject(call["url"], call["api_key"]), f"get_{call['service']}_service")()
    try:
        returned = getattr(service, call["method"])(*map(argument, call["args"]))
    except BusinessError as error:
        cause = str(error.__cause__)
        _, _, body = cause.partition(BODY_SEPARATOR)
        answer = {"raised": str(error), "body": body}
    else:
        answer = {"returned": plain(returned)}
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
