"""A report page read back with the standard library's HTML parser: its images, links and tables."""

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path


@dataclass
class Table:
    id: str | None
    classes: list[str]
    section: str | None
    """id of the enclosing <section> (the experiment)."""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)

    def records(self) -> list[dict[str, str]]:
        return [dict(zip(self.header, row)) for row in self.rows]


class ReportPage(HTMLParser):
    def __init__(self, path: Path):
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.tables: list[Table] = []
        self.list_items: dict[str, list[str]] = {}
        self.ids: dict[str, str] = {}
        self.cells: dict[str, str] = {}
        """data-cell key -> text: the values of the success block at the top."""
        self._section: str | None = None
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._list: str | None = None
        self._item: list[str] | None = None
        self._id_text: tuple[str, list[str]] | None = None
        self._data_cell: tuple[str, str, list[str]] | None = None
        self.feed(path.read_text())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("data-cell"):
            self._data_cell = (a["data-cell"] or "", tag, [])
        if tag == "section":
            self._section = a.get("id")
        elif tag == "img":
            self.images.append(a["src"] or "")
        elif tag == "a":
            self.links.append(a["href"] or "")
        elif tag == "table":
            self.tables.append(Table(a.get("id"), (a.get("class") or "").split(), self._section))
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "ul":
            self._list = (a.get("class") or "") + "@" + str(self._section)
        elif tag == "li":
            self._item = []
        elif tag == "dd" and a.get("id"):
            self._id_text = (a["id"], [])

    def handle_endtag(self, tag: str) -> None:
        if self._data_cell is not None and tag == self._data_cell[1]:
            key, _, text = self._data_cell
            self.cells[key] = " ".join("".join(text).split())
            self._data_cell = None
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            table = self.tables[-1]
            if table.header:
                table.rows.append(self._row)
            else:
                table.header = self._row
            self._row = None
        elif tag == "li" and self._item is not None and self._list is not None:
            self.list_items.setdefault(self._list, []).append(" ".join("".join(self._item).split()))
            self._item = None
        elif tag == "dd" and self._id_text is not None:
            self.ids[self._id_text[0]] = "".join(self._id_text[1]).strip()
            self._id_text = None

    def handle_data(self, data: str) -> None:
        id_text = self._id_text[1] if self._id_text else None
        data_cell = self._data_cell[2] if self._data_cell else None
        for buffer in (self._cell, self._item, id_text, data_cell):
            if buffer is not None:
                buffer.append(data)

    def table(self, section: str, kind: str) -> Table:
        return next(t for t in self.tables if t.section == section and kind in t.classes)
