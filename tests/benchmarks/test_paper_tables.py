"""Tables II / III are built from records alone: measured cells, reasons for missing ones, published rows
marked, the compound-degradation wins counted; and only the generated block of a document is rewritten."""
import json

import pytest
from doc_blocks import read_block, replace_block
from paper_tables import missing, table2, table3, wins


def _record(folder, name, method, scale, dataset, degradation, psnr, lpips=None, condition="blind"):
    r = {"method": method, "scale": scale, "dataset": dataset, "degradation": degradation, "condition": condition,
         "n_images": 5, "psnr": psnr, "ssim": 0.9}
    if lpips is not None:
        r["lpips"] = lpips
    meta = {"commit": "abcdef1234567890", "grey_convention": "basicsr", "date": "d", "machine": "m", "command": "c"}
    (folder / f"{name}.json").write_text(json.dumps({"results": [r], "meta": meta}))


def test_table2_cells_reasons_and_published_rows(tmp_path):
    _record(tmp_path, "causalsr-x4-Set5", "causalsr", 4, "Set5", "bicubic", 31.26)
    _record(tmp_path, "causalsr-told-x4-Set5", "causalsr", 4, "Set5", "bicubic", 31.30, condition="oracle")
    (tmp_path / "dat-light-x2-Urban100.skipped").write_text("about 202 min single-threaded here\n")
    text = table2(tmp_path)
    x4 = text.split("**x4**")[1]
    assert "| CausalSR (ours: bundled, blind) | 31.26 / 0.9000 | not measured (not run yet)" in x4
    assert "| CausalSR (ours: bundled, told 'clean') | 31.30 / 0.9000 |" in x4
    assert "measured here (weights of abcdef123456)" in x4
    assert "| MemNet (published) | 31.74 / 0.8893 |" in x4 and "| CausalSR (paper) (published) | 33.01" in x4
    assert "not measured (about 202 min single-threaded here)" in text.split("**x3**")[0]
    assert missing(tmp_path, "span", 3, "Set5") == "no x3 model"
    assert "MemNet" not in text.split("**x3**")[1].split("**x4**")[0]  # no published x3 row for it


def test_table3_and_the_compound_wins(tmp_path):
    for ds, ours, peer in (("Set14", 25.0, 24.0), ("BSD100", 24.0, 24.5)):
        _record(tmp_path, f"causalsr-x4-{ds}-jpeg", "causalsr", 4, ds, "jpeg", ours, lpips=0.30)
        _record(tmp_path, f"realesrgan-x4-{ds}-jpeg", "realesrgan", 4, ds, "jpeg", peer, lpips=0.20)
    text = table3(tmp_path)
    assert "| Set14 | Real-ESRGAN x4plus | not measured (not run yet) | not measured (not run yet) | 24.00" in text
    assert "Real-ESRGAN" not in text.split("**x3**")[1].split("**x4**")[0]  # x4 only
    assert ("- jpeg, ours vs Real-ESRGAN x4plus: higher PSNR in 1 of 2 cells (x4 Set14); "
            "Real-ESRGAN x4plus has the lower LPIPS in 2 of 2") in text
    assert wins({}, ("span",))[0] == "- jpeg, ours vs SPAN ch48: no cell measured for both"


def test_replace_block_rewrites_only_its_block(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("head\n<!-- begin generated: t2 (by x) -->\nold\n<!-- end generated: t2 -->\ntail\n")
    replace_block(doc, "t2", "new\nlines")
    expected = "head\n<!-- begin generated: t2 (by x) -->\nnew\nlines\n<!-- end generated: t2 -->\ntail\n"
    assert doc.read_text() == expected
    assert read_block(doc, "t2") == "new\nlines\n" and read_block(doc, "t3") is None
    with pytest.raises(ValueError, match="no '<!-- begin generated: t3"):
        replace_block(doc, "t3", "x")
