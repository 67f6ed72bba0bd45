"""The bad-input corpus: the shipped studies mutated key by key (dropped, doubled, mistyped, set to an extreme).
Each mutation is valid (exit 0) or refused in one line naming the file, exit 2: never a traceback, never exit 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ablate.cli import main

STUDIES = Path(__file__).resolve().parents[2] / "studies"
EXTREMES: list[Any] = [-1, 10**12, "", [], "x" * 300]


def _mutations(raw: dict[str, Any], only: tuple[str, ...] | None) -> list[tuple[str, dict[str, Any] | str]]:
    """(what was done, the mutated study: a mapping, or YAML text for a doubled key) for every key and sub-key (of
    the top-level keys ``only``, if given)."""
    out: list[tuple[str, dict[str, Any] | str]] = []
    places = [((), raw)] + [((key,), value) for key, value in raw.items() if isinstance(value, dict)]
    for path, mapping in places:
        for key in mapping:
            if only is not None and (path or (key,))[0] not in only:
                continue

            def changed(new: dict[str, Any], path: tuple[str, ...] = path) -> dict[str, Any]:
                if not path:
                    return new
                return {**raw, path[0]: new}

            where = ".".join((*path, key))
            out.append((f"drop {where}", changed({k: v for k, v in mapping.items() if k != key})))
            out.append((f"mistype {where}", changed({(k + "s" if k == key else k): v for k, v in mapping.items()})))
            out += [(f"{where} = {v!r:.20}", changed({**mapping, key: v})) for v in EXTREMES]
        if not path:
            first = next(iter(mapping))
            out.append(
                (f"double {first}", yaml.safe_dump(raw, sort_keys=False) + f"{first}: {json.dumps(raw[first])}\n")
            )
    return out


# lambda-race: every key (a grid, a race, extends); tune: the keys a grid study has not (each mutation that stays
# valid validates the tuned ranges' ends, which builds networks: the rest of the file would repeat lambda-race's)
@pytest.mark.parametrize(("name", "only"), [("lambda-race", None), ("tune", ("tune", "sampler", "n_trials"))])
def test_every_mutation_of_a_shipped_study_is_valid_or_one_line_with_exit_2(name, only, tmp_path, capsys):
    raw = yaml.safe_load((STUDIES / f"{name}.yaml").read_text())
    for key in ("extends", "reference"):  # the mutated file lies elsewhere: what it names, absolute
        if key in raw:
            raw[key] = str(STUDIES / raw[key])
    broken = []
    for number, (what, mutated) in enumerate(_mutations(raw, only)):
        path = tmp_path / f"m{number}.yaml"
        path.write_text(mutated if isinstance(mutated, str) else yaml.safe_dump(mutated, sort_keys=False))
        code = main(["validate", "--no-files", str(path)])
        err = capsys.readouterr().err.strip()
        one_line = len(err.splitlines()) == 1 and err.startswith("ablate: error:") and str(path) in err
        if code not in (0, 2) or (code == 2 and not one_line) or "Traceback" in err:
            broken.append(f"{what}: exit {code}: {err[:300]}")
    assert not broken, "\n".join(broken)
