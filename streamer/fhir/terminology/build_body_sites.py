"""Rebuild ``data/body_sites.json`` from a local copy of DICOM PS3.16 Annex L (no network).

``python -m streamer.fhir.terminology.build_body_sites PATH [-o OUT]``

PATH is either

- the standard's DocBook source ``part16.xml`` (DocBook 5, namespace ``http://docbook.org/ns/docbook``;
  the table is ``<table label="L-1" xml:id="table_L-1">`` with ``<thead>``/``<tbody>`` rows of
  ``<th>``/``<td>`` cells holding ``<para>`` text), or
- the rendered HTML, ``chapter_L.html`` (chtml) or the single-page ``part16.html``: the table is a
  ``<div class="table">`` whose first ``<a id="table_L-1">`` names it, its cells ``<td><p>..</p></td>``.

Table L-1 "Correspondence of Anatomic Region Codes and Body Part Examined Defined Terms" is found by
its id (``table_L-1``), or else as the first table whose header row has the columns "Code Value",
"Code Meaning" and "Body Part Examined". Columns are found by header name, so extra columns (and
their order) do not matter. Every row with a Body Part Examined value becomes an entry; a cell
holding several defined terms gives one entry per term; rows whose Code Value is empty (e.g. the
fetal terms) keep ``code: null``. The output cites the file name and, when present, the edition
(DocBook ``<subtitle>`` / HTML ``<title>``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).with_name("data") / "body_sites.json"
TABLE_ID = "table_L-1"
_DB = "{http://docbook.org/ns/docbook}"
_XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
_CONTAINERS = frozenset(f"{_DB}{name}" for name in ("chapter", "appendix", "section", "part"))
_WS = re.compile(r"\s+")
_TERM = re.compile(r"[A-Z0-9_]+")
_TABLE_PREFIX = re.compile(r"^Table\s+[\w.\-]+?\.\s+")


class AnnexLError(ValueError):
    """The input holds no recognisable Table L-1."""


@dataclass
class Table:
    """A parsed table: its id (may be empty), title, header cells and body rows (cell texts)."""

    id: str = ""
    title: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


def _clean(text: str) -> str:
    return _WS.sub(" ", text.replace("\u00a0", " ")).strip()


# --- DocBook XML --------------------------------------------------------------------------------


def _xml_text(elem: ET.Element) -> str:
    return _clean("".join(elem.itertext()))


def _xml_tables(path: Path) -> tuple[str, Iterator[Table]]:
    """Tables of a DocBook file, streamed (part16.xml is large); the edition from <subtitle>."""
    edition: list[str] = []

    def tables() -> Iterator[Table]:
        for _event, elem in ET.iterparse(path, events=("end",)):  # local file given by the user
            tag = elem.tag
            if tag == f"{_DB}subtitle" and not edition:
                edition.append(_xml_text(elem))
            if tag in _CONTAINERS:
                elem.clear()  # tables inside were handled at their own end event; keep memory flat
                continue
            if tag != f"{_DB}table":
                continue
            table = Table(id=elem.get(_XML_ID) or "")
            caption = elem.find(f"{_DB}caption")
            table.title = _xml_text(caption) if caption is not None else ""
            for section, target in ((f"{_DB}thead", "header"), (f"{_DB}tbody", "rows")):
                for part in elem.iter(section):
                    for tr in part.iter(f"{_DB}tr"):
                        cells = [_xml_text(c) for c in tr if c.tag in (f"{_DB}td", f"{_DB}th")]
                        if target == "header":
                            table.header = table.header or cells
                        else:
                            table.rows.append(cells)
            elem.clear()
            yield table

    # Materialise lazily but let the caller stop early; the edition is known once parsing passed it.
    gen = tables()
    first = next(gen, None)
    items: list[Table] = [first] if first is not None else []

    def chained() -> Iterator[Table]:
        yield from items
        yield from gen

    return (edition[0] if edition else ""), chained()


# --- HTML ---------------------------------------------------------------------------------------


class _HTMLTables(HTMLParser):
    """Collect every <table> (with its DocBook-XSL ``<div class="table"><a id=..>`` id and title)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[Table] = []
        self.title = ""
        self._in_title = False
        self._pending_id = ""
        self._pending_title: list[str] | None = None
        self._stack: list[Table] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._row_is_header = False
        self._section = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "title" and not self.title:
            self._in_title = True
        elif tag == "a" and (a.get("id") or "").startswith("table_") and self._cell is None:
            self._pending_id = a.get("id") or ""
            self._pending_title = []
        elif tag == "table":
            title = _TABLE_PREFIX.sub("", _clean("".join(self._pending_title or [])))
            self._stack.append(Table(id=self._pending_id, title=title))
            self._pending_id, self._pending_title = "", None
        elif not self._stack:
            return
        elif tag in ("thead", "tbody"):
            self._section = tag
        elif tag == "tr":
            self._row, self._row_is_header = [], self._section == "thead"
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
            self._row_is_header = self._row_is_header or (tag == "th" and self._section != "tbody")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif not self._stack:
            return
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(_clean("".join(self._cell)))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            table = self._stack[-1]
            if self._row_is_header and not table.header:
                table.header = self._row
            elif not self._row_is_header:
                table.rows.append(self._row)
            self._row = None
        elif tag in ("thead", "tbody"):
            self._section = ""
        elif tag == "table":
            self.tables.append(self._stack.pop())

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._cell is not None:
            self._cell.append(data)
        elif self._pending_title is not None:
            self._pending_title.append(data)


def _html_tables(path: Path) -> tuple[str, Iterator[Table]]:
    parser = _HTMLTables()
    with path.open(encoding="utf-8", errors="replace") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), ""):
            parser.feed(chunk)
    parser.close()
    title = _clean(parser.title)
    edition = title if re.search(r"PS\s?3\.16|DICOM", title) else ""
    return edition, iter(parser.tables)


# --- extraction ---------------------------------------------------------------------------------


def _column(header: Sequence[str], name: str) -> int | None:
    wanted = name.casefold()
    for i, h in enumerate(header):
        if h.casefold() == wanted:
            return i
    return None


def _is_annex_l(table: Table) -> bool:
    if table.id == TABLE_ID:
        return True
    return all(
        _column(table.header, n) is not None
        for n in ("Code Value", "Code Meaning", "Body Part Examined")
    )


def find_table(path: Path) -> tuple[str, Table]:
    """(edition, Table L-1) of a local PS3.16 file (``.xml`` DocBook, else HTML)."""
    is_xml = path.suffix.lower() == ".xml"
    edition, tables = _xml_tables(path) if is_xml else _html_tables(path)
    for table in tables:
        if _is_annex_l(table):
            return edition, table
    raise AnnexLError(f"{path}: no Table L-1 (Body Part Examined correspondence) found")


def entries(table: Table) -> list[dict[str, Any]]:
    """Rows of Table L-1 as ``{body_part_examined, scheme, code, display}`` entries (first wins)."""
    code_col = _column(table.header, "Code Value")
    meaning_col = _column(table.header, "Code Meaning")
    bpe_col = _column(table.header, "Body Part Examined")
    scheme_col = _column(table.header, "Coding Scheme Designator")
    if code_col is None or meaning_col is None or bpe_col is None:
        raise AnnexLError(
            f"table {table.id or table.title!r}: missing columns, header {table.header}"
        )
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in table.rows:

        def cell(i: int | None, row: list[str] = row) -> str:
            return row[i] if i is not None and i < len(row) else ""

        terms = [t for t in re.split(r"[\s,;/]+", cell(bpe_col).upper()) if _TERM.fullmatch(t)]
        for term in terms:
            if term in seen:
                continue
            seen.add(term)
            out.append(
                {
                    "body_part_examined": term,
                    "scheme": cell(scheme_col) or None,
                    "code": cell(code_col) or None,
                    "display": cell(meaning_col) or None,
                }
            )
    return out


def build(path: Path) -> dict[str, Any]:
    """The body_sites.json document for a local PS3.16 copy."""
    edition, table = find_table(path)
    rows = entries(table)
    where = f"{edition}, " if edition else ""
    return {
        "source": (
            f"DICOM PS3.16 Annex L Table L-1 '{table.title or 'Correspondence of Anatomic Region Codes and Body Part Examined Defined Terms'}'"
            f" ({where}file {path.name}); every row with a Body Part Examined value; rows without a"
            " code value have code null. Built by streamer.fhir.terminology.build_body_sites."
        ),
        "system": "http://snomed.info/sct",
        "entries": rows,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: write the table, print the row count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="local part16.xml, part16.html or chapter_L.html")
    parser.add_argument(
        "-o", "--out", type=Path, default=DATA_FILE, help=f"output (default {DATA_FILE})"
    )
    args = parser.parse_args(argv)
    try:
        doc = build(args.path)
    except (AnnexLError, OSError, ET.ParseError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(doc['entries'])} body parts")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
