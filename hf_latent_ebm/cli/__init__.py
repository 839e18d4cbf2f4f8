"""`hf-latent-ebm` command line: train, sample and evaluate; `ehr ...` for health event prediction."""

import argparse
import shlex
import sys

from .commands import add_model_commands
from .molecules import add_molecule_commands
from .tasks import TASKS, Task
from .train import add_train_command

__all__ = ["main", "build_parser", "TASKS", "Task"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-latent-ebm", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    add_train_command(commands)
    add_model_commands(commands)
    add_molecule_commands(commands)

    from ..chet.cli import add_ehr_commands

    add_ehr_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["hf-latent-ebm", *argv])
    try:
        args.handler(args)
    except (ValueError, OSError, ImportError) as error:
        print(f"hf-latent-ebm {args.command}: error: {error}", file=sys.stderr)
        sys.exit(2)
