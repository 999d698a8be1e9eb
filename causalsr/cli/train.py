"""`causalsr train`: train from a YAML preset, on one process or many (torchrun).

    causalsr train --config configs/cpu-small.yaml [--set key=value ...] [--resume auto|PATH] [-o DIR]
    torchrun --nproc_per_node 4 -m causalsr train --config configs/paper.yaml

Exit status 2 when the run cannot start (config, data, output folder, checkpoint
to resume), 1 when it starts and stops with an error, 0 when it finishes.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from causalsr.atomic import atomic_write_text
from causalsr.cli.common import FAILED, OK, USAGE, add_data_root_argument, add_output_argument, apply_data_root, error
from causalsr.yaml_config import ConfigError, load_config, to_dict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="training preset, e.g. configs/cpu-small.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set data.batch_size=8 (repeatable)")
    parser.add_argument("--resume", metavar="auto|PATH",
                        help="'auto': continue from the newest valid checkpoint in the output folder "
                             "(start fresh if there is none); PATH: a checkpoint or checkpoints folder")
    add_output_argument(parser, "output folder (overrides run.out_dir)", required=False, metavar="DIR",
                        old=("--out",))
    add_data_root_argument(parser)


def run(args: argparse.Namespace) -> int:
    import yaml

    from causalsr.training import checkpoint as ckpt
    from causalsr.training.config import TrainConfig, repo_root_of
    from causalsr.training.distributed import DistributedError, init_distributed
    from causalsr.training.trainer import Trainer, TrainingError

    apply_data_root(args)
    dist = None
    started = False
    try:
        cfg = load_config(TrainConfig, args.config, args.set)
        if args.output:
            cfg.run.out_dir = args.output
        out_dir = Path(cfg.run.out_dir)
        resume = ckpt.resolve_resume(args.resume, out_dir) if args.resume else None
        if args.resume is None and ckpt.find_latest_valid(out_dir, verbose=False) is not None:
            return error("train", f"{out_dir} already holds checkpoints; pass --resume auto to continue, "
                                  "or -o NEW_DIR to start a new run")
        dist = init_distributed(cfg.run.dist_timeout_minutes)
        trainer = Trainer(cfg, dist, config_base=repo_root_of(args.config), preset=Path(args.config).stem)
        if resume is not None:
            trainer.resume(resume)
            if dist.is_main:
                print(f"causalsr train: resuming from {resume} (step {trainer.step})", flush=True)
        elif args.resume == "auto" and dist.is_main:
            print(f"causalsr train: no checkpoint in {out_dir}; starting fresh", flush=True)
        if dist.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
        started = True
        trainer.fit()
    except (TrainingError, DistributedError, ckpt.CheckpointError, ConfigError, FileNotFoundError, ValueError) as e:
        return error("train", str(e), FAILED if started else USAGE)
    finally:
        if dist is not None:
            dist.close()
    if dist.enabled:
        # Done: every file is written and the process group destroyed. Skip the interpreter's teardown,
        # where gloo's threads now and then abort a finished worker (2 of 37 runs of
        # tests/training/test_distributed.py: "terminate called without an active exception").
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return OK
