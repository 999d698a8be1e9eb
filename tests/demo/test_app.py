"""End to end: `causalsr demo` served on a free port, driven in a real headless Chromium through Playwright.

The browser is the system's (Debian's `chromium`); Playwright's own browser
download is never used. Skips, with a one-line reason, without gradio (extra
`demo`), Playwright or a Chromium; `.ci/run` installs all three
(`scripts/setup_demo.sh`). CAUSALSR_DEMO_SCREENSHOT=PATH also saves the
screenshot there (docs/images/demo.png is made so).
"""
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from causalsr.data.degradations import degrade_numpy_uint8, parse_degradation
from helpers import photo

# As the machine notes say: without the background-networking flags Chromium keeps dialling out of a closed network.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 120_000  # one wait for the page: generous, the 2-core CPU may be shared


def _chromium() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


def _skip_reason() -> str | None:
    if importlib.util.find_spec("gradio") is None:
        return "gradio not installed: pip install 'causalsr[demo]' (CI: scripts/setup_demo.sh)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright not installed: pip install playwright (CI: scripts/setup_demo.sh)"
    if _chromium() is None:
        return "no system Chromium: apt-get install chromium (Playwright's browser download is not used)"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The demo in its own process (the real CLI); on teardown SIGTERM must stop it and remove its temp files."""
    tmp = tmp_path_factory.mktemp("demo-tmp")
    log = tmp_path_factory.mktemp("demo-log") / "server.log"
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "causalsr", "demo", "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"causalsr demo did not come up on {url}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)
    yield url
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("causalsr demo did not stop on SIGTERM")
    left = [p.name for p in tmp.iterdir()]
    assert not left, f"the demo left temporary files behind: {left}"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A noisy photo (noise sigma 15, 64x64) and the three uploads the page must refuse."""
    d = tmp_path_factory.mktemp("uploads")
    lr = degrade_numpy_uint8(photo(256, 256, seed=3), parse_degradation("noise:15", 4, seed=0))
    Image.fromarray(lr).save(d / "noisy.png")
    (d / "empty.png").write_bytes(b"")
    (d / "notes.txt").write_text("hello, not an image\n")
    Image.new("RGB", (1200, 1000), (90, 120, 200)).save(d / "big.png")  # 1.2 MP: over the default 1 MP
    return d


def _open(browser, url):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url)
    page.wait_for_selector("#upload input[type=file]", state="attached", timeout=WAIT_MS)
    return page


def _expect_status(page, text: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#status")).to_contain_text(text, timeout=WAIT_MS)


def _upload(page, path: Path, expect_text: str) -> None:
    """Upload as a person would: a shown file is cleared first (the x button), then the new one is dropped in."""
    if page.locator("#upload input[type=file]").count() == 0:
        page.locator("#upload button[aria-label='Clear']").click()
    page.locator("#upload input[type=file]").set_input_files(str(path), timeout=WAIT_MS)
    _expect_status(page, expect_text)


def _download(page, folder: Path, name: str) -> np.ndarray:
    with page.expect_download(timeout=WAIT_MS) as d:
        page.locator("#download").click()
    target = folder / name
    d.value.save_as(target)
    return np.asarray(Image.open(target).convert("RGB"))


def _set_noise(page, value: int) -> None:
    """Type into the slider's number box and leave it, as a person would; the slider's release runs do()."""
    box = page.locator("#do-noise input[type=number]")
    box.fill(str(value))
    box.press("Tab")
    _expect_status(page, f"do(noise={value})")


def test_bad_uploads_show_a_message_and_the_server_keeps_serving(server, browser, files):
    page = _open(browser, server)
    _upload(page, files / "empty.png", "The file is empty (0 bytes)")
    _upload(page, files / "notes.txt", "This file is not an image the demo can read")
    _upload(page, files / "big.png", "The image is 1200x1000 (1.2 megapixels), over this demo's 1.0 megapixel limit")
    _upload(page, files / "noisy.png", "64x64 -> 256x256 (x4), blind")
    page.close()


def test_upload_diagnose_intervene_download(server, browser, files, tmp_path):
    page = _open(browser, server)
    _upload(page, files / "noisy.png", "64x64 -> 256x256 (x4), blind")
    estimate = page.locator("#estimate").inner_text()
    for name in ("blur sigma", "noise sigma", "JPEG quality"):
        assert re.search(rf"{name} [0-9.]+ \+- [0-9.]+", estimate), estimate
    noise_start = float(page.locator("#do-noise input[type=number]").input_value())
    assert 5 <= noise_start <= 30, f"the noise slider should start at the estimate (about 15), not {noise_start}"
    blind = _download(page, tmp_path, "blind.png")
    assert blind.shape == (256, 256, 3)

    _set_noise(page, 0)
    grainy = _download(page, tmp_path, "noise0.png")
    _set_noise(page, 30)
    smooth = _download(page, tmp_path, "noise30.png")
    assert grainy.shape == smooth.shape == (256, 256, 3)
    change = np.abs(grainy.astype(np.float64) - smooth).mean()
    assert change >= 2.0, f"do(noise) 0 -> 30 changed the page's result by only {change:.2f} grey levels"

    shot = tmp_path / "demo.png"
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] >= 1280
    if os.environ.get("CAUSALSR_DEMO_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["CAUSALSR_DEMO_SCREENSHOT"])
    page.close()


def test_two_users_at_once_are_queued_not_crashed(server, browser, files):
    pages = [_open(browser, server) for _ in range(2)]
    for page in pages:  # both uploads are in flight before either result is awaited
        page.locator("#upload input[type=file]").set_input_files(str(files / "noisy.png"))
    for page in pages:
        _expect_status(page, "64x64 -> 256x256 (x4), blind")
        page.close()
