# SPDX-License-Identifier: Apache-2.0
"""Writing one benchmark's section of `benchmarks/RESULTS.md`, keeping the other sections."""

from pathlib import Path


def write_section(path: Path, section: str) -> None:
    """Replace the section starting with `section`'s first line (a `## name` heading) or append it."""
    heading = section.split("\n", 1)[0]
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmark results\n"
    if heading + "\n" in text:
        head, _, rest = text.partition(heading + "\n")
        following = rest.find("\n## ")
        text = head + section + (rest[following + 1 :] if following >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
