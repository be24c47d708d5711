"""`python -m synface <verb>`: the command line; the dispatcher is `synface.cli.main`."""

from __future__ import annotations

import sys

from synface.cli.main import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
