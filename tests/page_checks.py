"""Reading back the pages and pictures fashionrec writes, for the report and demo tests.

:func:`png_pixels` decodes a PNG; :func:`assert_not_blank` checks it shows
something. :func:`read_page` parses a page with the standard library's HTML parser and
returns what a reader sees: the title, headings, paragraphs' text, tables
(cell texts), pictures (``src``, ``alt``) and links, so tests check structure
instead of matching fragments of markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
from PIL import Image

VOID = {"meta", "img", "br", "link", "input", "hr"}
INLINE = {"a", "b", "i", "em", "strong", "span", "code"}


@dataclass
class Page:
    path: Path
    tags: list[str] = field(default_factory=list)
    """Every start tag, in order."""
    meta: dict[str, str] = field(default_factory=dict)
    """``<meta name=... content=...>`` by name (and ``charset``)."""
    title: str = ""
    h1: list[str] = field(default_factory=list)
    h2: list[str] = field(default_factory=list)
    paragraphs: list[str] = field(default_factory=list)
    """Text of each ``<p>`` (notes included)."""
    notes: list[str] = field(default_factory=list)
    """Text of each ``<p class="note">``."""
    tables: list[list[list[str]]] = field(default_factory=list)
    """Each table as rows of cell texts (header row first)."""
    images: list[dict[str, str]] = field(default_factory=list)
    """``{"src", "alt"}`` of each ``<img>``."""
    links: list[dict[str, str]] = field(default_factory=list)
    """``{"href", "text"}`` of each ``<a>``."""
    text: str = ""
    """All text of the body, whitespace collapsed."""

    def table_with_header(self, first: str) -> list[list[str]]:
        """The table whose first header cell is ``first``."""
        found = [t for t in self.tables if t and t[0] and t[0][0] == first]
        assert found, f"no table headed {first!r}; tables: {[t[0] for t in self.tables if t]}"
        return found[0]

    def local_file(self, url: str) -> Path:
        """The file a relative ``src``/``href`` of this page points to."""
        parsed = urlparse(url)
        assert not parsed.scheme and not parsed.netloc and not url.startswith("/"), f"not a relative link: {url}"
        return (self.path.parent / unquote(parsed.path)).resolve()


class _Reader(HTMLParser):
    def __init__(self, page: Page):
        super().__init__(convert_charrefs=True)
        self.page = page
        self.stack: list[str] = []
        self.capture: list[tuple[str, list[str], dict]] = []  # (tag, texts, attrs) being read
        self.table_stack: list[list[list[str]]] = []
        self.cell: list[str] | None = None
        self.body: list[str] = []
        self.in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.page.tags.append(tag)
        if tag not in INLINE:
            self.body.append(" ")  # block boundaries separate words, as a browser shows them
        if tag == "meta":
            if "charset" in attrs:
                self.page.meta["charset"] = attrs["charset"] or ""
            if "name" in attrs:
                self.page.meta[attrs["name"] or ""] = attrs.get("content") or ""
        elif tag == "img":
            self.page.images.append({"src": attrs.get("src") or "", "alt": attrs.get("alt") or ""})
        elif tag == "table":
            self.table_stack.append([])
        elif tag == "tr" and self.table_stack:
            self.table_stack[-1].append([])
        elif tag in ("td", "th") and self.table_stack:
            self.cell = []
        elif tag == "style":
            self.in_style = True
        if tag in ("title", "h1", "h2", "p", "a"):
            self.capture.append((tag, [], attrs))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag not in INLINE:
            self.body.append(" ")
        if tag in ("td", "th") and self.cell is not None and self.table_stack:
            self.table_stack[-1][-1].append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "table" and self.table_stack:
            self.page.tables.append(self.table_stack.pop())
        elif tag == "style":
            self.in_style = False
        if self.capture and self.capture[-1][0] == tag:
            name, texts, attrs = self.capture.pop()
            text = " ".join("".join(texts).split())
            if name == "title":
                self.page.title = text
            elif name in ("h1", "h2"):
                getattr(self.page, name).append(text)
            elif name == "p":
                self.page.paragraphs.append(text)
                if "note" in (attrs.get("class") or "").split():
                    self.page.notes.append(text)
            elif name == "a":
                self.page.links.append({"href": attrs.get("href") or "", "text": text})
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data):
        if self.in_style:
            return
        for _, texts, _ in self.capture:
            texts.append(data)
        if self.cell is not None:
            self.cell.append(data)
        if "body" in self.stack:
            self.body.append(data)


def read_page(path: Path) -> Page:
    """Parse the HTML page at ``path``."""
    page = Page(Path(path))
    reader = _Reader(page)
    reader.feed(Path(path).read_text(encoding="utf-8"))
    reader.close()
    page.text = " ".join("".join(reader.body).split())
    return page


def check_pictures(page: Page) -> None:
    """Every ``<img>`` of the page points to an existing local file and says what it shows."""
    assert page.images, "the page shows no picture"
    for image in page.images:
        assert page.local_file(image["src"]).is_file(), f"{image['src']} is not a file beside {page.path}"
        assert len(image["alt"].split()) >= 3, f"{image['src']}: alt text {image['alt']!r} does not describe it"


def png_pixels(path: Path) -> np.ndarray:
    """The PNG at ``path`` decoded as RGB, an (height, width, 3) uint8 array; fails if it is not a PNG."""
    with Image.open(path) as image:
        assert image.format == "PNG", f"{path} is {image.format}, not PNG"
        return np.asarray(image.convert("RGB"))


def assert_not_blank(pixels: np.ndarray, *, min_colours: int = 50) -> None:
    """The picture has content: many distinct colours and a varied intensity."""
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) >= min_colours, f"only {len(colours)} distinct colours"
    assert pixels.std() > 10, f"pixel standard deviation {pixels.std():.1f}: nearly uniform"
