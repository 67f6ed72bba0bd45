"""Does a formula-generated pre-training (``pretrain: {name: fractaldb}``) make the default networks learn better,
and does it narrow the seed spread of smoke_iou (issue 10's statistical-power criterion)?

The paper's networks start from ImageNet weights; none can be downloaded here. FractalDB pre-training (Kataoka et
al., ACCV 2020) gives every seed one shared, trained starting point instead, cached once like a checkpoint. Rows, at
the defaults otherwise, over several seeds (one stage cache, so a network trained for one row serves the rows that
only change the CAM read-out):

- ``student`` / ``teacher``: trained alone from their random initial weights (the defaults);
- ``student (pre-trained)`` / ``teacher (pre-trained)``: the same, their backbones pre-trained on fractaldb first;
- ``... (CAM: class_map)``: the same trained student read out by the head's class map instead of Grad-CAM at the
  last block's norm1 (which CAM layer is stable matters for the spread);
- ``teacher_student (pre-trained)``: the default knowledge transfer with both networks pre-trained.

Per row the metrics of ``learning_signal.py`` (val/test accuracy, chimney-only images called smoke,
chimney_claimed, smoke_iou mean and seed std, final training loss) and the smallest smoke_iou difference the seeds
resolve; the time the pre-training took. Nothing is asserted.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import device_name, parse_args, print_table, write_result
from learning_signal import MAX_SEED_STD, TINY, run_seeds, summarise

from ablate import StageCache

PRETRAIN = {"name": "fractaldb"}
TINY_PRETRAIN = {"name": "fractaldb", "classes": 4, "per_class": 8, "image_size": 32, "steps": 10, "batch_size": 8}
CLASS_MAP = {"cam": {"name": "class_map"}}


def configurations(pretrain: dict[str, Any]) -> dict[str, dict[str, Any]]:
    teacher, student = (
        {"paradigm": {"name": "single", "network": "teacher"}},
        {"paradigm": {"name": "single", "network": "student"}},
    )
    both = {"teacher.pretrain": pretrain, "student.pretrain": pretrain}
    return {
        "student": student,
        "student (CAM: class_map)": {**student, **CLASS_MAP},
        "student (pre-trained)": {**student, "student.pretrain": pretrain},
        "student (pre-trained, CAM: class_map)": {**student, "student.pretrain": pretrain, **CLASS_MAP},
        "teacher": teacher,
        "teacher (pre-trained)": {**teacher, "teacher.pretrain": pretrain},
        "teacher_student (pre-trained)": both,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    # --repeats: the seeds (0, 1, ...) every configuration trains with
    args = parse_args("Does fractal pre-training help the default networks?", {"tiny": 1, "default": 5}, argv)
    seeds = list(range(args.repeats))
    tiny = args.size == "tiny"
    overrides = {**(TINY if tiny else {}), "device": device_name()}
    rows = configurations(TINY_PRETRAIN if tiny else PRETRAIN)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pretraining-") as root:
        runs = run_seeds(rows, seeds, overrides, StageCache(Path(root)))
        pretrain_s = {
            json.loads((entry / "meta.json").read_text())["inputs"]["backbone"]["model"]: json.loads(
                (entry / "pretraining.json").read_text()
            )["seconds"]
            for entry in (Path(root) / "pretrained").glob("*/")
        }
    summary = {name: summarise(r) for name, r in runs.items()}
    print_table(
        ["configuration", "val acc", "test acc", "chimney-only FPR", "chimney_claimed", "smoke_iou", "std"]
        + ["detectable Δ", "final loss"],
        [
            [name, s["val_accuracy"], s["accuracy"], s["chimney_only_fpr"], s["chimney_claimed"], s["smoke_iou"]]
            + [s["smoke_iou_std"], s["detectable_smoke_iou"], s["final_loss"]]
            for name, s in summary.items()
        ],
    )
    within = [name for name, s in summary.items() if s["smoke_iou_std"] <= MAX_SEED_STD]
    print(f"seed std of smoke_iou <= {MAX_SEED_STD}: {', '.join(within) or 'none'}; pre-training took {pretrain_s} s")
    payload = {
        "setting": {"seeds": seeds, "overrides": overrides, "pretrain": TINY_PRETRAIN if tiny else PRETRAIN},
        "runs": runs,
        "summary": summary,
        "pretrain_s": pretrain_s,
        "wall_s": time.perf_counter() - start,
    }
    write_result("pretraining", args, payload)
    return payload


if __name__ == "__main__":
    main()
