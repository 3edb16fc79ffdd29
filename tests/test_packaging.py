# SPDX-License-Identifier: Apache-2.0
"""What `pip install .` ships, and which folder may import which (the layout of the release)."""

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRODUCT_FOLDERS = ("modeling_maxi", "training", "dataset_scripts", "space_app")
SCRIPT_FOLDERS = ("training", "dataset_scripts", "space_app")


def _imported_top_levels(path: Path) -> set[str]:
    """Top-level names of every absolute import in a Python file (relative imports stay in their package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _python_files(*folders: str) -> list[Path]:
    return [path for folder in folders for path in sorted((REPO / folder).rglob("*.py"))]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """The wheel `pip install .` would install, and everything the build printed."""
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
        cwd=out,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (path,) = out.glob("*.whl")
    return path, build.stdout + build.stderr


def test_the_wheel_holds_only_the_library_with_its_data(wheel):
    path, _ = wheel
    names = zipfile.ZipFile(path).namelist()
    top_levels = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_levels == {"modeling_maxi"}
    for data_file in (
        "modeling_maxi/data/kinetics_prompt_templates.txt",
        "modeling_maxi/data/labels/kinetics_400_labels.csv",
        "modeling_maxi/data/splits/ucf101/val1.txt",
        "modeling_maxi/data/splits/k600/ZS_split1_K600_eval.txt.gz",
        "modeling_maxi/evaluation/metric_scripts/top_k_accuracy/top_k_accuracy.py",
        "modeling_maxi/evaluation/metric_scripts/mean_average_precision/mean_average_precision.py",
        "modeling_maxi/data/bpe_simple_vocab_16e6.txt.gz",
        "modeling_maxi/data/bpe_simple_vocab_16e6.LICENSE.txt",
        "modeling_maxi/data/model_card.md",
    ):
        assert data_file in names, data_file
    tracked = subprocess.run(
        ["git", "ls-files", "modeling_maxi"], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout.split()
    assert set(tracked) <= set(names), sorted(set(tracked) - set(names))[:5]
    metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(path).read(metadata).decode()
    assert "License-Expression: Apache-2.0" in text and "Entry-points" not in text
    requirements = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]
    runtime = [requirement for requirement in requirements if "extra ==" not in requirement]
    assert not [
        r for r in requirements if r.startswith(("open-clip-torch", "timm", "ftfy")) and 'extra == "dev"' not in r
    ]
    assert "transformers<6,>=5.6" in runtime and "av>=14" in runtime and not any("open-clip" in r for r in runtime)
    assert 'datasets>=4.0; extra == "data"' in requirements  # datasets.List


def test_the_build_prints_no_deprecation_warning(wheel):
    _, output = wheel
    for warning in ("BuildBackendWarning", "SetuptoolsDeprecationWarning", "SetuptoolsWarning"):
        assert warning not in output, output[-3000:]


def test_no_product_file_imports_the_toy_world_or_the_tests():
    offenders = {
        str(path.relative_to(REPO)): sorted(_imported_top_levels(path) & {"toy_world", "tests", "benchmarks"})
        for path in _python_files(*PRODUCT_FOLDERS)
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_library_never_imports_a_script_folder():
    offenders = {
        str(path.relative_to(REPO)): sorted(_imported_top_levels(path) & set(SCRIPT_FOLDERS))
        for path in _python_files("modeling_maxi")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_library_exports_no_test_server():
    import modeling_maxi.text_bags as text_bags

    assert not any("Server" in name for name in dir(text_bags))
    assert all("http.server" not in path.read_text(encoding="utf-8") for path in _python_files("modeling_maxi"))
