# SPDX-License-Identifier: Apache-2.0
"""Runs Python code in a fresh process where `modeling_maxi` cannot be imported, as on a machine without the package
that loads a checkpoint with `trust_remote_code=True`."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

# An import hook refusing `modeling_maxi` and its submodules, whatever sys.path holds (an installed copy included).
BLOCK_THE_PACKAGE = textwrap.dedent(
    """
    import importlib.abc, sys

    class _RefuseModelingMaxi(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "modeling_maxi" or name.startswith("modeling_maxi."):
                raise ImportError(f"{name} is blocked: this process must run without the package")
            return None

    sys.meta_path.insert(0, _RefuseModelingMaxi())
    try:
        import modeling_maxi
    except ImportError:
        pass
    else:
        raise SystemExit("modeling_maxi was importable")
    """
)


def run_without_the_package(code: str, workdir: Path, timeout: int = 300):
    """Runs `code` after `BLOCK_THE_PACKAGE` in `workdir` (offline, its own HOME and module cache); returns the
    JSON the code printed on its last line of stdout."""
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_THE_PACKAGE + textwrap.dedent(code)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(workdir), "TOKENIZERS_PARALLELISM": "false"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
