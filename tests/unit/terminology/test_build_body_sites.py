"""build_body_sites: rebuild the Annex L table from a local PS3.16 (DocBook XML or chtml HTML)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamer.fhir import terminology as t
from streamer.fhir.terminology import build_body_sites as bbs

FIXTURES = Path(__file__).resolve().parents[2] / "data" / "terminology"
XML = FIXTURES / "part16_annex_l.xml"
HTML = FIXTURES / "chapter_L.html"

EXPECTED = [
    ("ABDOMEN", "SCT", "818981001", "Abdomen"),
    ("ABDOMENPELVIS", "SCT", "818982008", "Abdomen and Pelvis"),
    ("CHEST", "SCT", "43799004", "Chest"),
    ("FETALARM", None, None, "Fetal arm"),
    ("HEAD", "SCT", "69536005", "Head"),
    ("TSPINE", "SCT", "122495006", "Thoracic spine"),
]


def _rows(doc: dict[str, object]) -> list[tuple[object, ...]]:
    entries = doc["entries"]
    assert isinstance(entries, list)
    return [(e["body_part_examined"], e["scheme"], e["code"], e["display"]) for e in entries]


@pytest.mark.parametrize("path", [XML, HTML], ids=["docbook-xml", "chtml-html"])
def test_build_reads_table_l1(path: Path) -> None:
    doc = bbs.build(path)
    assert _rows(doc) == EXPECTED
    assert "Annex L" in str(doc["source"])
    assert path.name in str(doc["source"])
    assert doc["system"] == "http://snomed.info/sct"


def test_xml_source_names_the_edition() -> None:
    assert "DICOM PS3.16 2025b" in str(bbs.build(XML)["source"])


def test_decoy_tables_are_skipped_and_table_found_by_id() -> None:
    _, table = bbs.find_table(HTML)
    assert table.id == "table_L-1"
    assert table.title.startswith("Correspondence of Anatomic Region Codes")
    _, xml_table = bbs.find_table(XML)
    assert xml_table.id == "table_L-1"


def test_rows_without_body_part_are_dropped() -> None:
    assert "Abdominal cavity" not in [row[3] for row in _rows(bbs.build(XML))]


def test_several_terms_in_one_cell_and_duplicates() -> None:
    table = bbs.Table(
        id="table_L-1",
        header=["Code Value", "Code Meaning", "Body Part Examined"],
        rows=[["1", "One", "ONE, UNO"], ["2", "Two", "ONE"], ["3", "Three"]],
    )
    assert [(e["body_part_examined"], e["code"]) for e in bbs.entries(table)] == [
        ("ONE", "1"),
        ("UNO", "1"),
    ]


def test_main_writes_a_table_the_lookups_understand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "body_sites.json"
    assert bbs.main([str(HTML), "-o", str(out)]) == 0
    assert "6 body parts" in capsys.readouterr().out
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert _rows(doc) == EXPECTED


def test_fixture_agrees_with_the_shipped_table() -> None:
    for term, _scheme, code, display in EXPECTED:
        hit = t.body_site(term)
        if code is None:
            assert hit is None
        else:
            assert hit == {"system": "http://snomed.info/sct", "code": code, "display": display}


def test_no_table_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "other.html"
    page.write_text(
        "<html><body><table><tr><th>A</th></tr><tr><td>1</td></tr></table></body></html>"
    )
    assert bbs.main([str(page), "-o", str(tmp_path / "x.json")]) == 1
    assert "no Table L-1" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bbs.main([str(tmp_path / "missing.xml"), "-o", str(tmp_path / "x.json")]) == 1
    assert "error" in capsys.readouterr().err
