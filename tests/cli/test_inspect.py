"""`causalsr inspect`: the table, JSON, a non-zero exit naming the dead part, and one-line setup errors."""
import json

import pytest
import torch
import torch.nn as nn

from causalsr.cli.main import main
from causalsr.models.model_file import save_pretrained
from helpers import tiny_model


@pytest.fixture(scope="module")
def dead_model(tmp_path_factory) -> str:
    """A tiny saved model whose conditioning trunk is dead (bias -100: every unit outputs a constant)."""
    model = tiny_model(2)
    with torch.no_grad():
        for m in model.restorer.conditioning.cond.modules():
            if isinstance(m, nn.Linear):
                m.bias.fill_(-100.0)
    path = tmp_path_factory.mktemp("model") / "dead"
    save_pretrained(model, path)
    return str(path)


def test_inspect_names_the_dead_part(dead_model, tmp_path, capsys):
    out_json = tmp_path / "live.json"
    code = main(["inspect", dead_model, "--images", "2", "--json", str(out_json)])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.strip().count("\n") == 0 and "trunk_cond_live" in err and err.startswith("causalsr inspect:")
    row = next(line for line in out.splitlines() if line.startswith("trunk_cond_live"))
    assert row.split()[1] == "0" and row.endswith("FAIL")
    doc = json.loads(out_json.read_text())
    assert doc["scale"] == 2 and doc["images"] == 2 and doc["probe"] == "synthetic"
    assert "trunk_cond_live" in doc["failed"] and doc["parts"]["trunk_cond_live"]["pass"] is False
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write left no temporary file


def test_inspect_setup_errors(dead_model, capsys):
    for args, needle in ((["inspect", "no/such/model"], "not found"),
                         (["inspect", dead_model, "--dataset", "no/such/folder"], "--dataset")):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.strip().count("\n") == 0 and needle in err and err.startswith("causalsr inspect: error:")


def test_inspect_rejects_one_image(capsys):
    with pytest.raises(SystemExit) as e:
        main(["inspect", "x4", "--images", "1"])
    assert e.value.code == 2 and "--images" in capsys.readouterr().err
