"""`causalsr demo` without gradio: listed in the help, and a missing extra is named in one line, exit 2."""
import sys
import tempfile

import pytest

from causalsr.cli.main import main


@pytest.fixture
def no_gradio(monkeypatch, tmp_path):
    """As on a machine without the `demo` extra (whether or not this one has it); temp files under tmp_path."""
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now raises ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "causalsr.demo.app", raising=False)
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_demo_is_a_listed_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "demo" in capsys.readouterr().out


def test_a_missing_gradio_names_the_extra(no_gradio, capsys):
    assert main(["demo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "causalsr demo: error: gradio is not installed; install it with: pip install 'causalsr[demo]'"
    assert not list(no_gradio.iterdir()), "the demo's temporary folder was left behind"


@pytest.mark.parametrize("args", [["--max-pixels", "10"], ["--max-mb", "0"], ["--port", "70000"], ["--port", "0"]])
def test_bad_limits_are_setup_errors(args, no_gradio, capsys):
    assert main(["demo", *args]) == 2
    assert capsys.readouterr().err.startswith("causalsr demo: error: ")
