"""The stored study: found by name and search space, refused when the space changed, waited for while created."""

from __future__ import annotations

import optuna
import pytest

from tests.ablate.study.studies import TINY, completed_identities, run_cli, trials, write_study

pytestmark = pytest.mark.usefixtures("private_cache")


def test_changed_search_space_is_refused_and_new_starts_beside(tmp_path, capsys):
    out = tmp_path / "out"
    study = write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"transfer.lambda": [1.0]})
    assert run_cli(str(study), "--out", str(out)) == 0
    write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"transfer.lambda": [1.0, 0.5]})
    assert run_cli(str(study), "--out", str(out)) == 2
    assert "search space" in capsys.readouterr().err
    gallery = (out / "artifacts" / "trial-0.npz").read_bytes()
    capsys.readouterr()
    assert run_cli(str(study), "--out", str(out), "--new") == 0
    assert "tiny.2: 2/2 trials completed" in capsys.readouterr().out
    assert len(completed_identities(out, "tiny.2")) == 2
    assert len(completed_identities(out)) == 1  # the old study is kept
    # and so are its gallery images: the new study's trials, numbered from 0 again, have their own files
    assert (out / "artifacts" / "trial-0.npz").read_bytes() == gallery
    stored = sorted(p.name for p in (out / "artifacts").iterdir())
    assert stored == ["tiny.2-trial-0.npz", "tiny.2-trial-1.npz", "trial-0.npz"]
    # the file changed back opens its own study again (it was refused: the newest, tiny.2, has another grid)
    write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"transfer.lambda": [1.0]})
    capsys.readouterr()
    assert run_cli(str(study), "--out", str(out)) == 0
    assert "1/1 done, 0 queued" in capsys.readouterr().out
    assert len(trials(out)) == 1 and len(trials(out, "tiny.2")) == 2
    write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"transfer.lambda": [0.3]})
    assert run_cli(str(study), "--out", str(out)) == 2  # a third search space matches neither: refused
    assert "since study 'tiny.2'" in capsys.readouterr().err


def test_a_second_file_with_a_studys_name_is_told_which_file_owns_the_study(tmp_path, capsys):
    out = tmp_path / "out"
    owner = write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"train.lr": [1e-3]})
    assert run_cli(str(owner), "--out", str(out)) == 0
    other = tmp_path / "other.yaml"
    other.write_text(owner.read_text().replace("0.001", "0.002"))  # the same `name: tiny`, another grid
    capsys.readouterr()
    assert run_cli(str(other), "--out", str(out)) == 2
    assert capsys.readouterr().err.strip() == (
        f"ablate: error: {other}: study 'tiny' in sqlite:///{out}/study.db was created from {owner}, another file "
        f"with `name: tiny` and another search space; give {other} a name of its own, or run "
        f"`ablate run {other} --new` to start study 'tiny.2' beside it"
    )


def test_a_study_found_before_its_creator_stored_its_signature_is_waited_for(tmp_path, monkeypatch):
    """The race the stress test met on a busy machine: a process finds the study between its creation by
    another process and that process storing the signature; it must wait, not refuse the study."""
    import threading

    import ablate.storage._stored
    from ablate.config._resolve import ConfigError
    from ablate.storage import StoredStudy
    from ablate.study import load_study

    path = write_study(tmp_path, config={**TINY, "paradigm": {"name": "single"}}, grid={"train.lr": [0.001]})
    stored = StoredStudy(load_study(path), out=tmp_path / "out")
    created = optuna.create_study(study_name="tiny", storage=stored.url)  # the signature comes 0.5 s later
    later = threading.Timer(0.5, created.set_user_attr, ("signature", stored.study.signature()))
    later.start()
    stored.open()
    later.join()
    assert stored.optuna_study.study_name == "tiny"

    other = write_study(tmp_path, name="plain")  # a study created by plain Optuna never gets a signature
    optuna.create_study(study_name="plain", storage=stored.url)
    monkeypatch.setattr(ablate.storage._stored, "SIGNATURE_WAIT", 0.2)
    with pytest.raises(ConfigError, match="the search space .* changed since study 'plain'"):
        StoredStudy(load_study(other), out=tmp_path / "out").open()


def test_a_race_whose_design_changed_is_refused_and_adding_or_dropping_a_race_is_not(tmp_path):
    """A sequential design's error rate holds only for the design fixed before the first look: a resumed race with
    another alpha (the search space unchanged) would have looked with one design and decide with another."""
    from ablate.config._resolve import ConfigError
    from ablate.storage import StoredStudy
    from ablate.study import load_study

    race = {"grid": {"train.lr": [0.001, 0.002]}, "baseline": {"train.lr": 0.001}, "seeds": {"initial": 2, "max": 4}}
    out = tmp_path / "out"
    StoredStudy(load_study(write_study(tmp_path, **race, race={"alpha": 0.05})), out=out).open()
    changed = load_study(write_study(tmp_path, **race, race={"alpha": 0.01, "futility": 0.2}))
    with pytest.raises(ConfigError, match=r"race: its design changed .* \(alpha 0.05 -> 0.01, futility 0.1 -> 0.2\)"):
        StoredStudy(changed, out=out).open()
    same = StoredStudy(load_study(write_study(tmp_path, **race, race={"alpha": 0.05})), out=out)
    assert same.open().study_name == "tiny"
    fixed = write_study(tmp_path, grid=race["grid"], baseline=race["baseline"], seeds=4)  # the race's seeds, fixed
    assert StoredStudy(load_study(fixed), out=out).open().study_name == "tiny"
