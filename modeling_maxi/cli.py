# SPDX-License-Identifier: Apache-2.0
"""One command-line convention for every MAXI script: argument dataclasses parsed by `HfArgumentParser`, from flags,
from one JSON/YAML file, or from a file plus flags that override it; user errors end in one line, not a traceback.

    python training/train.py --dataset_name bags --output_dir out          # flags
    python training/train.py training/configs/maxi_vitb16_k400.yaml        # one file
    python training/train.py --config training/configs/maxi_vitb16_k400.yaml --dataset_name bags   # file + overrides

`--debug` (or `MAXI_DEBUG=1`) shows the full traceback of an error.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
CONFIG_FLAG = "--config"
DEBUG_FLAG = "--debug"
DEBUG_ENV = "MAXI_DEBUG"

LOG_FORMAT = "%(asctime)s - %(levelname)s - %(name)s - %(message)s"
LOG_DATE_FORMAT = "%m/%d/%Y %H:%M:%S"

__all__ = [
    "CONFIG_FLAG",
    "DEBUG_ENV",
    "DEBUG_FLAG",
    "parse_script_arguments",
    "read_config_file",
    "run_script",
    "setup_script_logging",
]


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping of argument names to values held by a `.json`, `.yaml` or `.yml` file."""
    path = Path(path)
    if path.suffix not in CONFIG_SUFFIXES:
        raise ValueError(f"Config file {str(path)!r} must end in one of {', '.join(CONFIG_SUFFIXES)}.")
    if not path.is_file():
        raise FileNotFoundError(f"Config file {str(path)!r} does not exist.")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        values = json.loads(text) if text.strip() else {}
    else:
        import yaml

        values = yaml.safe_load(text) or {}
    if not isinstance(values, dict):
        raise ValueError(f"Config file {str(path)!r} must hold a mapping of argument names to values.")
    return values


def _split_config(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """The config file named by a leading positional path or by `--config FILE`, and the remaining flags."""
    argv = list(argv)
    if argv and not argv[0].startswith("-") and argv[0].endswith(CONFIG_SUFFIXES):
        return argv[0], argv[1:]
    if CONFIG_FLAG in argv:
        index = argv.index(CONFIG_FLAG)
        if index + 1 >= len(argv):
            raise ValueError(f"{CONFIG_FLAG} needs a file path.")
        return argv[index + 1], argv[:index] + argv[index + 2 :]
    return None, argv


def parse_script_arguments(
    dataclass_types: type | Sequence[type], argv: Sequence[str] | None = None, description: str | None = None
) -> tuple:
    """Parses `argv` (the command line by default) into instances of `dataclass_types`.

    A config file's values become the parser's defaults, so flags given with it override them; a key that no
    dataclass declares is refused with its name.
    """
    from transformers import HfArgumentParser

    config_path, flags = _split_config(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(dataclass_types, description=description)
    if config_path is not None:
        values = read_config_file(config_path)
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Config file {config_path!r} sets unknown argument(s) {unknown}.")
        values = {key: value for key, value in values.items() if value is not None}
        for action in parser._actions:
            if action.dest in values:
                action.required = False
        parser.set_defaults(**values)
    return parser.parse_args_into_dataclasses(args=flags, look_for_args_file=False)


def _one_line(error: BaseException) -> str:
    message = " ".join(str(error).split()) or type(error).__name__
    return message if isinstance(error, (ValueError, OSError)) else f"{type(error).__name__}: {message}"


def run_script(main: Callable[[list[str]], Any], argv: Sequence[str] | None = None) -> None:
    """Runs a script's `main(argv)`; an error ends the process with one line on stderr and exit status 1.

    `--debug` anywhere in `argv` (removed before `main` sees it) or `MAXI_DEBUG=1` lets the traceback through.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").lower() not in ("", "0", "false", "no")
    argv = [arg for arg in argv if arg != DEBUG_FLAG]
    try:
        main(argv)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as error:
        if debug:
            raise
        sys.stderr.write(f"error: {_one_line(error)}  (rerun with {DEBUG_FLAG} or {DEBUG_ENV}=1 for the traceback)\n")
        sys.exit(1)


def setup_script_logging(level: int = logging.INFO, library_level: int = logging.WARNING) -> None:
    """The logging of every script: the script's and this package's records at `level` on stdout, transformers' and
    datasets' own at `library_level` (a training script passes `TrainingArguments.get_process_log_level()` for both,
    so replicas stay quiet)."""
    import transformers

    logging.basicConfig(format=LOG_FORMAT, datefmt=LOG_DATE_FORMAT, handlers=[logging.StreamHandler(sys.stdout)])
    for name in ("__main__", "modeling_maxi", "training", "dataset_scripts"):
        logging.getLogger(name).setLevel(level)
    transformers.utils.logging.set_verbosity(library_level)
    try:  # an optional dependency (the `data` and `train` extras)
        import datasets
    except ImportError:
        return
    datasets.utils.logging.set_verbosity(library_level)
