"""The ``voiceprep`` command line.

``voiceprep run INPUT... -o OUT``   process files/folders into OUT
``voiceprep check FILE...``         one-line verdict per file, writes nothing

Exit status: 0 when every file processed, 1 when some file errored (with
``--strict``, also when any clip is not approved), 2 for usage errors.
Heavy modules are imported inside the commands so that start-up stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from pathlib import Path

from . import __version__
from .errors import ConfigError, OutputError, PrepError

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="process audio files/folders into clean, scored clips")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or folders (searched recursively)")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder")
    p.add_argument("--speaker", help="speaker label for all inputs (default: each file's parent folder name)")
    p.add_argument("--profile", default="fish", help="processing profile: fish (default) or dataset")
    p.add_argument("-j", "--jobs", type=int, default=None, help="worker processes (default: all cores; 1 = serial)")
    p.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="local processes (default) or a dask.distributed cluster (pip install 'voiceprep[dask]')")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="with --engine dask: scheduler address, e.g. tcp://10.0.0.5:8786 (default: a LocalCluster)")
    p.add_argument("--no-resume", action="store_true", help="redo files already in OUT's manifest")
    p.add_argument("--strict", action="store_true", help="exit 1 when any clip is not approved")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_run)


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="print a one-line verdict per file; writes nothing")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--profile", default="fish", help="processing profile (default fish)")
    p.add_argument("--json", action="store_true", help="print one JSON object per file instead")
    p.add_argument("--strict", action="store_true", help="exit 1 when any clip is not approved")
    p.set_defaults(func=_cmd_check)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="voiceprep",
        description="Turn raw voice recordings into clean, scored, transcript-paired clips.",
    )
    parser.add_argument("--version", action="version", version=f"voiceprep {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


@contextlib.contextmanager
def _executor(args: argparse.Namespace, n_files: int) -> Iterator[Executor]:
    """The executor a run uses: in-process, a process pool, or a Dask client's."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from .runner import SerialExecutor

    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    if args.engine == "dask":
        yield from _dask_executor(args)
        return
    if args.scheduler:
        raise ConfigError("--scheduler needs --engine dask")
    workers = min(args.jobs if args.jobs is not None else (os.cpu_count() or 1), n_files)
    if workers <= 1:
        yield SerialExecutor()
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _dask_executor(args: argparse.Namespace) -> Iterator[Executor]:
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise ConfigError("--engine dask needs dask.distributed: pip install 'voiceprep[dask]'") from err
    quiet = logging.INFO if args.verbose else logging.ERROR
    for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.worker"):
        logging.getLogger(name).setLevel(quiet)
    if args.scheduler:
        try:
            client = Client(args.scheduler, timeout="20s")
        except (OSError, TimeoutError) as err:
            raise ConfigError(f"--scheduler {args.scheduler}: cannot connect: {err}") from err
        cluster = None
    else:
        cluster = LocalCluster(n_workers=args.jobs or os.cpu_count() or 1, threads_per_worker=1,
                               processes=True, dashboard_address=":0", silence_logs=quiet)
        client = Client(cluster)
    try:
        yield client.get_executor(pure=False)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _exit_status(clips, strict: bool) -> int:
    if any(c.verdict == "error" for c in clips):
        return EXIT_FAILED
    if strict and any(c.verdict != "approved" for c in clips):
        return EXIT_FAILED
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .pipeline import stage_config
    from .profiles import get_profile
    from .report import build_report, write_report_json
    from .runner import discover, run_jobs

    profile = get_profile(args.profile)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out}: exists and is not a folder")
    jobs = discover(args.inputs, speaker=args.speaker)
    if not jobs:
        raise ConfigError(f"no audio files found in {' '.join(args.inputs)}")
    err_console = Console(stderr=True)
    show_progress = not args.quiet and sys.stderr.isatty() and len(jobs) > 1
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not show_progress,
        transient=True,
    )

    finished = 0

    def on_result(job, clips) -> None:
        nonlocal finished
        finished += 1
        progress.advance(task)
        for clip in clips:
            if clip.verdict == "error":
                progress.console.print(f"[red]error[/red] {clip.reasons[0] if clip.reasons else job.path}", markup=True,
                                       highlight=False, soft_wrap=True)

    try:
        with _executor(args, len(jobs)) as executor, progress:
            task = progress.add_task("processing", total=len(jobs))
            clips = run_jobs(
                jobs, profile.stages, out_dir=out, executor=executor, on_result=on_result, resume=not args.no_resume
            )
    except KeyboardInterrupt:
        print(
            f"voiceprep: interrupted: {finished} of {len(jobs)} file(s) finished and kept in {out / 'manifest.jsonl'}; "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    stages = [{"stage": s.name, "config": stage_config(s)} for s in profile.stages]
    report = build_report(clips, profile=profile.name, stages=stages)
    write_report_json(report, out)
    if not args.quiet:
        _print_summary(report, out)
    return _exit_status(clips, args.strict)


def _print_summary(report: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"voiceprep: {report['summary']['clips']} clip(s) -> {out}")
    table.add_column("speaker")
    table.add_column("clips", justify="right")
    table.add_column("approved", justify="right")
    table.add_column("approved s", justify="right")
    for speaker, entry in sorted(report["summary"]["speakers"].items()):
        table.add_row(speaker, str(entry["clips"]), str(entry["approved"]), f"{entry['approved_s']:.1f}")
    console.print(table)
    verdicts = ", ".join(f"{k}: {v}" for k, v in sorted(report["summary"]["verdicts"].items()))
    console.print(f"verdicts: {verdicts}", highlight=False)


def _cmd_check(args: argparse.Namespace) -> int:
    from .profiles import get_profile
    from .runner import discover, process_job

    profile = get_profile(args.profile)
    jobs = discover(args.files)
    clips = []
    for job in jobs:
        results = process_job(job, profile.stages, out_dir=None)
        clips.extend(results)
        for clip in results:
            if args.json:
                data = clip.to_dict()
                print(json.dumps({k: data[k] for k in ("id", "source", "speaker", "duration_s", "verdict",
                                                       "reasons", "metrics", "input")}, ensure_ascii=False))
            else:
                why = "; ".join(clip.reasons) if clip.reasons else "ok"
                print(f"{clip.verdict:<8} {clip.source}  [{clip.duration_s:.1f} s] {why}")
    return _exit_status(clips, args.strict)


_COMMANDS = [_add_run, _add_check]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``voiceprep`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(message)s")
    for noisy in ("distributed", "bokeh", "tornado"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    try:
        return int(args.func(args))
    except ConfigError as err:
        print(f"voiceprep: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OutputError as err:
        print(f"voiceprep: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except PrepError as err:
        print(f"voiceprep: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("voiceprep: interrupted; finished files are kept in the manifest, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
