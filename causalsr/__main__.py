"""`python -m causalsr` is the `causalsr` command (so `torchrun -m causalsr train ...` works)."""
from causalsr.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
