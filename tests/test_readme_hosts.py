"""README's "Use it from chaiNNer / ComfyUI / ONNX Runtime": every command and snippet in it runs and does what it
says.

Shell lines run with bash in a temporary folder (`causalsr` and `python3` are this interpreter's); a `pip install`
line is checked against pyproject's extras instead of run. Python blocks run in that folder, in order.
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import causalsr
from helpers import import_spandrel, photo

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Use it from chaiNNer / ComfyUI / ONNX Runtime"


def _blocks() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    section = section[: section.index("\n## ", len(SECTION))]
    return re.findall(r"```(bash|python)\n(.*?)```", section, re.S)


def _run_bash(block: str, cwd: Path) -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    extras = pyproject[pyproject.index("[project.optional-dependencies]"):].split("\n[", 1)[0]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for line in block.strip().splitlines():
        if line.startswith("pip install"):
            extra = re.fullmatch(r'pip install "causalsr\[(\w+)\]"', line)
            assert extra and re.search(rf"^{extra.group(1)} = \[", extras, re.M), line
            continue
        if shutil.which("causalsr", path=env["PATH"]) is None:
            line = re.sub(r"^causalsr ", f"{sys.executable} -m causalsr ", line)
        subprocess.run(["bash", "-c", line], cwd=cwd, env=env, check=True, capture_output=True)


def test_readme_section_has_the_commands_this_test_expects():
    blocks = _blocks()
    assert [lang for lang, _ in blocks] == ["bash", "python", "python", "bash"]
    assert "causalsr export --scale 4 --blind" in blocks[0][1] and "register()" in blocks[2][1]


@pytest.mark.slow
def test_every_command_and_snippet_in_the_hosts_section_runs(tmp_path, monkeypatch):
    spandrel = import_spandrel()
    monkeypatch.chdir(tmp_path)
    lr = photo(40, 56, seed=3)
    Image.fromarray(lr).save(tmp_path / "photo.png")
    namespaces = []
    for lang, block in _blocks():
        if lang == "bash":
            _run_bash(block, tmp_path)
        else:
            namespaces.append({})
            exec(compile(block, "README.md", "exec"), namespaces[-1])
    # ONNX Runtime: the blind graph's PNG is the PyTorch model's output, to within one grey level
    out = np.asarray(Image.open(tmp_path / "photo_x4.png"))
    assert out.shape == (160, 224, 3)
    assert np.abs(out.astype(int) - causalsr.load("x4").upscale(lr, tile=None).astype(int)).max() <= 1
    # spandrel: the snippet's model is ours, scale 4, tiling discouraged
    model = namespaces[1]["model"]
    assert model.architecture.id == "CausalSR" and model.scale == 4
    assert model.tiling == spandrel.ModelTiling.DISCOURAGED
    # ComfyUI: the custom node registers the architecture, and the copied file loads as ComfyUI loads it
    node = tmp_path / "ComfyUI" / "custom_nodes" / "causalsr_spandrel" / "__init__.py"
    spec = importlib.util.spec_from_file_location("causalsr_spandrel", node)
    assert spec and spec.loader
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    state = spandrel.ModelLoader().load_state_dict_from_file(
        tmp_path / "ComfyUI" / "models" / "upscale_models" / "causalsr_x4.safetensors")
    comfy = spandrel.ModelLoader().load_from_state_dict(state).eval()
    x = torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255
    assert isinstance(comfy, spandrel.ImageModelDescriptor) and comfy(x).shape == (1, 3, 160, 224)
