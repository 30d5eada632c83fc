"""What every stage script shares: logging, params, and one-line errors with exit code 2."""
from __future__ import annotations

import logging
import sys
from typing import Callable

from sae.errors import SaeError
from sae.params import load


def run_stage(main: Callable[[dict, list[str]], None], argv: list[str] | None = None) -> None:
    """Validate params.yaml, then call main(params, args); SaeError -> one line on stderr, exit 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    args = sys.argv[1:] if argv is None else argv
    try:
        main(load("params.yaml"), args)
    except SaeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
