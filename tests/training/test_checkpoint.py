"""Training checkpoints: atomic pair of files, rotation, `latest`, corrupt-skip, safe loading, RNG."""
import random

import numpy as np
import pytest
import torch

from causalsr.training import checkpoint as ckpt


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(3, 2)
        self.semantic = torch.nn.Linear(2, 2).requires_grad_(False)  # stands in for the frozen encoder
        self.register_buffer("ema", torch.zeros(2))


def _state(step):
    opt = torch.optim.Adam(Tiny().parameters())
    return {"optimizers": {"theta": opt.state_dict()}, "rng": ckpt.rng_state(), "note": f"s{step}", "n": [1, 2.5]}


def test_save_rotate_latest_and_round_trip(tmp_path):
    model = Tiny()
    for step in (10, 20, 30, 40):
        with torch.no_grad():
            model.body.weight.fill_(step)
        ckpt.save_checkpoint(tmp_path, step, model, _state(step), keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest", "step_00000030.safetensors", "step_00000030.state.pt",
                     "step_00000040.safetensors", "step_00000040.state.pt"]
    prefix = ckpt.find_latest_valid(tmp_path)
    assert prefix.name == "step_00000040"
    tensors, state = ckpt.read_checkpoint(prefix)
    assert not any(k.startswith("semantic.") for k in tensors)      # frozen encoder excluded
    assert "ema" in tensors and torch.all(tensors["body.weight"] == 40)
    assert state["step"] == 40 and state["note"] == "s40" and state["n"] == [1, 2.5]
    fresh = Tiny()
    ckpt.load_weights(fresh, tensors, prefix)
    assert torch.equal(fresh.body.weight, model.body.weight)
    # The training state holds no arbitrary objects: it loads with weights_only=True.
    torch.load(str(prefix) + ".state.pt", weights_only=True)


@pytest.mark.parametrize("damage", ["truncate_weights", "flip_weights", "truncate_state", "missing_state"])
def test_corrupt_newest_checkpoint_is_skipped(tmp_path, damage, capsys):
    model = Tiny()
    for step in (1, 2):
        ckpt.save_checkpoint(tmp_path, step, model, _state(step), keep=3)
    weights = tmp_path / "checkpoints" / "step_00000002.safetensors"
    state = tmp_path / "checkpoints" / "step_00000002.state.pt"
    if damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[:-7])
    elif damage == "flip_weights":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "truncate_state":
        state.write_bytes(state.read_bytes()[:100])
    else:
        state.unlink()
    assert ckpt.find_latest_valid(tmp_path).name == "step_00000001"
    assert "skipping checkpoint" in capsys.readouterr().out
    assert ckpt.resolve_resume("auto", tmp_path).name == "step_00000001"
    with pytest.raises(ckpt.CheckpointError):
        ckpt.resolve_resume(str(weights), tmp_path)


def test_resume_targets(tmp_path):
    assert ckpt.resolve_resume("auto", tmp_path / "nothing") is None
    ckpt.save_checkpoint(tmp_path, 5, Tiny(), _state(5))
    prefix = tmp_path / "checkpoints" / "step_00000005"
    for target in (tmp_path, tmp_path / "checkpoints", str(prefix) + ".safetensors", str(prefix) + ".state.pt", prefix):
        assert ckpt.resolve_resume(str(target), tmp_path) == prefix
    with pytest.raises(ckpt.CheckpointError):
        ckpt.resolve_resume(str(tmp_path / "empty_dir_missing"), tmp_path)


def test_mismatched_model_is_refused(tmp_path):
    ckpt.save_checkpoint(tmp_path, 1, Tiny(), _state(1))
    tensors, _ = ckpt.read_checkpoint(ckpt.find_latest_valid(tmp_path))
    other = torch.nn.Linear(3, 3)
    with pytest.raises(ckpt.CheckpointError, match="do not match"):
        ckpt.load_weights(other, tensors, "x")


def test_rng_state_round_trip():
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    state = ckpt.rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    ckpt.set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
