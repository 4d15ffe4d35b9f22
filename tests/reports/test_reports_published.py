"""Published rows: the shipped MEAD file parses, directions follow the registry, bad files are refused by name."""

from __future__ import annotations

import pytest
import yaml

from dicetalk_bench.reports.published import PublishedRowsError, load_published, parse_published, published_by_row


def test_shipped_mead_rows():
    values = load_published()
    rows = published_by_row(values, "mead")
    methods = [m for (_, m) in rows]
    assert methods == ["Real video", "EAT", "EDTalk", "DICE-Talk", "EmoCAST", "Xemo-Talker"]
    dice = rows[("xemo-talker", "DICE-Talk")]
    assert dice["emo-acc"].value == pytest.approx(42.03) and dice["sync-d"].value == pytest.approx(8.76)
    assert dice["sync-d"].higher_is_better is False and dice["sync-c"].higher_is_better is True
    assert dice["cpbd"].computed_here is False and dice["fid"].computed_here is True
    assert rows[("xemo-talker", "Real video")]["fid"].kind == "ceiling"
    src = dice["fid"].source
    assert src.arxiv == "2608.14700" and src.checked is False
    assert "secondary summary" in src.citation and "2608.14700" in src.citation


def _doc(**over):
    doc = {"schema": "dicetalk_bench.published_rows", "schema_version": 1,
           "sources": {"s": {"arxiv": "2504.18087", "table": "Table 1", "protocol_note": "n", "checked": True}},
           "rows": [{"source": "s", "method": "M", "dataset": "mead", "values": {"fid": 10.0}}]}
    doc.update(over)
    return doc


@pytest.mark.parametrize("change, message", [
    ({"schema": "other"}, "not a dicetalk_bench.published_rows"),
    ({"rows": [{"source": "nope", "method": "M", "dataset": "mead", "values": {"fid": 1}}]}, "unknown source"),
    ({"rows": [{"source": "s", "method": "M", "dataset": "mead", "values": {"cpbd": 1}}]}, "declare its direction"),
    ({"rows": [{"source": "s", "method": "M", "dataset": "mead", "values": {"fid": "12"}}]}, "must be a number"),
    ({"higher_is_better": {"fid": True}}, "contradicts the metric registry"),
    ({"rows": [{"source": "s", "method": "M", "dataset": "mead", "values": {"fid": 1}},
               {"source": "s", "method": "M", "dataset": "mead", "values": {"fid": 2}}]}, "duplicate entry"),
    ({"sources": {"s": {"arxiv": "24.1", "table": "T", "protocol_note": "n", "checked": True}}}, "arXiv id"),
])
def test_bad_documents_are_refused(change, message):
    with pytest.raises(PublishedRowsError, match=message):
        parse_published(_doc(**change), origin="x.yaml")


def test_user_file_round_trip(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump(_doc()))
    (v,) = load_published([p])
    assert (v.method, v.metric, v.value, v.higher_is_better, v.source.checked) == ("M", "fid", 10.0, False, True)
    with pytest.raises(PublishedRowsError, match="does not exist"):
        load_published([tmp_path / "missing.yaml"])
