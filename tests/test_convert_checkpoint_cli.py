# SPDX-License-Identifier: Apache-2.0
"""`training/convert_checkpoint.py` as a user runs it: a user error ends in one `error:` line and a non-zero exit
status, without a traceback unless `--debug` asks for it; both `python training/convert_checkpoint.py` and
`python -m training.convert_checkpoint` work from the repository root."""

import builtins
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT_PATH = ["training/convert_checkpoint.py"]
SCRIPT_MODULE = ["-m", "training.convert_checkpoint"]


class _CodeExecutingPayload:
    """Unpickling it would call `exec`, which writes `marker`: the safe loader must refuse it without running it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('pwned')",))


@pytest.fixture
def refused_checkpoint(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"visual.proj": torch.zeros(2, 2)}, "hook": _CodeExecutingPayload(marker)}, path)
    return path, marker


def _run(invocation: list[str], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MAXI_DEBUG"}
    env["HF_HUB_OFFLINE"] = "1"  # nothing here needs the network; a refused file fails before the base is loaded
    return subprocess.run(
        [sys.executable, *invocation, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _last_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "the script wrote nothing on stderr"
    return lines[-1]


def test_refused_checkpoint_ends_in_one_error_line(refused_checkpoint, tmp_path):
    path, marker = refused_checkpoint
    result = _run(SCRIPT_PATH, "--checkpoint", str(path), "--output_dir", str(tmp_path / "out"))
    assert result.returncode != 0
    last = _last_line(result.stderr)
    assert last.startswith("error: "), result.stderr
    assert "Refusing to load" in last and "evil.pth" in last and "builtins.exec" in last
    assert "Traceback" not in result.stderr
    assert not marker.exists()  # the payload never ran
    assert not (tmp_path / "out").exists()


def test_missing_checkpoint_ends_in_one_error_line(tmp_path):
    missing = tmp_path / "nope.pth"
    result = _run(SCRIPT_MODULE, "--checkpoint", str(missing), "--output_dir", str(tmp_path / "out"))
    assert result.returncode != 0
    last = _last_line(result.stderr)
    assert last.startswith("error: "), result.stderr
    assert f"--checkpoint {str(missing)!r} is not a file" in last
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(refused_checkpoint, tmp_path):
    path, marker = refused_checkpoint
    result = _run(SCRIPT_PATH, "--checkpoint", str(path), "--output_dir", str(tmp_path / "out"), "--debug")
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert "UnsafeCheckpointError: Refusing to load" in result.stderr
    assert not _last_line(result.stderr).startswith("error: ")
    assert not marker.exists()
