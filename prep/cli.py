"""The ``voiceprep`` command line.

``voiceprep run INPUT... -o OUT``   process files/folders into OUT
``voiceprep check FILE...``         one-line verdict per clip (with its span in the source), writes nothing
``voiceprep profiles [NAME]``       list the built-in profiles, or print one as a TOML profile file
``voiceprep references OUT``        Fish Audio reference samples (10-30 s) in OUT/references/<speaker>/

Exit status: 0 when every file processed; 1 when some file errored (with
``--strict``, also when any clip is not approved), or on any other failure
(:class:`~prep.errors.DataError`: a corrupt report or data file;
:class:`~prep.errors.OutputError`; :class:`~prep.errors.SchedulerError`:
the Dask scheduler cannot be reached; API errors); 2 for usage errors
(:class:`~prep.errors.ConfigError`: bad options, nothing to work on); 130
when interrupted (Ctrl-C or SIGTERM: finished files stay in the journal and
a report of them is written, marked partial); 141, quietly, when stdout's reader
closed the pipe early.
Heavy modules are imported inside the commands so that start-up stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConfigError, PrepError, SchedulerError
from .run.run_folder import DRY_RUN_FILE, MANIFEST, PREVIEW_FORMATS, REPORT_HTML, REPORT_JSON, SUBMIT_FILE, RunFolder

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Exit status when stdout's reader closed the pipe early (128 + SIGPIPE, as the shell reports such a stop).
EXIT_CLOSED_PIPE = 141


_EMBED_HELP = (
    f"put the audio into OUT/{REPORT_HTML} (Opus data URIs), so the page alone is the whole report "
    "(default: the players link to the files in OUT)"
)


_DENOISE_HELP = ("auto (default): DeepFilterNet3 on noisy clips (gate SNR estimate < 19 dB, or < 22 dB with "
                 "non-stationary noise) with "
                 "pip install 'voiceprep[enhance]', the mean of it and the spectral gate from 20 to 33 dB where it "
                 "hears noise in the speech, the gate elsewhere; gate, deepfilter or off force one")


def _denoise_option(profile, args: argparse.Namespace):
    """The profile with ``--denoise`` applied to its denoise stage (unchanged when not given)."""
    method = getattr(args, "denoise", None)
    return profile.configure("denoise", method=method) if method else profile


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="process audio files/folders into clean, scored clips")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or folders (searched recursively)")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder")
    p.add_argument("--speaker", help="speaker label for all inputs (default: each file's parent folder name)")
    p.add_argument("--profile", default="fish", metavar="PROFILE",
                   help="processing profile: fish (default), dataset, or a TOML profile file (voiceprep profiles)")
    p.add_argument("-j", "--jobs", type=int, default=None,
                   help="most workers (default: all cores; 1 = serial, in this process)")
    p.add_argument("--pool", choices=("auto", "threads", "processes"), default="auto",
                   help="what the workers are: auto (default: serial, threads or processes by the work at hand and "
                        "the stages; -v says which and why), threads in this process, or worker processes")
    p.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="this machine (default, see --pool) or a dask.distributed cluster ('voiceprep[dask]' extra)")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="with --engine dask: scheduler address, e.g. tcp://10.0.0.5:8786 (default: a LocalCluster)")
    p.add_argument("--no-resume", action="store_true", help=f"redo files already in OUT/{MANIFEST}")
    _add_keep_voice(p)
    p.add_argument("--speakers", choices=("auto",), default=None,
                   help="auto: split each folder's clips into its voices, speakers <folder>-1, <folder>-2... by "
                        "amount of speech (clips are moved; [voice] extra)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any clip is not approved")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.add_argument("--embed-audio", action="store_true", help=_EMBED_HELP)
    p.add_argument("--preview-format", choices=PREVIEW_FORMATS, default=PREVIEW_FORMATS[0],
                   help="the report's source-span previews (OUT/plots): lossless 16-bit FLAC at the source's rate "
                        "(default) or Opus (~1/8 the bytes, 2-4x the CPU to write)")
    p.add_argument("--denoise", choices=("auto", "gate", "deepfilter", "off"), default=None, help=_DENOISE_HELP)
    _add_asr_options(p)
    p.set_defaults(func=_cmd_run)


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="print a one-line verdict per file; writes nothing")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--profile", default="fish", metavar="PROFILE",
                   help="processing profile: fish (default), dataset, or a TOML profile file")
    p.add_argument("--json", action="store_true", help="print one JSON object per file instead")
    _add_keep_voice(p)
    p.add_argument("--strict", action="store_true", help="exit 1 when any clip is not approved")
    p.add_argument("--denoise", choices=("auto", "gate", "deepfilter", "off"), default=None, help=_DENOISE_HELP)
    _add_asr_options(p)
    p.set_defaults(func=_cmd_check)


def _add_keep_voice(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep-voice", choices=("main", "all"), default=None,
                   help="recordings over 20 s with several voices: keep the voice with the most speech (main, "
                        "the profiles' default) or every voice as its own speaker <speaker>-2... (all); "
                        "[voice] extra")


def _add_asr_options(p: argparse.ArgumentParser) -> None:
    """``--transcribe``, ``--asr-model``, ``--language``, ``--device`` (the profile's ``transcribe`` stage)."""
    g = p.add_argument_group("transcripts (speech recognition, pip install 'voiceprep[asr]')")
    g.add_argument("--transcribe", choices=("auto", "always", "never"), default=None,
                   help="auto (default; $VOICEPREP_TRANSCRIBE): transcribe clips without a transcript and check "
                        "given ones; always: the ASR text also replaces given ones; never: no speech recognition")
    g.add_argument("--asr-model", metavar="NAME|PATH", default=None,
                   help="tiny.en (bundled, default), base (bundled, multilingual), another faster-whisper model "
                        "name (downloaded), or a local CTranslate2 model folder")
    g.add_argument("--language", metavar="CODE", default=None,
                   help="language of the recordings, e.g. en or de (default: detected)")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help="where speech recognition runs: auto (a CUDA GPU when there is one; default), cpu, cuda")


def _profile(args: argparse.Namespace):
    """The chosen profile with the command line's stage options applied."""
    from .run.profiles import get_profile

    profile = get_profile(args.profile)
    if getattr(args, "keep_voice", None):
        profile = profile.configure("diarise", keep_voice=args.keep_voice)
    asr = {key: value for key, value in (("mode", args.transcribe), ("asr_model", args.asr_model),
                                         ("language", args.language), ("device", args.device))
           if value is not None}
    if asr:
        profile = profile.configure("transcribe", **asr)
    for stage in profile.stages:
        if stage.name == "transcribe":
            stage.check_model()  # type: ignore[attr-defined]
    return _denoise_option(profile, args)


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
    for command in sub.choices.values():
        # also after the subcommand; SUPPRESS keeps a -v given before it
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="log details to stderr")
    return parser


@contextlib.contextmanager
def _executor(args: argparse.Namespace, workers: int, pool: str = "processes") -> Iterator[Executor]:
    """The executor a run uses: in-process (``workers`` 1 or ``pool`` "serial"), a thread pool or a process pool
    of ``workers``, or a Dask client's."""
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from .run.runner import SerialExecutor

    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    if args.engine == "dask":
        if getattr(args, "pool", "auto") != "auto":
            raise ConfigError(f"--pool {args.pool} is for --engine local (dask runs its own workers)")
        yield from _dask_executor(args)
        return
    if args.scheduler:
        raise ConfigError("--scheduler needs --engine dask")
    if workers <= 1 or pool == "serial":
        yield SerialExecutor()
        return
    if pool == "threads":
        executor: Executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="voiceprep")
    else:
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context())
    try:
        yield executor
    except BaseException:
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def _mp_context():
    """Worker start method: a fork server that has already imported the pipeline (fast, thread-safe)."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["prep.run.runner", "prep.run.warm"])
        return ctx
    return multiprocessing.get_context("spawn")


def _start_workers_early(args: argparse.Namespace, workers: int, stages: Sequence[Any] = ()) -> None:
    """Start (and warm, on the run's ``stages``) the fork server now, so it overlaps the rest of the parent's
    start-up."""
    if args.engine != "local" or workers <= 1:
        return
    ctx = _mp_context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        # One worker per core: each worker's BLAS/OpenMP pools get one thread.  The fork
        # server inherits this environment; the parent's is restored right after.
        saved = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        if stages:
            from .run.runner import WARM_STAGES_ENV, warm_stages_env

            os.environ[WARM_STAGES_ENV] = warm_stages_env(stages)
        try:
            forkserver.ensure_running()
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _plan_run(args: argparse.Namespace, jobs: Sequence[Any], profile: Any) -> tuple[int, str]:
    """How many workers, and which pool (:func:`prep.run.runner.plan_workers`: serial, threads or processes by the
    work at hand); a process pool's fork server is started on the way.

    The files' headers are read one at a time (0.1 s for the 261 files of the 2-hour benchmark batch, with
    PyAV's import for the compressed ones; more on a slow disk).  As soon as the headers read so far settle on
    a process pool of as many workers as the run may have, the fork server starts and warms up on another core
    while the rest are read: more files only add audio and units of work, which cannot turn that plan into
    another.

    Returns
    -------
    (int, str)
        The workers and the pool ("serial", "threads" or "processes"); with ``--engine dask``, ``--jobs`` (or
        the cores) and "processes", its own workers.
    """
    from .run.runner import iter_durations, plan_workers

    cpus = os.cpu_count() or 1
    if args.engine != "local":
        return args.jobs or cpus, "processes"
    most = args.jobs if args.jobs is not None else cpus

    def plan(durations: list[float | None]) -> Any:
        return plan_workers(durations, jobs=args.jobs, cpus=cpus, longform=profile.longform, stages=profile.stages,
                            pool=args.pool)

    durations: list[float | None] = []
    started = False
    for duration in iter_durations(jobs):
        durations.append(duration)
        n = len(durations)
        if not started and most > 1 and (n <= 32 or n % 8 == 0):  # bounded re-planning on a big batch
            early = plan(durations)
            if early.pool == "processes" and early.workers == most:
                _start_workers_early(args, early.workers, profile.stages)
                started = True
                logging.getLogger(__name__).debug("run: fork server started after %d of %d header(s)", n, len(jobs))
    final = plan(durations)
    logging.getLogger(__name__).info("run: %s", final.reason)
    if final.pool == "processes" and not started:
        _start_workers_early(args, final.workers, profile.stages)
    return final.workers, final.pool


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
            raise SchedulerError(f"cannot reach the dask scheduler at {args.scheduler}: {err}") from err
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


def _require_inputs(paths: Sequence[str]) -> None:
    """Refuse an input path that does not exist (a usage error, before anything is created)."""
    for path in paths:
        if not os.path.exists(path):
            raise ConfigError(f"{path}: no such file or folder")


def _cmd_run(args: argparse.Namespace) -> int:
    _require_inputs(args.inputs)
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    from .run.runner import discover, run_jobs

    profile = _profile(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out}: exists and is not a folder")
    jobs = discover(args.inputs, speaker=args.speaker)
    if all(Path(job.path).is_dir() for job in jobs):
        raise ConfigError(f"no audio files found in {' '.join(args.inputs)}")
    workers, pool = _plan_run(args, jobs, profile)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .report.html import write_report_html
    from .report.summary import build_report, write_report_json
    from .run.pipeline import stage_config
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
    collected: dict[str, list] = {}  # the clips of each finished file, for a partial report

    def on_resume(done: int, redone: int) -> None:
        if args.quiet:
            return
        notes = []
        if redone:
            notes.append(f"voiceprep: the profile or config changed since the last run into {out}: "
                         f"{redone} file(s) done then are redone")
        if done:
            notes.append(f"voiceprep: resuming: {done} file(s) already done (in {RunFolder(out).manifest}) "
                         "are skipped; --no-resume redoes them")
        for note in notes:
            progress.console.print(note, markup=False, highlight=False, soft_wrap=True)

    def on_result(job, clips) -> None:
        nonlocal finished
        finished += 1
        collected[job.path] = clips
        progress.advance(task)
        for clip in clips:
            if clip.verdict == "error":
                progress.console.print(f"[red]error[/red] {clip.reasons[0] if clip.reasons else job.path}", markup=True,
                                       highlight=False, soft_wrap=True)

    try:
        with _executor(args, workers, pool) as executor, progress:
            task = progress.add_task("processing", total=len(jobs))
            clips = run_jobs(
                jobs,
                profile.stages,
                out_dir=out,
                executor=executor,
                on_result=on_result,
                resume=not args.no_resume,
                longform=profile.longform,
                on_resume=on_resume,
                speakers=args.speakers,
                preview_format=args.preview_format,
            )
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see main)
        stages = [{"stage": s.name, "config": stage_config(s)} for s in profile.stages]
        kept = [c for job in jobs for c in sorted(collected.get(job.path, ()), key=lambda c: c.id)]
        partial = _finish_interrupted(out, kept, profile=profile.name, stages=stages, quiet=args.quiet,
                                      purpose=profile.purpose)
        print(
            f"voiceprep: interrupted: {finished} of {len(jobs)} file(s) finished and kept in "
            f"{RunFolder(out).manifest}{partial}; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    stages = [{"stage": s.name, "config": stage_config(s)} for s in profile.stages]
    report = build_report(clips, profile=profile.name, stages=stages, purpose=profile.purpose)
    write_report_json(report, out)
    write_report_html(report, out, embed_audio=args.embed_audio)
    if not args.quiet:
        _print_summary(report, out)
    return _exit_status(clips, args.strict)


def _finish_interrupted(
    out: Path, clips: list, *, profile: str, stages: list[dict], quiet: bool, purpose: str = "fish"
) -> str:
    """After an interrupt: remove clip files the journal does not list, write a partial report.

    Returns the part of the interrupt message naming the report ("" when
    no output folder was made).
    """
    from .report.html import write_report_html
    from .report.summary import build_report, write_report_json

    folder = RunFolder(out)
    if not folder.root.is_dir():
        return ""
    with folder.lock():  # the workers have stopped; the run's own lock is released
        folder.remove_stale_temps()
        folder.finish_moves()  # a clip --speakers auto journaled under its new speaker but did not move yet
        folder.remove_unjournaled_clips()
        latest = folder.latest_records()  # clips moved to another speaker before the interrupt
        clips = [latest[(c.source, c.id)].clip if (c.source, c.id) in latest else c for c in clips]
    report = build_report(clips, profile=profile, stages=stages, partial=True, purpose=purpose)
    write_report_json(report, out)
    write_report_html(report, out)
    if not quiet:
        _print_summary(report, out)
    return f", partial report in {folder.report_json}"


def _print_summary(report: dict, out: Path) -> None:
    from .report.summary import print_summary

    print_summary(report, out)


def _cmd_check(args: argparse.Namespace) -> int:
    from .run.runner import assemble_file, discover, extra_notices, process_job

    _require_inputs(args.files)
    profile = _profile(args)
    jobs = discover(args.files)
    for notice in extra_notices(profile.stages) if jobs else ():  # once per run, not per file
        logging.getLogger(__name__).warning(notice)
    clips = []
    for job in jobs:
        results = assemble_file(job, process_job(job, profile.stages, out_dir=None, longform=profile.longform),
                                profile.stages)
        clips.extend(results)
        for clip in results:
            if args.json:
                data = clip.to_dict()
                print(json.dumps({k: data[k] for k in ("id", "source", "speaker", "span_s", "duration_s", "verdict",
                                                       "reasons", "findings", "metrics", "input", "transcript",
                                                       "transcript_info")}, ensure_ascii=False))
            else:
                why = "; ".join(clip.reasons) if clip.reasons else "ok"
                start, end = clip.span_s
                span = f"{start:.1f}–{end:.1f} s " if end > start else ""  # where in the source: slices differ
                print(f"{clip.verdict:<8} {clip.source}  {span}[{clip.duration_s:.1f} s] {why}")
    return _exit_status(clips, args.strict)


def _add_profiles(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profiles", help="list the built-in profiles, or print one as a TOML profile file")
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="a built-in profile (or a profile file) to print as TOML: start a file of your own from it")
    p.set_defaults(func=_cmd_profiles)


def _cmd_profiles(args: argparse.Namespace) -> int:
    from .run.profiles import PROFILES, get_profile

    if args.name is not None:
        sys.stdout.write(get_profile(args.name).to_toml())
        return EXIT_OK
    width = max(len(name) for name in PROFILES)
    for name, make in PROFILES.items():
        profile = make()
        print(f"{name:<{width}}  {profile.description} (purpose: {profile.purpose})")
    print("voiceprep profiles NAME prints one as TOML; save it, keep `extends` and the settings you change, "
          "and pass --profile FILE.toml")
    return EXIT_OK


def _add_submit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="create a Fish Audio voice model (POST /model) from a speaker's best clips")
    p.add_argument("out", metavar="OUT", help="output folder of `voiceprep run`")
    p.add_argument("--speaker", required=True, help="speaker whose clips are sent")
    p.add_argument("--title", required=True, help="model title")
    p.add_argument("--visibility", default="private", choices=("private", "unlist", "public"),
                   help="model visibility (default private; always sent, the API's own default is public)")
    p.add_argument("--description", default=None, help="model description")
    p.add_argument("--tag", dest="tags", action="append", default=[], metavar="TAG", help="model tag (repeatable)")
    p.add_argument("--enhance-audio-quality", action="store_true",
                   help="ask the API to denoise again (off by default: voiceprep already cleaned the audio)")
    p.add_argument("--use", choices=("references", "clips"), default="references",
                   help="send the reference samples (default: 10-30 s each, built as `voiceprep references` does "
                        "when missing or stale) or the selected clips as they are")
    p.add_argument("--max-clips", type=int, default=20, help="at most this many samples (1..20, default 20)")
    p.add_argument("--include-warning", action="store_true", help="also consider clips with a warning verdict")
    p.add_argument("--dry-run", action="store_true",
                   help=f"write the exact request to OUT/{DRY_RUN_FILE} instead of sending it")
    p.add_argument("--force", action="store_true", help=f"create a new model even if OUT/{SUBMIT_FILE} has one")
    p.add_argument("--allow-partial", action="store_true",
                   help=f"submit even though OUT/{REPORT_JSON} is partial (an interrupted run; refused by default)")
    p.add_argument("--base-url", default="https://api.fish.audio", help="API root (default https://api.fish.audio)")
    p.add_argument("--no-wait", action="store_true", help="do not poll the model until it is trained")
    p.add_argument("--wait-timeout", type=float, default=600.0, metavar="S", help="stop polling after S s (600)")
    p.add_argument("--poll-interval", type=float, default=5.0, metavar="S", help="seconds between polls (5)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S", help="per-request timeout in s (120)")
    p.add_argument("--retries", type=int, default=4, help="retries on 429/5xx/timeouts (default 4)")
    p.add_argument("--backoff", type=float, default=1.0, metavar="S",
                   help="first retry wait in s, doubled each retry (default 1)")
    p.set_defaults(func=_cmd_submit)


def _cmd_submit(args: argparse.Namespace) -> int:
    from .deliver.submit import RetryPolicy, SubmitOptions, submit

    options = SubmitOptions(
        title=args.title,
        visibility=args.visibility,
        enhance_audio_quality=args.enhance_audio_quality,
        description=args.description,
        tags=tuple(args.tags),
        max_clips=args.max_clips,
        include_warning=args.include_warning,
        use=args.use,
        base_url=args.base_url,
        timeout_s=args.timeout,
        retry=RetryPolicy(max_retries=args.retries, backoff_s=args.backoff, backoff_max_s=max(30.0, args.backoff)),
        wait=not args.no_wait,
        poll_interval_s=args.poll_interval,
        poll_timeout_s=args.wait_timeout,
    )
    if not Path(args.out).is_dir():
        raise ConfigError(f"OUT {args.out}: no such folder")
    result = submit(args.out, args.speaker, options, force=args.force, dry_run=args.dry_run,
                    allow_partial=args.allow_partial)
    plan = result.plan
    texts = "with" if plan and plan.texts else "without"
    kind = "reference(s)" if plan and any(c.parts for c in plan.clips) else "clip(s)"
    sent = f"{len(plan.clips)} {kind}, {plan.total_s:.1f} s, {texts} texts" if plan else ""
    for note in plan.notes if plan else ():
        print(f"note: {note}", file=sys.stderr)
    if args.dry_run:
        print(f"dry run: {sent}; request written to {result.record_path} (nothing sent)")
    else:
        print(f"model {result.model_id} for {args.speaker}: state {result.state} ({sent}); "
              f"recorded in {result.record_path}")
    return EXIT_OK


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export approved clips + transcripts as a TTS dataset")
    p.add_argument("out", metavar="OUT", help="output folder of `voiceprep run`")
    p.add_argument("--format", required=True, choices=("fish-speech", "ljspeech", "nemo", "audiofolder"),
                   help="dataset layout")
    p.add_argument("-d", "--dest", required=True, metavar="DEST", help="export folder (empty or an earlier export)")
    p.add_argument("--speaker", default=None, help="only this speaker")
    p.add_argument("--include-warning", action="store_true", help="also export clips with a warning verdict")
    p.add_argument("--allow-missing-text", action="store_true",
                   help="export clips without a transcript (empty text) instead of skipping them")
    p.add_argument("--absolute-paths", action="store_true", help="nemo: absolute audio_filepath values")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from .deliver.export import describe_skipped, export_clips

    if not Path(args.out).is_dir():
        raise ConfigError(f"OUT {args.out}: no such folder")
    result = export_clips(
        args.out,
        args.format,
        args.dest,
        include_warning=args.include_warning,
        speaker=args.speaker,
        require_text=not args.allow_missing_text,
        absolute_paths=args.absolute_paths,
    )
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    why = describe_skipped(result.skipped, include_warning=args.include_warning,
                           require_text=not args.allow_missing_text)
    print(f"exported {len(result.exported)} clip(s) as {result.format} to {result.dest}"
          + (f"; skipped {len(result.skipped)} ({why})" if result.skipped else ""))
    for clip_id, why in result.skipped:
        print(f"  skipped {clip_id}: {why}", file=sys.stderr)
    return EXIT_OK


def _add_references(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("references", help="build Fish Audio reference samples (10-30 s each) from the best clips")
    p.add_argument("out", metavar="OUT", help="output folder of `voiceprep run`")
    p.add_argument("--speaker", default=None, help="only this speaker (default: every speaker of the run)")
    p.add_argument("--include-warning", action="store_true", help="also use clips with a warning verdict")
    p.set_defaults(func=_cmd_references)


def _cmd_references(args: argparse.Namespace) -> int:
    from .deliver.references import ReferenceConfig, build_references, describe
    from .report.html import write_report_html
    from .report.summary import read_report

    out = Path(args.out)
    if not out.is_dir():
        raise ConfigError(f"OUT {args.out}: no such folder")
    folder = RunFolder(out)
    clips = folder.read_clips()
    speakers = [args.speaker] if args.speaker else sorted({c.speaker for c in clips})
    config = ReferenceConfig(include_warning=args.include_warning)
    built = 0
    for speaker in speakers:
        listing = build_references(out, speaker, config=config, clips=clips)
        built += bool(listing["references"])
        print(f"{speaker}: {describe(listing)} in {folder.reference_dir(speaker)}")
        for note in listing["notes"]:
            print(f"note: {speaker}: {note}", file=sys.stderr)
    write_report_html(read_report(out), out)  # the page shows the new references
    return EXIT_OK if built == len(speakers) else EXIT_FAILED


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help=f"regenerate OUT/{REPORT_HTML} from OUT/{REPORT_JSON} and print the summary")
    p.add_argument("out", metavar="OUT", help="output folder of `voiceprep run`")
    p.add_argument("--max-plots", type=int, default=500, metavar="N",
                   help="draw before/after plots for at most N clips (default 500)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary")
    p.add_argument("--embed-audio", action="store_true", help=_EMBED_HELP)
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from .report.html import write_report_html
    from .report.summary import print_summary, read_report

    if args.max_plots < 0:
        raise ConfigError(f"--max-plots must be >= 0, got {args.max_plots}")
    out = Path(args.out)
    report = read_report(out)
    path = write_report_html(report, out, max_plots=args.max_plots, embed_audio=args.embed_audio)
    if not args.quiet:
        print_summary(report, out)
    else:
        print(path)
    return EXIT_OK


_COMMANDS = [_add_run, _add_check, _add_profiles, _add_submit, _add_references, _add_export, _add_report]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``voiceprep`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(message)s")
    for noisy in ("distributed", "bokeh", "tornado"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    previous = _sigterm_as_interrupt()
    try:
        status = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return status
    except ConfigError as err:
        print(f"voiceprep: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except PrepError as err:  # DataError, OutputError, SchedulerError, SubmitError, ...
        print(f"voiceprep: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("voiceprep: interrupted; finished files are kept in the manifest, re-run to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _closed_pipe()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise KeyboardInterrupt


def _sigterm_as_interrupt() -> Any:
    """Make SIGTERM stop a command as Ctrl-C does; returns the handler it replaced (None if not set)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _on_sigterm)


def _closed_pipe() -> int:
    """Exit quietly when the reader of stdout has gone (``voiceprep check ... | head -1``).

    Stdout is pointed at ``/dev/null`` so that the interpreter's last flush
    does not raise again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)
    return EXIT_CLOSED_PIPE


if __name__ == "__main__":
    raise SystemExit(main())
