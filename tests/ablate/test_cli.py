"""The command line: ``ablate list`` and ``ablate trial``, in-process, plus one real process."""

from __future__ import annotations

import importlib.metadata
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

import ablate
from ablate.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "data": {"name": "synthetic-smoke", "n_train": 32, "n_val": 8, "n_test": 8},
    "train": {"epochs": 1, "batch_size": 16},
    "threads": 1,
}
LEVELS_LISTING = f"""levels: {ablate.LEVELS.contract}
  channel            One N-vector (spatial map) per channel, distances averaged over channels.
  global             One C*N vector per image (the paper's best level).
  spatial            One C-vector per location, distances averaged over locations.

"""


@pytest.fixture(autouse=True)
def _cache_and_threads(monkeypatch: pytest.MonkeyPatch, shared_cache: ablate.StageCache) -> Iterator[None]:
    """`ablate trial` uses the default cache: point it at the session's cache; restore torch's threads."""
    monkeypatch.setenv("ABLATE_CACHE", str(shared_cache.root))
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_version_and_plain_ablate_prints_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out == f"ablate {ablate.__version__}\n"
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ablate") and "run (or resume) a study" in out


def test_list_one_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "levels"]) == 0
    assert capsys.readouterr().out == LEVELS_LISTING


def test_list_shows_params_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "projections"]) == 0
    lines = capsys.readouterr().out.splitlines()
    mlp = next(i for i, line in enumerate(lines) if line.startswith("  mlp "))
    assert (
        lines[mlp].split(None, 1)[1]
        == "Per-location two-layer MLP (1x1 conv, GELU, 1x1 conv) from student to teacher channels."
    )
    assert lines[mlp + 1].strip() == "(hidden: int = 256)"
    assert lines[mlp + 2].startswith("  none ")  # components without params get no params line


def test_list_everything(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    headers = [line.split(":")[0] for line in out.splitlines() if line and not line.startswith(" ")]
    assert headers == list(ablate.REGISTRIES)
    assert LEVELS_LISTING in out
    assert re.search(r"^  timm +Any timm model", out, re.M)
    assert (
        "(model: str, pretrained: bool = False, checkpoint: str or null = None, model_args: dict or null = None, "
        "conv_stem: bool = False)" in out
    )
    assert re.search(r"^  single .*\n +\(network: one of teacher, student = 'student'\)$", out, re.M)


def test_list_unknown_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "level"]) == 2
    assert _error_line(capsys) == f"ablate: error: unknown kind 'level'; kinds: {', '.join(ablate.REGISTRIES)}"


def test_trial_with_broken_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "broken.yaml", "seed: 1\ntrain:\n  epochs: [1, 2\n  lr: 3\n")
    assert main(["trial", str(path), "--quiet"]) == 2
    assert _error_line(capsys) == f"ablate: error: {path}:4:5: invalid YAML: expected ',' or ']', but got ':'"


def test_trial_with_a_list_at_top_level(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "list.yaml", "- seed\n")
    assert main(["trial", str(path), "--quiet"]) == 2
    assert _error_line(capsys) == f"ablate: error: {path}: expected a mapping of config keys at the top level"


def test_trial_with_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trial", str(tmp_path / "none.yaml"), "--quiet"]) == 2
    assert _error_line(capsys).startswith(f"ablate: error: {tmp_path / 'none.yaml'}: cannot read")


def test_trial_with_unknown_component(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "trial.yaml", yaml.safe_dump({**TINY, "transfer": {"level": "globl"}}))
    assert main(["trial", str(path), "--quiet"]) == 2
    line = _error_line(capsys)
    assert line.startswith(f"ablate: error: {path}: transfer.level.name: 'globl' is not in the levels registry (")
    assert "(did you mean 'global'?). Available: channel, global, spatial." in line


def test_trial_with_bad_set_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "trial.yaml", yaml.safe_dump(TINY))
    assert main(["trial", str(path), "--set", "train.lr=-1", "--quiet"]) == 2
    assert (
        _error_line(capsys) == f"ablate: error: {path} (with --set train.lr=-1): train.lr: expected float > 0, got -1"
    )
    assert main(["trial", "--set", "train.lr=-3e-4", "--quiet"]) == 2  # an exponent float, not a string
    assert _error_line(capsys) == "ablate: error: --set train.lr=-3e-4: train.lr: expected float > 0, got -0.0003"
    # only the --set the error is about (every --set value was repeated)
    assert main(["trial", "--set", "train.epochs=2", "--set", "train.lr=-3e-4", "--set", "data.n_test=8"]) == 2
    assert _error_line(capsys) == "ablate: error: --set train.lr=-3e-4: train.lr: expected float > 0, got -0.0003"


def test_trial_with_malformed_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trial", "--set", "train.lr", "--quiet"]) == 2
    assert _error_line(capsys) == "ablate: error: --set 'train.lr': expected key.path=value"


def test_good_trial_prints_the_metrics_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "trial.yaml", yaml.safe_dump({**TINY, "train": {"epochs": 3, "batch_size": 16}}))
    out_json = tmp_path / "result.json"
    code = main(["trial", str(path), "--set", "train.epochs=1", "--set", "transfer.lambda=0.9", "--quiet",
                 "--json", str(out_json)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0 and captured.err == ""
    lines = captured.out.splitlines()
    assert lines[0] == "metrics on the test split:"
    end = next(i for i, line in enumerate(lines) if line.startswith("trainings executed"))
    table = dict(line.split() for line in lines[1:end])
    assert list(table) == ablate.METRICS.names()
    assert all(re.fullmatch(r"nan|-?\d+\.\d{4}", value) for value in table.values())
    assert re.fullmatch(r"trainings executed: [0-2]; time: data \d+\.\ds(, [a-z]+ \d+\.\ds)+", lines[end])
    assert all(re.fullmatch(r"checkpoint: .*/model/\w+/weights\.pt", line) for line in lines[end + 1 :])
    stored = json.loads(out_json.read_text(), parse_constant=pytest.fail)  # strict JSON: no NaN literal
    assert any(v is None for v in stored["metrics"].values())  # TINY's undefined metrics (NaN) as null
    assert stored["config"]["train"]["epochs"] == 1 and stored["config"]["transfer"]["lambda"] == 0.9
    assert {k: f"{v:.4f}" for k, v in stored["metrics"].items() if v is not None} == {
        k: v for k, v in table.items() if v != "nan"
    }


def test_progress_outside_a_terminal_is_one_line_per_epoch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = {**TINY, "paradigm": {"name": "single"}, "train": {"epochs": 2, "batch_size": 16, "lr": 0.0011}}
    assert main(["trial", str(_write(tmp_path / "trial.yaml", yaml.safe_dump(config)))]) == 0
    err = capsys.readouterr().err  # captured: not a terminal, as a log file
    assert "\r" not in err
    lines = err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["student epoch 1/2", "student epoch 2/2"]
    assert all(re.fullmatch(r"student epoch \d/2: loss \d+\.\d{4}( \w+ -?\d+\.\d{4})*", line) for line in lines)


def test_trial_with_offline_pretrained_weights_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "trial.yaml", yaml.safe_dump(TINY))
    sets = [
        "paradigm.name=single",
        "paradigm.network=teacher",
        "cam.network=teacher",
        "teacher.backbone.pretrained=true",
    ]
    code = main(["trial", str(path), "--quiet", *[arg for s in sets for arg in ("--set", s)]])
    assert code == 2
    assert "checkpoint" in _error_line(capsys)


def test_console_entry_point(ablate_process) -> None:
    (entry,) = importlib.metadata.entry_points(group="console_scripts", name="ablate")
    assert entry.value == "ablate.cli:main"
    done = ablate_process("list", "levels", timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == LEVELS_LISTING


def test_cache_shows_sizes_and_prunes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = ablate.StageCache(tmp_path / "cache")
    cache.get_or_build("model", {"a": 1}, lambda folder: (folder / "weights.pt").write_bytes(b"x" * 2048))
    cache.get_or_build("cams", {"a": 1}, lambda folder: (folder / "cams.npz").write_bytes(b"y"))
    broken = cache.get_or_build("cams", {"a": 2}, lambda folder: (folder / "cams.npz").write_bytes(b"z"))
    (broken / "cams.npz").write_bytes(b"changed")  # checksum no longer matches
    assert main(["cache", "--dir", str(cache.root)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"cams\s+2 entries\s+[\d.]+ MiB, 1 corrupt", out) and re.search(r"model\s+1 entries", out)
    assert main(["cache", "--dir", str(cache.root), "--prune-corrupt"]) == 0
    assert "removed 1 entries" in capsys.readouterr().out
    assert main(["cache", "--dir", str(cache.root), "--prune", "--stage", "model"]) == 0
    assert [stage for stage, *_ in cache.entries()] == ["cams"]
    (cache.root / "datasets").mkdir()
    (cache.root / "datasets" / "synthetic-smoke-0123.npz").write_bytes(b"d" * 4096)
    assert main(["cache", "--dir", str(cache.root)]) == 0
    assert re.search(r"datasets\s+1 entries", capsys.readouterr().out)
    assert main(["cache", "--dir", str(cache.root), "--prune", "--stage", "datasets"]) == 0
    assert [stage for stage, *_ in cache.entries()] == ["cams"]


def test_status_and_report_of_a_study_never_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = _write(tmp_path / "never.yaml", yaml.safe_dump({"config": TINY}))
    for command in (["status"], ["report"], ["export", "--best"]):
        assert main([*command, str(study), "--out", str(tmp_path / "out")]) == 2
        assert "no study 'never'" in _error_line(capsys)
    empty = tmp_path / "empty.db"
    assert main(["status", str(study), "--storage", f"sqlite:///{empty}"]) == 2
    assert "no study 'never'" in _error_line(capsys)
    assert not (tmp_path / "out").exists() and not empty.exists()  # reading created neither folder nor database


def _malformed_overrides(tmp_path: Path) -> list[tuple[list[str], str]]:
    """(argv, text the one-line error must contain) for bad ``--set`` values of ``ablate trial``."""
    text = _write(tmp_path / "weights.pt", "not a checkpoint\n")
    study = _write(tmp_path / "study.yaml", yaml.safe_dump({"config": TINY, "grid": {"transfer.lambda": [0.5]}}))
    return [
        (["trial", "--set", "train.epochs=[1,"], "--set 'train.epochs=[1,': the value is not valid YAML"),
        (
            ["trial", "--set", f"student.backbone.checkpoint={text}"],
            f"--set student.backbone.checkpoint={text}: student: backbone 'test_vit': checkpoint {text} is not a torch",
        ),
        # a name, or one step's mapping, where a list of steps belongs: it was split into characters (or keys)
        (["trial", "--set", "postprocess=crf"], "--set postprocess=crf: postprocess: expected a list of steps"),
        (["trial", "--set", "postprocess={name: crf}"], "postprocess: expected a list of steps, such as [crf]"),
        (["trial", str(study)], f"{study}: a study file (it has config: and grid:), not a trial config; run it with"),
    ]


def test_malformed_overrides_give_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, expected in _malformed_overrides(tmp_path):
        assert main(argv) == 2, argv
        line = _error_line(capsys)
        assert line.startswith("ablate: error: ") and expected in line, (argv, line)
        assert "Traceback" not in line


@pytest.mark.parametrize("option", [["--workers", "0"], ["--workers", "-3"], ["--retries", "-1"]])
def test_counts_below_their_minimum_are_refused(option: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "study.yaml", *option])
    assert info.value.code == 2
    assert f"argument {option[0]}: expected an integer >=" in capsys.readouterr().err


def test_an_unexpected_error_is_one_line_with_the_traceback_in_a_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: object) -> int:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("ablate.cli._main.cmd_list", broken)
    assert main(["list"]) == 1
    line = _error_line(capsys)
    assert line.startswith("ablate: failed: ZeroDivisionError: division by zero (traceback: ")
    log = Path(line.rsplit("traceback: ", 1)[1].rstrip(")"))
    assert "Traceback" in log.read_text() and "broken" in log.read_text()


def _bad_study_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Study files with one defect each -> (file, text its one-line error must contain)."""
    good = {"config": TINY, "grid": {"transfer.lambda": [0.5]}}
    grid_range = {"config": TINY, "tune": {"train.lr": {"low": 1e-4, "high": 1e-2}}, "sampler": "grid", "n_trials": 2}
    latin1 = folder / "latin1.yaml"
    latin1.write_bytes("description: caf\xe9\ngrid: {transfer.lambda: [0.5]}\n".encode("latin-1"))
    texts = {
        "broken yaml": ("grid: {transfer.lambda: [0.5\n", "invalid YAML"),
        "duplicate key": ("grid: {transfer.lambda: [0.5]}\ngrid: {}\n", "duplicate key 'grid'"),
        "empty": ("", "a study needs at least one of config, grid or tune"),
        "list at top": ("- 1\n", "mapping"),
        "unknown field": (yaml.safe_dump({**good, "seedz": 2}), "seedz"),
        "trial config": (yaml.safe_dump(TINY), "data: a trial config key, not a study key; put it under config:"),
        "unknown component": (yaml.safe_dump({**good, "grid": {"transfer.distance.name": ["cosin"]}}), "cosin"),
        "overlapping paths": (
            yaml.safe_dump({**good, "grid": {"postprocess": [[{"name": "threshold"}]], "postprocess.0.value": [0.3]}}),
            "lies inside",
        ),
        "grid sampler without step": (
            yaml.safe_dump(grid_range),
            "sampler grid needs",
        ),
    }
    files = {
        kind: (_write(folder / f"{i}.yaml", text), expected) for i, (kind, (text, expected)) in enumerate(texts.items())
    }
    files["not utf-8"] = (latin1, f"{latin1}: not UTF-8 text")
    files["missing"] = (folder / "missing.yaml", "missing.yaml")
    return files


@pytest.mark.parametrize("command", ["validate", "run", "status", "report"])
def test_every_study_command_refuses_every_bad_study_file_in_one_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for kind, (path, expected) in _bad_study_files(tmp_path).items():
        extra = ["--out", str(tmp_path / "out")] if command != "validate" else []
        assert main([command, str(path), *extra]) == 2, kind
        line = _error_line(capsys)
        assert line.startswith("ablate: error: ") and expected in line, (kind, line)
        assert path.name in line, (kind, line)
    assert not (tmp_path / "out").exists()  # nothing written


def test_the_read_only_commands_check_names_but_build_no_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CAM layer that does not exist is found only by building the network: validate and run do, status and report
    (which read stored trials) do not, so they reach the storage and say the study has not run."""
    study = _write(tmp_path / "layer.yaml", yaml.safe_dump({"config": {**TINY, "cam": {"layer": "blocks.9.norm1"}}}))
    out = ["--out", str(tmp_path / "out")]
    for command, extra in (("validate", []), ("run", out)):
        assert main([command, str(study), *extra]) == 2
        assert "cam.layer: layer 'blocks.9.norm1'" in _error_line(capsys)
    for command in ("status", "report"):
        assert main([command, str(study), *out]) == 2
        assert "no study 'layer'" in _error_line(capsys)


@pytest.mark.parametrize("command", ["run", "status", "report"])
@pytest.mark.parametrize(
    "url", ["bogus://x", "sqlite:////nonexistent_dir/x.db", "postgresql://u:secret@127.0.0.1:1/db"]
)
def test_every_stored_study_command_refuses_a_bad_storage_in_one_line(
    command: str, url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = _write(tmp_path / "study.yaml", yaml.safe_dump({"config": TINY, "grid": {"transfer.lambda": [0.5]}}))
    assert main([command, str(study), "--storage", url]) == 2
    line = _error_line(capsys)
    if url.startswith("sqlite") and command != "run":  # reading commands refuse a missing file, creating nothing
        assert line.endswith(f"no study 'study' in {url}; run it first"), line
    else:
        assert line.startswith("ablate: error: storage ") and "secret" not in line, line
    assert url.replace("secret", "***") in line  # the URL, password masked


def test_trial_refuses_every_bad_config_file_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("train: {epochs: 1}\n# caf\xe9\n".encode("latin-1"))
    cases = {
        "broken yaml": (_write(tmp_path / "a.yaml", "train: {epochs: [1\n"), "invalid YAML"),
        "duplicate key": (_write(tmp_path / "b.yaml", "train: {epochs: 1, epochs: 5}\n"), "duplicate key 'epochs'"),
        "unknown field": (_write(tmp_path / "c.yaml", "trian: {epochs: 1}\n"), "trian"),
        "bad value": (_write(tmp_path / "d.yaml", "train: {epochs: -1}\n"), "train.epochs"),
        "not utf-8": (latin1, "not UTF-8 text"),
        "missing": (tmp_path / "missing.yaml", "missing.yaml"),
    }
    for kind, (path, expected) in cases.items():
        assert main(["trial", str(path), "--quiet"]) == 2, kind
        line = _error_line(capsys)
        assert line.startswith("ablate: error: ") and expected in line, (kind, line)


def test_list_and_cache_refuse_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["list", "--plugin", "no_such_plugin_module"], "no_such_plugin_module"),
        (["list", "levelz"], "levelz"),
        (["cache", "--dir", str(_write(tmp_path / "file", "x"))], "file"),
        (["cache", "--dir", str(tmp_path), "--stage", "model"], "--stage model: only with --prune"),
        (["cache", "--dir", str(tmp_path), "--prune", "--stage", "modle"], "no such stage (did you mean 'model'?)"),
        (["trial", "--json", str(tmp_path / "no" / "r.json"), "--quiet"], f"--json {tmp_path}/no/r.json: no folder"),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        line = _error_line(capsys)
        assert line.startswith("ablate: error: ") and expected in line, (argv, line)


BROKEN_STEP = '''
import numpy as np
from ablate import POSTPROCESSORS

@POSTPROCESSORS.register("wrong_shape")
def wrong_shape():
    """Returns a mask of the wrong shape (tests a component that breaks as the trial runs)."""
    return lambda state, ctx: state.with_(mask=np.ones((1, 3, 3), bool))
'''


def test_a_component_that_fails_as_the_trial_runs_is_a_failed_trial_not_invalid_input(
    plugin_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (plugin_folder / "broken_step.py").write_text(BROKEN_STEP)
    # a network of its own (single, seed 97): a shared-cache entry of the default would spare other tests' training
    alone = {**TINY, "paradigm": {"name": "single"}, "seed": 97, "plugins": ["broken_step"]}
    config = _write(plugin_folder / "t.yaml", yaml.safe_dump(alone))
    # its ValueError was "ablate: error: operands could not be broadcast ...", exit 2, with no traceback
    assert main(["trial", str(config), "--set", "postprocess=[wrong_shape]", "--quiet"]) == 1
    line = _error_line(capsys)
    assert line.startswith("ablate: trial failed: ValueError: operands could not be broadcast together")
    log = Path(line.rsplit("(traceback: ", 1)[1].rstrip(")"))
    assert log.read_text().startswith("Traceback") and "ValueError: operands" in log.read_text()


def test_output_piped_into_a_reader_that_stops_early_ends_quietly() -> None:
    import subprocess
    import sys

    # `ablate status ... | head`: "ablate: error: [Errno 32] Broken pipe", exit 2, as if the input were wrong
    proc = subprocess.Popen(
        [sys.executable, "-m", "ablate", "list"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    proc.stdout.close()  # the reader is gone before the 12 kB listing is written
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err) == (141, "")
