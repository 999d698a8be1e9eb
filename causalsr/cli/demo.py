"""`causalsr demo`: a local web page to upload an image, see its diagnosis, intervene and compare.

Needs the optional extra `demo` (gradio). The page loads only the bundled
models (x2, x3, x4): a client names a scale, never a path. Uploads and results
live in a temporary folder that is removed when the server stops (Ctrl+C or
SIGTERM); requests are queued, one restoration at a time.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile

QUEUE_SIZE = 32  # waiting requests beyond this are refused with gradio's "queue full" message


def add_arguments(p: argparse.ArgumentParser) -> None:
    from causalsr.demo.core import Limits

    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 serves the network)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--scale", type=int, choices=(2, 3, 4), default=4, help="scale selected when the page opens")
    p.add_argument("--max-pixels", type=int, default=Limits.max_pixels, metavar="N",
                   help=f"largest upload in pixels, width x height (default {Limits.max_pixels})")
    p.add_argument("--max-mb", type=float, default=Limits.max_bytes / 2**20, metavar="MB",
                   help=f"largest upload file in MB (default {Limits.max_bytes / 2**20:.0f})")


def _stop_on_sigterm(_signum, _frame) -> None:
    # gradio's launch() closes the server on KeyboardInterrupt; SIGTERM then unwinds like Ctrl+C,
    # so the temporary folder below is removed however the server is stopped.
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from causalsr.cli.main import setup_error
    from causalsr.demo.core import Limits

    if args.max_pixels < 64 or args.max_mb <= 0 or not 0 < args.port < 65536:
        return setup_error("demo", "--max-pixels must be at least 64, --max-mb positive, --port 1-65535")
    limits = Limits(max_bytes=int(args.max_mb * 2**20), max_pixels=args.max_pixels)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home: this machine may be offline
    with tempfile.TemporaryDirectory(prefix="causalsr-demo-") as tmp:
        # gradio keeps uploads and cached outputs under GRADIO_TEMP_DIR: inside our folder, they go with it.
        os.environ["GRADIO_TEMP_DIR"] = os.path.join(tmp, "gradio")
        try:
            from causalsr.demo.app import build
        except ImportError as e:
            if (e.name or "").split(".")[0] != "gradio":
                raise
            return setup_error("demo", "gradio is not installed; install it with: pip install 'causalsr[demo]'")
        demo = build(args.scale, limits, os.path.join(tmp, "results"))
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
        print(f"causalsr demo: serving on http://{args.host}:{args.port} (Ctrl+C stops)", file=sys.stderr)
        demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1, api_open=False).launch(
            server_name=args.host, server_port=args.port, max_file_size=limits.max_bytes, ssr_mode=False,
            show_error=False, quiet=True, footer_links=["gradio"])
    return 0
