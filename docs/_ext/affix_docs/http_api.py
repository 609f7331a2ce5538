"""The HTTP API reference: every path, method and status of the OpenAPI document a throwaway
app serves at ``/api/v3/spec.json`` (with every optional route on: tus, virus scanning)."""
import json

from affix_docs import throwaway
from affix_docs.markdown import code, label, table

SPEC_PATH = "/api/v3/spec.json"
_SCHEMA_PREFIX = "#/components/schemas/"


def document() -> dict:
    return throwaway.get(SPEC_PATH).json


def operations(spec: dict) -> list:
    """(method, path, operation) of every operation, in the document's order."""
    return [(method.upper(), path, operation)
            for path, methods in spec["paths"].items() for method, operation in methods.items()]


def _schema(schema: dict | None) -> str:
    if not schema:
        return ""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(_SCHEMA_PREFIX)
        return f"[{code(name)}](#schema-{name.lower()})"
    if schema.get("type") == "array":
        return f"array of {_schema(schema.get('items'))}"
    return code(schema.get("type", json.dumps(schema, sort_keys=True)))


def _content(content: dict) -> str:
    return "; ".join(f"{code(media_type)} {_schema(body.get('schema'))}".strip()
                     for media_type, body in content.items())


def _operation(method: str, path: str, operation: dict) -> str:
    out = [f"### {code(f'{method} {path}')}", "", operation.get("summary", "") + ".", ""]
    if operation.get("description"):
        out += [operation["description"], ""]
    parameters = operation.get("parameters", [])
    if parameters:
        out.append(table(("parameter", "in", "required", "schema", "meaning"), [
            (code(each["name"]), each["in"], "yes" if each.get("required") else "no",
             _schema(each.get("schema")), each.get("description", ""))
            for each in parameters]))
    body = operation.get("requestBody")
    if body:
        required = "required" if body.get("required") else "optional"
        out += [f"Request body ({required}): {_content(body.get('content', {}))}", ""]
    out.append(table(("status", "meaning", "body", "headers"), [
        (code(status), answer.get("description", ""), _content(answer.get("content", {})),
         ", ".join(code(header) for header in answer.get("headers", {})))
        for status, answer in operation["responses"].items()]))
    return "\n".join(out)


def reference() -> str:
    spec = document()
    out = [spec["info"]["description"], ""]
    current = None
    for method, path, operation in operations(spec):
        if path != current:
            out += [f"## {code(path)}", ""]
            current = path
        out.append(_operation(method, path, operation))
    out += ["## Schemas", ""]
    for name, schema in spec["components"]["schemas"].items():
        out += [label(f"schema-{name.lower()}"), f"### {code(name)}", "", "```json",
                json.dumps(schema, indent=2), "```", ""]
    return "\n".join(out)
