"""The commands that read a stored study: ``ablate status``, ``report``, ``compare`` and ``export``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ablate.cli._common import _check_output, _stored, _warn_changed_code


def cmd_status(args: argparse.Namespace) -> int:
    import pandas as pd

    from ablate._results import PER_IMAGE_COLUMNS, trials_frame

    stored = _stored(args)
    frame = trials_frame(stored)
    if frame.empty:
        print("no trials yet")
        return 0
    objectives = [f"metric.{o.metric}" for o in stored.study.objectives]
    internal = ("identity", "config_id", *PER_IMAGE_COLUMNS, "segment_masks", "baseline", "names", "gallery")
    hidden = (*internal, "configuration", "trainings", "oracle", "marks")
    columns = [c for c in frame.columns if c not in hidden and (not c.startswith("metric.") or c in objectives)]
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 60):
        print(frame[columns].to_string(index=False))
    counts = frame["state"].value_counts().to_dict()
    stale = int((frame["state"].eq("RUNNING") & frame["error"].str.startswith("stale")).sum())
    if stale:  # a killed run's trials stay RUNNING in storage until the next run fails and queues them again
        counts["RUNNING"] = f"{counts['RUNNING']} ({stale} stale: no live worker; the next ablate run runs them again)"
    done, total = stored.progress()
    _warn_changed_code(args, stored)
    print(
        f"\n{done}/{total or '?'} (configuration, seed) pairs done (completed or pruned); trials by state: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ablate._report import write_report

    print(f"report: {write_report(_stored(args))}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from ablate._compare import compare_studies

    outs = args.out or [None] * len(args.studies)
    storages = args.storage or [None] * len(args.studies)
    for option, given in (("--out", outs), ("--storage", storages)):
        if len(given) != len(args.studies):
            raise ValueError(f"{option}: give one per study ({len(args.studies)}), got {len(given)}")
    if args.csv:
        _check_output("--csv", args.csv)
    table = compare_studies(args.studies, outs, args.metric, storages)
    print(f"{table.attrs['metric']}: each configuration against the reference, over the seeds both completed")
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 60):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ablate._export import chosen_trial, export_trial

    stored = _stored(args)
    trial = chosen_trial(stored, args.trial)
    folder = Path(args.to or stored.folder / "export" / stored.trial_stem(trial.number))
    try:
        export_trial(stored, trial, folder)
    except OSError as exc:  # a folder that cannot be made or written: name it (and the option that chose it)
        raise ValueError(f"{'--to ' if args.to else ''}{folder}: {exc.strerror or exc}") from None
    print(f"trial {trial.number} ({stored.study.objectives[0].metric} {trial.values[0]:.4f}): {folder}")
    return 0
