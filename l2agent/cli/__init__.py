"""`l2agent` command line: parse (`args`), then hand each subcommand to its module.

The offline tools live here too: `plan_report` (`l2agent plan`) and `status_view`
(`l2agent status`).
"""

from __future__ import annotations

from collections.abc import Sequence

from l2agent.cli.args import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "speaker":
        from l2agent.speaker.main import run_speaker

        return run_speaker(args)
    if args.command == "controller":
        from l2agent.controller.main import run_controller

        return run_controller(args)
    if args.command == "plan":
        from l2agent.cli.plan_report import run_plan

        return run_plan(args)
    if args.command == "status":
        from l2agent.cli.status_view import run_status

        return run_status(args)
    if args.command == "lab":
        from l2agent.lab.demo import run_lab

        return run_lab(args)
    return 2
