"""The README's hook reference, written from the hookspecs' docstrings, so that the two cannot
disagree: ``tests/unit/test_docs.py`` fails when the README's section is not what this renders.

``python -m tests.support.hook_reference`` rewrites the section in place.
"""
import inspect
import re
import sys
from pathlib import Path

from affix.plugins import hookspecs

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN = "<!-- hook reference: written by python -m tests.support.hook_reference -->\n"
END = "<!-- end of the hook reference -->\n"
_PARAM = re.compile(r":param (\w+):\s*(.*)")
# Sphinx roles and double backticks become plain Markdown code
_ROLE = re.compile(r":(?:class|data|func|meth):`~?([^`]+)`")


def hook_specs() -> list:
    """The hookspec functions, in the order the module declares them."""
    return [function for name, function in vars(hookspecs).items()
            if name.startswith("affix_") and callable(function)]


def _markdown(text: str) -> str:
    return _ROLE.sub(r"`\1`", text).replace("``", "`")


def _blocks(doc: str):
    """(kind, text) of each paragraph: 'param', 'example' (code) or 'text'."""
    lines = doc.splitlines()
    index = 0
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        start = index
        if lines[index].rstrip().endswith("::"):
            index += 1
            while index < len(lines) and (not lines[index].strip() or lines[index][:1] == " "):
                index += 1
            yield "example", inspect.cleandoc("\n".join(lines[start + 1:index]))
            continue
        while index < len(lines) and lines[index].strip():
            index += 1
        paragraph = lines[start:index]
        if _PARAM.match(paragraph[0]):
            # a field list: each field runs on over its indented lines
            fields = []
            for line in paragraph:
                if _PARAM.match(line):
                    fields.append(line)
                else:
                    fields[-1] += " " + line.strip()
            yield "params", fields
        else:
            yield "text", " ".join(line.strip() for line in paragraph)


def render_hook(function) -> str:
    signature = ", ".join(inspect.signature(function).parameters)
    doc = inspect.cleandoc(function.__doc__)
    out = [f"### `{function.__name__}({signature})`\n"]
    for kind, content in _blocks(doc):
        if kind == "example":
            out.append(f"```python\n{content}\n```\n")
        elif kind == "params":
            items = (_PARAM.match(field).groups() for field in content)
            out.append("".join(f"- `{name}`: {_markdown(text)}\n" for name, text in items))
        else:
            out.append(_markdown(content) + "\n")
    return "\n".join(out)


def render() -> str:
    return BEGIN + "\n" + "\n".join(render_hook(spec) for spec in hook_specs()) + "\n" + END


def readme_section(readme: str) -> str:
    """The README's generated section, markers included; "" without one."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        return ""
    return readme[start:end + len(END)]


def main():
    readme = README.read_text()
    section = readme_section(readme)
    if not section:
        sys.exit(f"{README} has no section between {BEGIN.strip()} and {END.strip()}")
    README.write_text(readme.replace(section, render()))


if __name__ == "__main__":
    main()
