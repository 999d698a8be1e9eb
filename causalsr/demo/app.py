"""The gradio page of `causalsr demo`: layout and event wiring over `causalsr.demo.core`.

Needs the optional extra `demo` (gradio); `causalsr.cli.demo` imports this
module only when the command runs, and names the extra if gradio is missing.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from causalsr.demo import core
from causalsr.inference.bundled import BUNDLED

INTRO = """# CausalSR
Upload an image. The model estimates which degradation it sees (blur, noise, JPEG, with +- one standard
deviation from its posterior), super-resolves it, and lets you intervene: each do() slider tells the restorer
which degradation caused the image, in place of its own estimate (as `causalsr upscale --do`). A slider left
at the estimate leaves that factor to the model."""


ESTIMATE = "Estimated degradation (+- one posterior standard deviation):\n\n"


def _status(text: str) -> str:
    return f"**{text}**"


class Page:
    """The event handlers, bound to one `Models` cache, upload limits and a results folder."""

    def __init__(self, models: core.Models, limits: core.Limits, results: Path, slider_ui: bool):
        self.models, self.limits, self.results = models, limits, results
        self.slider_ui = slider_ui  # True: one gr.ImageSlider; False: two images side by side

    def _compare(self, before: np.ndarray | None, after: np.ndarray | None) -> list[Any]:
        if self.slider_ui:
            return [(before, after) if after is not None else None]
        return [before, after]

    def _failed(self, msg: str) -> list[Any]:
        """Show the message; clear the result so a stale one is never taken for this upload's."""
        unchanged = [gr.update()] * len(core.SLIDERS)
        return [_status(msg), "", *unchanged, *self._compare(None, None), None, None]

    def on_image(self, path: str | None, scale: str) -> list[Any]:
        """Upload or scale change: check the file, estimate the factors, restore blind."""
        if not path:
            return self._failed("Upload an image to start.")
        try:
            img = core.load_upload(path, self.limits)
            up = self.models.get(scale)
            report = up.analyze(img)
            out = core.restore(up, img)
        except core.UploadError as e:
            return self._failed(str(e))
        except (MemoryError, RuntimeError) as e:  # e.g. out of memory: the page says so, the server goes on
            return self._failed(f"Restoration failed: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
        start = core.slider_start(report)
        state = {"img": img, "scale": scale, "start": start}
        h, w = img.shape[:2]
        done = f"{w}x{h} -> {out.shape[1]}x{out.shape[0]} ({scale}), blind (the model's own estimate)."
        moved = [gr.update(value=start[s.name]) for s in core.SLIDERS]
        return [_status(done), ESTIMATE + core.describe(report), *moved,
                *self._compare(core.before_image(img, up.scale), out), str(core.save_result(out, self.results)),
                state]

    def on_do(self, state: dict | None, *values: float) -> list[Any]:
        """A slider released: restore the same upload under the sliders' do()."""
        if not state:
            return [_status("Upload an image first."), *self._compare(None, None), None]
        do = core.interventions(dict(zip((s.name for s in core.SLIDERS), values)), state["start"])
        up = self.models.get(state["scale"])
        try:
            out = core.restore(up, state["img"], do)
        except (MemoryError, RuntimeError, ValueError) as e:
            return [_status(f"Restoration failed: {' '.join(str(e).split())[:200]}"), *self._compare(None, None),
                    None]
        msg = f"{out.shape[1]}x{out.shape[0]} ({state['scale']}), {core.format_do(do)}."
        return [_status(msg), *self._compare(core.before_image(state["img"], up.scale), out),
                str(core.save_result(out, self.results))]


def build(scale: int = 4, limits: core.Limits | None = None, results: str | os.PathLike = "results",
          models: core.Models | None = None) -> gr.Blocks:
    """The demo page; `results` is the folder for downloadable outputs (pruned by age)."""
    limits = limits or core.Limits()
    page = Page(models or core.Models(), limits, Path(results), slider_ui=hasattr(gr, "ImageSlider"))
    # delete_cache: gradio's copies of uploads and outputs go after an hour, so a long-running server stays small.
    with gr.Blocks(title="CausalSR demo", delete_cache=(600, 3600)) as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label=f"Image ({core.ACCEPTED}; up to {limits.max_pixels / 1e6:.1f} megapixels)",
                                 type="filepath", elem_id="upload")
                choice = gr.Radio(list(BUNDLED), value=f"x{scale}", label="Scale (bundled models)", elem_id="scale")
                status = gr.Markdown(_status("Upload an image to start."), elem_id="status")
                estimate = gr.Markdown(elem_id="estimate", label="Estimated degradation")
                sliders = [gr.Slider(s.low, s.high, value=s.absent, step=s.step, label=s.label, info=s.meaning,
                                     buttons=[], elem_id=f"do-{s.name}") for s in core.SLIDERS]
                download = gr.DownloadButton("Download the result (PNG)", elem_id="download")
            with gr.Column(scale=2):
                if page.slider_ui:
                    compare = [gr.ImageSlider(label="Before (bicubic) / after", type="numpy", format="png",
                                              elem_id="compare")]
                else:  # older gradio: side by side
                    with gr.Row():
                        compare = [gr.Image(label="Before (bicubic)", format="png", elem_id="before"),
                                   gr.Image(label="After", format="png", elem_id="after")]
        state = gr.State(None)
        image_outputs = [status, estimate, *sliders, *compare, download, state]
        upload.upload(page.on_image, [upload, choice], image_outputs)
        choice.input(page.on_image, [upload, choice], image_outputs)
        for slider in sliders:
            slider.release(page.on_do, [state, *sliders], [status, *compare, download])
    return demo


__all__ = ["build", "Page"]
