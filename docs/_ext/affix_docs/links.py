"""Check a built site's internal links: every ``href`` to a page of the site names a page that
exists and, with ``#anchor``, an ``id`` on that page. External links are not followed (the build
needs no network).

    python -m affix_docs.links BUILD_DIR
"""
import sys
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(attributes["id"])
        if tag == "a" and attributes.get("href"):
            self.hrefs.append(attributes["href"])


def _read(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def broken_links(root: Path) -> list:
    """"page: href" of each internal link that leads nowhere."""
    pages = {path: _read(path) for path in sorted(root.rglob("*.html"))}
    broken = []
    for path, page in pages.items():
        for href in page.hrefs:
            parts = urllib.parse.urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith("mailto:"):
                continue
            target = (path.parent / urllib.parse.unquote(parts.path)).resolve() \
                if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if target.suffix != ".html":
                if not target.exists():
                    broken.append(f"{path.relative_to(root)}: {href}")
                continue
            if target not in pages or (parts.fragment and parts.fragment not in
                                       pages[target].ids):
                broken.append(f"{path.relative_to(root)}: {href}")
    return broken


def main() -> None:
    root = Path(sys.argv[1]).resolve()
    broken = broken_links(root)
    for each in broken:
        print(f"broken link: {each}", file=sys.stderr)
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
