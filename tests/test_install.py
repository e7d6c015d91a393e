"""The installed package, not the working tree: a wheel installed with `pip install --target` carries the
presets, so `stylereel preview` and `-c NAME` work from it (the Quick start installs with `pip install .`)."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from stylereel.pipeline import io

ROOT = Path(__file__).parent.parent
SOURCES = ("pyproject.toml", "README.md", "pipeline", "cli", "configs")  # what the wheel is built from
# Where the installed copy's modules come from and what it finds bundled; no torch import, so it is quick.
WHERE = """
import json, stylereel.cli, stylereel.pipeline
from pathlib import Path
from stylereel.pipeline.config import load_config, preset_file, preset_names
print(json.dumps({"cli": stylereel.cli.__file__, "pipeline": stylereel.pipeline.__file__,
                  "configs": str(preset_file("preview")), "presets": preset_names(),
                  "preview": load_config(Path("preview")).max_side}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The folder a wheel of the working tree is installed into (offline, build dependencies as installed)."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"  # a copy, so the build leaves no build/ or egg-info in the working tree
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    target = root / "site"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                             "--quiet", "--disable-pip-version-check", "--target", str(target), str(source)],
                            capture_output=True, text=True, cwd=root, timeout=300)
    assert result.returncode == 0, result.stderr
    return target


def _python(installed: Path, arguments: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run Python on `arguments` as a machine with only the wheel would: -S skips the .pth files, so the
    editable install's finder (which would add the working tree's folders) stays out; torch and the
    other dependencies come from site-packages, on PYTHONPATH after the installed copy."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), *site.getsitepackages()])}
    return subprocess.run([sys.executable, "-S", *arguments], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_the_installed_copy_is_imported_and_carries_the_presets(installed, tmp_path):
    result = _python(installed, ["-c", WHERE], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert all(Path(found[name]).is_relative_to(installed) for name in ("pipeline", "cli", "configs")), found
    assert found["presets"] == sorted(path.stem for path in (ROOT / "configs").glob("*.toml"))
    with (ROOT / "configs" / "preview.toml").open("rb") as file:
        assert found["preview"] == tomllib.load(file)["max_side"]  # `-c preview` reads the installed preset


def test_preview_from_the_installed_copy_writes_the_sheet(installed, tmp_path):
    content = tmp_path / "content.png"
    io.write_image(content, np.tile(np.linspace(0, 255, 128, dtype=np.uint8)[None, :, None], (16, 1, 3)))  # (16, 128, 3)
    output = tmp_path / "sheet.png"
    # The cells take the preview preset's size (128 px: 128x16 here, so quick) and budgets; the flags
    # make the stop early and the estimate's timing short.
    result = _python(installed, [str(installed / "bin" / "stylereel"), "preview", str(content),
                                 "-s", str(ROOT / "samples" / "styles" / "swirl.png"), "-o", str(output),
                                 "-c", "preview", "--max-side", "128", "--first-iterations", "2", "--iterations", "2",
                                 "--no-coarse-to-fine", "--stop-tolerance", "0.9", "--device", "cpu", "--quiet"],
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sheet = io.read_image(output)
    assert sheet.shape[1] > 2 * 128 and sheet.shape[0] > 16  # one row: the content, then the stylized cell
