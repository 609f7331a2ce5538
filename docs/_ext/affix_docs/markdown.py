"""The bits of Markdown every generator writes."""


def code(text) -> str:
    """``text`` as inline code, whatever backticks it holds."""
    text = str(text)
    fence = "`"
    while fence in text:
        fence += "`"
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def cell(text) -> str:
    """``text`` fit for a table cell: one line, its pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def table(header: tuple, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def label(name: str) -> str:
    """A MyST target before a heading, for ``{ref}`` links from other pages."""
    return f"({name})="
