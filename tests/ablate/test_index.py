"""The stored component index: ``ablate list`` imports no component (nor torch) while nothing it lists changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ablate

ROOT = Path(__file__).resolve().parents[2]
LIST_AND_REPORT_TORCH = """
import sys
from ablate.cli import main
try:
    code = main(sys.argv[1:])
finally:  # --version leaves through SystemExit
    print("torch imported:", "torch" in sys.modules)
sys.exit(code)
"""
PLUGIN = '''
from ablate import LEVELS

@LEVELS.register("index-probe")
def probe():
    """{description}"""
    return lambda student, teacher, distance: distance(student.mean(2), teacher.mean(2)).mean()
'''


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ABLATE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path)}
    command = [sys.executable, "-c", LIST_AND_REPORT_TORCH, *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_second_listing_reads_the_stored_index_and_imports_no_torch(tmp_path) -> None:
    first, second = _cli(tmp_path, "list"), _cli(tmp_path, "list")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout.endswith("torch imported: True\n") and second.stdout.endswith("torch imported: False\n")
    listing = first.stdout.rsplit("torch imported", 1)[0]
    assert listing == second.stdout.rsplit("torch imported", 1)[0]
    assert "backbones:" in listing and "  timm " in listing and "gradcam" in listing


def test_a_changed_plugin_is_listed_as_it_now_is(tmp_path) -> None:
    plugin = tmp_path / "index_probe_plugin.py"
    plugin.write_text(PLUGIN.format(description="First wording."))
    assert "First wording." in _cli(tmp_path, "list", "levels", "--plugin", "index_probe_plugin").stdout
    plugin.write_text(PLUGIN.format(description="Second wording."))
    listed = _cli(tmp_path, "list", "levels", "--plugin", "index_probe_plugin").stdout
    assert "Second wording." in listed and "First wording." not in listed


def test_version_and_help_import_no_torch(tmp_path) -> None:
    version, help_text = _cli(tmp_path, "--version"), _cli(tmp_path)
    assert version.stdout == f"ablate {ablate.__version__}\ntorch imported: False\n"
    assert "usage: ablate" in help_text.stdout and help_text.stdout.endswith("torch imported: False\n")
