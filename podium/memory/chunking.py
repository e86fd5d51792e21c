"""Loading and splitting documents: txt, md, html and pdf, streamed, split by structure with overlap.

Files are read in pieces (``READ_BYTES``), never whole, so a 200 MB file takes bounded memory. Headings
(Markdown ``#``, HTML ``<h1>``..``<h6>``) and PDF pages start new sections; a section's paragraphs are
packed into chunks of at most ``chunk_size`` characters; consecutive chunks of a section share ``overlap``
characters; a paragraph longer than a chunk is cut at sentence, then word boundaries. Every chunk carries
its section title (and PDF page) in its metadata, and starts with the title so that both searches see it.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

from ..models.errors import MissingExtraError
from .errors import IngestError

READ_BYTES = 1 << 16
SUFFIXES = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown", ".rst": "text",
            ".html": "html", ".htm": "html", ".pdf": "pdf"}  # fmt: skip
CHUNK_SIZE = 1000
OVERLAP = 150

Block = tuple[str, str, dict[str, Any]]
"""(kind, text, metadata): kind is ``heading`` (text: the title), ``para`` or ``page`` (a PDF page starts)."""

_SENTENCE = re.compile(r"(?<=[.!?。])\s+")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def kind_of(path: Path) -> str | None:
    return SUFFIXES.get(path.suffix.lower())


def file_hash(path: Path) -> str:
    """SHA-256 of the file's bytes, read in pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(READ_BYTES):
            h.update(piece)
    return h.hexdigest()


def check_text(path: Path) -> None:
    """``IngestError`` if the file is empty or looks binary (a NUL byte, or not UTF-8, in its first 8 KiB)."""
    with open(path, "rb") as f:
        head = f.read(8192)
    if not head.strip():
        raise IngestError(f"{path}: the file is empty")
    if b"\x00" in head:
        raise IngestError(f"{path}: a binary file, not text (it holds NUL bytes)")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < 8192)
    except UnicodeDecodeError:
        raise IngestError(f"{path}: not UTF-8 text") from None


def _lines(path: Path, max_line: int) -> Iterator[str]:
    """The file's lines, decoded incrementally; a very long line comes in pieces of ``max_line``."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    rest = ""
    with open(path, "rb") as f:
        while True:
            raw = f.read(READ_BYTES)
            text = decoder.decode(raw, final=not raw)
            if "\x00" in text:
                raise IngestError(f"{path}: a binary file, not text (it holds NUL bytes)")
            rest += text
            *whole, rest = rest.split("\n")
            for line in whole:
                yield from _cut(line, max_line)
            while len(rest) > max_line:
                yield rest[:max_line]
                rest = rest[max_line:]
            if not raw:
                break
    if rest:
        yield rest


def _cut(line: str, size: int) -> Iterator[str]:
    for i in range(0, max(len(line), 1), size):
        yield line[i : i + size]


def text_blocks(path: Path, *, markdown: bool, max_line: int) -> Iterator[Block]:
    """Paragraphs (blank-line separated) and Markdown headings of a text file."""
    para: list[str] = []
    size = 0
    fence = False
    for line in _lines(path, max_line):
        stripped = line.strip()
        if markdown and stripped.startswith("```"):
            fence = not fence
        m = _HEADING.match(stripped) if markdown and not fence else None
        if m or not stripped:
            if para:
                yield ("para", "\n".join(para), {})
                para, size = [], 0
            if m:
                yield ("heading", m.group(2), {"level": len(m.group(1))})
            continue
        para.append(line.rstrip())
        size += len(line)
        if size >= max_line:
            yield ("para", "\n".join(para), {})
            para, size = [], 0
    if para:
        yield ("para", "\n".join(para), {})


class _HTML(HTMLParser):
    BLOCK: ClassVar[frozenset[str]] = frozenset(
        {"p", "div", "li", "tr", "br", "section", "article", "blockquote", "pre", "table", "ul", "ol", "dd",
         "dt", "header", "footer", "main", "nav"}
    )  # fmt: skip
    SKIP: ClassVar[frozenset[str]] = frozenset({"script", "style", "head", "noscript", "template", "svg"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[Block] = []
        self.buf: list[str] = []
        self.skip = 0
        self.heading: int | None = None

    def _flush(self) -> None:
        text = re.sub(r"[ \t\r\f\v]+", " ", "".join(self.buf)).strip()
        self.buf = []
        if not text:
            return
        if self.heading is not None:
            self.out.append(("heading", " ".join(text.split()), {"level": self.heading}))
        else:
            self.out.append(("para", text, {}))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self.heading = int(tag[1])
        elif tag in self.BLOCK:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self.heading = None
        elif tag in self.BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.buf.append(data)
            if sum(len(b) for b in self.buf) > 8 * CHUNK_SIZE:
                self._flush()


def html_blocks(path: Path, *, max_line: int) -> Iterator[Block]:
    parser = _HTML()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with open(path, "rb") as f:
        while True:
            raw = f.read(READ_BYTES)
            parser.feed(decoder.decode(raw, final=not raw))
            yield from parser.out
            parser.out = []
            if not raw:
                break
    parser.close()
    parser._flush()
    yield from parser.out


def pdf_blocks(path: Path) -> Iterator[Block]:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        raise MissingExtraError(
            f"{path}: reading PDF files needs pypdf: pip install podium[memory]"
        ) from None
    try:
        reader = PdfReader(str(path))
        for number, page in enumerate(reader.pages, 1):
            yield ("page", "", {"page": number})
            text = page.extract_text() or ""
            for para in re.split(r"\n\s*\n", text):
                if para.strip():
                    yield ("para", para.strip(), {"page": number})
    except PdfReadError as exc:
        raise IngestError(f"{path}: not a readable PDF ({exc})") from None


def blocks(path: Path, *, chunk_size: int = CHUNK_SIZE) -> Iterator[Block]:
    kind = kind_of(path)
    if kind == "pdf":
        return pdf_blocks(path)
    check_text(path)
    if kind == "html":
        return html_blocks(path, max_line=4 * chunk_size)
    return text_blocks(path, markdown=kind == "markdown", max_line=4 * chunk_size)


def _pieces(text: str, size: int) -> Iterator[str]:
    """``text`` cut into pieces of at most ``size``: at sentence ends, else at spaces, else anywhere."""
    if len(text) <= size:
        yield text
        return
    buf = ""
    for sentence in _SENTENCE.split(text):
        while len(sentence) > size:
            cut = sentence.rfind(" ", 0, size)
            cut = cut if cut > size // 2 else size
            if buf:
                yield buf
                buf = ""
            yield sentence[:cut].strip()
            sentence = sentence[cut:].strip()
        if buf and len(buf) + 1 + len(sentence) > size:
            yield buf
            buf = ""
        buf = f"{buf} {sentence}".strip() if buf else sentence
    if buf:
        yield buf


def _tail(text: str, overlap: int) -> str:
    if overlap <= 0 or len(text) <= overlap:
        return text if overlap > 0 else ""
    cut = text.find(" ", len(text) - overlap)
    return text[cut + 1 :] if cut != -1 else text[-overlap:]


def chunks(
    path: Path, *, chunk_size: int = CHUNK_SIZE, overlap: int = OVERLAP
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(text, metadata) of each chunk of the file at ``path``, in order, streamed."""
    if chunk_size < 100:
        raise IngestError("chunk_size must be at least 100 characters")
    if not 0 <= overlap < chunk_size // 2:
        raise IngestError("overlap must be at least 0 and less than half of chunk_size")
    titles: list[tuple[int, str]] = []
    page: int | None = None
    body: list[str] = []
    size = 0
    carry = ""

    def meta() -> dict[str, Any]:
        m: dict[str, Any] = {}
        if titles:
            m["section"] = " > ".join(t for _, t in titles)
        if page is not None:
            m["page"] = page
        return m

    def head() -> str:
        return titles[-1][1] if titles else ""

    def emit() -> Iterator[tuple[str, dict[str, Any]]]:
        nonlocal body, size, carry
        if not body:
            return
        text = "\n\n".join(body)
        title = head()
        full = f"{title}\n\n{text}" if title and not text.startswith(title) else text
        yield full, meta()
        carry = _tail(text, overlap)
        body, size = [], 0

    room = chunk_size
    carried = False
    for kind, text, m in blocks(path, chunk_size=chunk_size):
        if kind in ("heading", "page"):
            yield from emit()
            carry = ""
            if kind == "page":
                page = m["page"]
            else:
                level = int(m.get("level", 1))
                titles = [t for t in titles if t[0] < level] + [(level, text[:200])]
            continue
        room = chunk_size - len(head()) - 2
        for piece in _pieces(text, max(room - overlap, room // 2)):
            if body and size + len(piece) + 2 > room and not (len(body) == 1 and carried):
                yield from emit()
            carried = False
            if not body and carry:
                body.append(carry)
                size = len(carry)
                carry = ""
                carried = True
            body.append(piece)
            size += len(piece) + 2
    yield from emit()
