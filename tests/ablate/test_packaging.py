"""What a non-editable install puts on the path: ablate only, the built-in components inside it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_an_install_holds_ablate_with_its_components_and_no_top_level_components(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target"]
        + [str(target), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    top_level = {p.name for p in target.iterdir() if not p.name.endswith(".dist-info")}
    assert "components" not in top_level and "ablate" in top_level
    built_in = {p.relative_to(ROOT / "components") for p in (ROOT / "components").rglob("*.py")}
    installed = {
        p.relative_to(target / "ablate" / "components") for p in (target / "ablate" / "components").rglob("*.py")
    }
    assert built_in == installed and not (target / "ablate" / "components").is_symlink()
    assert (target / "ablate" / "config" / "defaults.yaml").is_file()
