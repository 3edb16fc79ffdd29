#!/usr/bin/env python
# SPDX-License-Identifier: Apache-2.0
"""Run `dataset_scripts/build_text_bags.py` and SIGKILL the process at one point of the build (for the resume tests).

    python tests/helpers/killed_build.py POINT:N BUILD_FLAGS...

POINT is where the N-th call dies: `match` (a match chunk mapped but not saved yet), `llm` (an LLM reply received but
not cached yet: the one request a kill may lose) or `publish` (a configuration's parquet files written into
`.publishing`, the others not). The process never returns from the kill: it ends with -SIGKILL.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dataset_scripts import build_text_bags  # noqa: E402
from modeling_maxi.text_bags import llm_expansion, publishing, stages  # noqa: E402

KILL_POINTS = {
    "match": (stages, "_map_chunk"),
    "llm": (llm_expansion, "_save_reply"),
    "publish": (publishing, "_write_parquet"),
}


def kill_at(point: str, nth: int) -> None:
    """Replace the function of `point` so that its `nth` call dies by SIGKILL (after the work, before it is kept)."""
    module, name = KILL_POINTS[point]
    original, calls = getattr(module, name), []

    def dying(*args, **kwargs):
        if point == "match" and not kwargs["desc"].startswith("Matching"):
            return original(*args, **kwargs)
        calls.append(None)
        if len(calls) == nth and point == "llm":
            os.kill(os.getpid(), signal.SIGKILL)  # the reply arrived; it is not cached
        result = original(*args, **kwargs)
        if len(calls) == nth:
            os.kill(os.getpid(), signal.SIGKILL)  # the chunk is mapped, or the parquet files written, not yet kept
        return result

    setattr(module, name, dying)


if __name__ == "__main__":
    point, nth = sys.argv[1].split(":")
    kill_at(point, int(nth))
    build_text_bags.main(sys.argv[2:])
    sys.exit(f"the build finished without reaching {sys.argv[1]}")
