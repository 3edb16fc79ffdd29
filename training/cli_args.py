"""Command-line parsing shared by the training/ scripts: flags, or a single JSON/YAML file of them."""

import os
import sys

from transformers import HfArgumentParser


def parse_arguments(parser: HfArgumentParser, argv: list[str] | None = None) -> tuple:
    """Parses `argv` (the command line by default) into the parser's dataclasses.

    A single argument ending in `.json`, `.yaml` or `.yml` is read as a file holding every setting.
    """
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(os.path.abspath(argv[0]))
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)
