"""Command line: ``ablate list | trial | validate | run | status | report | compare | export | cache``.

Every expected failure (bad config, unknown component, broken data, divergence, Ctrl-C) ends with one
``ablate: error: ...`` line and a non-zero exit code instead of a traceback. One module per group of commands:
``_trial`` (list, trial, validate, cache), ``_run`` (run and its workers), ``_read`` (status, report, compare,
export); ``_main`` holds the parser, ``_common`` what they share. Nothing heavy is imported before a command needs
it, so ``ablate --version`` and ``ablate list`` start at once.
"""

from ablate.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
