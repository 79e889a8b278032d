"""Long recordings in bounded memory.

A file longer than a profile's ``long_file_s`` is never decoded whole.
The definition: :func:`scan` streams it, accumulating the channel
statistics the downmix needs and the energy of the would-be mono mix in
50 ms frames; :func:`cut_points` chooses cuts in the quietest stretches, so
that pieces are ``min_piece_s``–``max_piece_s`` long and no cut lands in
speech; :func:`pieces` streams it again and mixes each piece to mono with
the whole file's decision.  :class:`OnePass` gives the same pieces in one
streamed pass, handing each out as soon as it is cut (so pieces are
processed while the rest of the file is decoded) and checking at the end
that the whole file agrees (else it restarts with the two-pass way).
Each piece goes through the normal in-memory pipeline as its own clip
(which then trims, slices, denoises, normalizes and scores it).  Memory is
bounded by the piece length, not by the file length.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..clip import Clip, SourceAudio
from ..errors import ConfigError
from ..findings import finding
from ..stages.downmix import ChannelReport, channel_report, downmix_findings, downmix_metrics, mix_weights
from .decode import probe, stream

__all__ = ["LongForm", "FileScan", "OnePass", "RESTART", "scan", "cut_points", "pieces", "piece_clips", "finish_clips"]

_FRAME_S = 0.05
_SMOOTH_S = 0.3  # a cut goes in the quietest 300 ms of the search window
_SILENCE_DBFS = -70.0  # a piece whose loudest frame is below this holds nothing


@dataclass(frozen=True)
class LongForm:
    """How long files are cut before the in-memory pipeline.

    Attributes
    ----------
    long_file_s : float
        Files longer than this go through the streaming path.
    min_piece_s, max_piece_s : float
        Length range of the pieces handed to the pipeline.
    block_s : float
        Decoding block length.
    """

    long_file_s: float = 300.0
    min_piece_s: float = 60.0
    max_piece_s: float = 120.0
    block_s: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.min_piece_s < self.max_piece_s:
            raise ConfigError(f"need 0 < min_piece_s < max_piece_s, got {self.min_piece_s!r}, {self.max_piece_s!r}")
        if self.block_s <= 0 or self.long_file_s <= 0:
            raise ConfigError(f"block_s and long_file_s must be > 0, got {self.block_s!r}, {self.long_file_s!r}")


@dataclass(frozen=True)
class FileScan:
    """Pass-1 result: the downmix decision and mono frame energies."""

    sample_rate: int
    n_samples: int
    report: ChannelReport | None  # None for mono files
    frame_db: np.ndarray  # (frames,) energy of the mono mix per 50 ms frame, dBFS


class _Scanner:
    """Pass-1 statistics accumulated block by block (what :func:`scan` computes, shared with :class:`OnePass`)."""

    def __init__(self, rate: int, frame: int) -> None:
        self.sample_rate, self.frame = rate, frame
        self.grams: list[np.ndarray] = []  # per block: (frames, channels, channels)
        self.sums: np.ndarray | None = None
        self.n = 0
        self.frames = 0  # whole frames so far
        self.carry: np.ndarray | None = None
        self.total: np.ndarray | None = None  # the grams summed so far (for provisional decisions only)

    def add(self, chunk: np.ndarray) -> None:
        x = chunk.astype(np.float64)
        self.sums = x.sum(axis=1) if self.sums is None else self.sums + x.sum(axis=1)
        self.n += x.shape[1]
        if self.carry is not None and self.carry.shape[1]:
            x = np.concatenate([self.carry, x], axis=1)
        frame = self.frame
        k = x.shape[1] // frame
        framed = x[:, : k * frame].reshape(x.shape[0], k, frame).transpose(1, 0, 2)  # (k, channels, frame)
        self.grams.append(np.einsum("kif,kjf->kij", framed, framed))  # no BLAS: thread-count independent
        self.total = self.grams[-1].sum(axis=0) if self.total is None else self.total + self.grams[-1].sum(axis=0)
        self.frames += k
        self.carry = x[:, k * frame :].copy()  # a copy: a view would hold the whole float64 block

    def decision(self, *, dead_channel_db: float, inverted_corr: float) -> tuple[ChannelReport | None, np.ndarray]:
        """The downmix decision from the whole frames so far, and its mix weights (float64)."""
        return self._decide(self.total, dead_channel_db=dead_channel_db, inverted_corr=inverted_corr)

    def _decide(self, total_gram: np.ndarray, **decide: float) -> tuple[ChannelReport | None, np.ndarray]:
        if total_gram.shape[0] == 1:
            return None, np.ones(1)
        assert self.sums is not None
        report = channel_report(total_gram, self.sums, self.n, **decide)  # type: ignore[arg-type]
        return report, mix_weights(report).astype(np.float64)

    def frame_db(self, weights: np.ndarray, first: int = 0, last: int | None = None) -> np.ndarray:
        """Energy (dBFS) of the mono mix with ``weights`` per whole frame ``first`` to ``last`` (excluded)."""
        last = self.frames if last is None else min(last, self.frames)
        parts, pos = [], 0
        for gram in self.grams:
            if pos + gram.shape[0] > first and pos < last:
                parts.append(gram[max(0, first - pos) : last - pos])
            pos += gram.shape[0]
        per_frame = np.concatenate(parts, axis=0) if len(parts) != 1 else parts[0]
        energy = np.einsum("i,kij,j->k", weights, per_frame, weights) / self.frame
        with np.errstate(divide="ignore"):
            return 10.0 * np.log10(np.maximum(energy, 0.0))

    def result(self, *, dead_channel_db: float, inverted_corr: float) -> FileScan:
        """The final :class:`FileScan` (the partial last frame counted), as :func:`scan` returns it."""
        if self.sums is None:
            return FileScan(self.sample_rate, 0, None, np.zeros(0))
        if self.carry is not None and self.carry.shape[1]:  # the partial last frame counts as one
            self.grams.append(np.einsum("if,jf->ij", self.carry, self.carry)[None])
            self.frames += 1
            self.carry = None
        per_frame = np.concatenate(self.grams, axis=0)  # (frames, channels, channels)
        self.grams = [per_frame]
        report, weights = self._decide(per_frame.sum(axis=0), dead_channel_db=dead_channel_db,
                                       inverted_corr=inverted_corr)
        return FileScan(self.sample_rate, self.n, report, self.frame_db(weights))


def _block_frames(rate: int, block_s: float) -> tuple[int, int]:
    """(frame, block) lengths in samples: a block is a whole number of 50 ms frames."""
    frame = max(1, round(_FRAME_S * rate))
    return frame, frame * max(1, round(block_s / _FRAME_S))


def scan(path: str, *, dead_channel_db: float, inverted_corr: float, block_s: float = 10.0) -> FileScan:
    """Pass 1: stream ``path`` once; return the downmix decision and frame energies.

    Per frame it keeps the channels' cross products (``channels²`` floats),
    so the mono mix's energy can be computed after the downmix is decided.
    """
    frame, block = _block_frames(probe(path).sample_rate, block_s)
    rate, blocks = stream(path, block_frames=block)
    scanner = _Scanner(rate, frame)
    for chunk in blocks:
        scanner.add(chunk)
    return scanner.result(dead_channel_db=dead_channel_db, inverted_corr=inverted_corr)


def cut_points(frame_db: np.ndarray, *, min_piece_s: float, max_piece_s: float) -> list[tuple[float, float]]:
    """Choose piece boundaries (seconds) in the quietest stretches.

    Each cut is placed at the centre of the quietest ``_SMOOTH_S`` window
    between ``min_piece_s`` and ``max_piece_s`` after the previous cut.
    Pieces whose loudest frame is below ``_SILENCE_DBFS`` are left out.

    Returns
    -------
    list of (start_s, end_s)
    """
    level = _level(frame_db)
    cuts = _cut_frames(level, round(min_piece_s / _FRAME_S), round(max_piece_s / _FRAME_S))
    return _audible_bounds(level, cuts)


def _cut_frames(level: np.ndarray, lo_frames: int, hi_frames: int) -> list[int]:
    """Every cut of the whole file, in frames: 0, the cuts, the frame count (``[0]`` for no frames)."""
    n = len(level)
    if n == 0:
        return [0]
    quiet = _quiet(level)
    cuts = [0]
    while n - cuts[-1] > hi_frames:
        cuts.append(_next_cut(quiet, cuts[-1], lo_frames, hi_frames))
    cuts.append(n)
    return cuts


def _audible_bounds(level: np.ndarray, cuts: list[int]) -> list[tuple[float, float]]:
    """``(start_s, end_s)`` of the pieces between ``cuts`` that are not silent."""
    return [(a * _FRAME_S, b * _FRAME_S) for a, b in itertools.pairwise(cuts) if _audible(level[a:b])]


def _level(frame_db: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(frame_db), frame_db, -200.0)


def _quiet(level: np.ndarray) -> np.ndarray:
    """``level`` smoothed over ``_SMOOTH_S`` (value ``i`` reads ``level[i - 3 : i + 3]`` for 6 frames)."""
    smooth = max(1, round(_SMOOTH_S / _FRAME_S))
    return np.convolve(level, np.ones(smooth) / smooth, mode="same")


def _next_cut(quiet: np.ndarray, start: int, lo_frames: int, hi_frames: int, offset: int = 0) -> int:
    """The cut after frame ``start``: the quietest point ``lo_frames``-``hi_frames`` after it
    (``quiet[0]`` is frame ``offset``)."""
    window = quiet[start + lo_frames - offset : start + hi_frames - offset]
    return start + lo_frames + int(np.argmin(window))


def _audible(level: np.ndarray) -> bool:
    return bool(np.max(level) >= _SILENCE_DBFS)


def pieces(
    path: str, fscan: FileScan, bounds: list[tuple[float, float]], *, block_s: float = 10.0
) -> Iterator[tuple[float, float, np.ndarray]]:
    """Pass 2: stream ``path`` again and yield ``(start_s, end_s, mono)`` for each piece.

    ``mono`` is float32 ``(samples,)`` mixed with the pass-1 decision.
    """
    rate = fscan.sample_rate
    weights = None if fscan.report is None else mix_weights(fscan.report)
    _, blocks = stream(path, block_frames=_block_frames(rate, block_s)[1])  # the blocks OnePass mixes
    todo = iter([(round(a * rate), min(round(b * rate), fscan.n_samples)) for a, b in bounds])
    current = next(todo, None)
    buf = np.zeros(0, np.float32)
    buf_start = 0  # source sample index of buf[0]
    for chunk in blocks:
        if current is None:
            break
        mono = _mono(chunk, weights)
        buf = np.concatenate([buf, mono.astype(np.float32, copy=False)])
        while current is not None:
            a, b = current
            if buf_start + buf.shape[0] <= a:  # all before the next piece: drop
                buf_start += buf.shape[0]
                buf = buf[:0]
                break
            if buf_start < a:
                buf = buf[a - buf_start :]
                buf_start = a
            if buf_start + buf.shape[0] < b:
                break  # need more audio
            yield a / rate, b / rate, np.ascontiguousarray(buf[: b - a])
            buf = buf[b - a :]
            buf_start = b
            current = next(todo, None)
    if current is not None and buf.shape[0] and buf_start == current[0]:
        yield current[0] / rate, (buf_start + buf.shape[0]) / rate, np.ascontiguousarray(buf)  # file ended early


#: Yielded by :class:`OnePass` when the pieces handed out so far are void (see there).
RESTART = "restart"


class OnePass:
    """Stream a long file once, handing out each piece as soon as it is cut.

    The downmix decision and the cut points are properties of the whole
    file (:func:`scan`, :func:`cut_points`), but a cut depends only on the
    frames up to ``max_piece_s`` (plus 0.3 s) after the previous cut, and the
    decision (which channels are dead or inverted) rarely changes after the
    first minutes.  So each piece is cut and mixed under the decision so far
    while the file is read, and pieces are processed while the rest is still
    being decoded.  At the end the final decision and cut points are computed
    exactly as :func:`scan` and :func:`cut_points` do and compared with what
    was handed out: when they agree (the usual case) the last pieces follow;
    otherwise :data:`RESTART` is yielded (the pieces so far are void) and the
    file is streamed again with the final decision (:func:`pieces`).  Either
    way the pieces equal those of the two-pass path.  Memory: the blocks from
    the current cut on (at most ``max_piece_s`` + ``block_s``), raw until the
    first piece is handed out, then mono.

    Iterating yields ``(start_s, end_s, mono, report)`` (``mono`` float32
    ``(samples,)``; ``report`` the downmix decision it was mixed with, None
    for a mono file) or :data:`RESTART`.  After the iteration :attr:`fscan`
    and :attr:`bounds` hold the final scan and pieces.
    """

    def __init__(self, path: str, *, dead_channel_db: float, inverted_corr: float, config: LongForm) -> None:
        self.path, self.config = path, config
        self.decide = {"dead_channel_db": dead_channel_db, "inverted_corr": inverted_corr}
        self.fscan: FileScan | None = None
        self.bounds: list[tuple[float, float]] | None = None
        self.restarted = False
        self.sample_rate = 0

    def __iter__(self) -> Iterator[tuple[float, float, np.ndarray, ChannelReport | None] | str]:
        config = self.config
        frame, block = _block_frames(probe(self.path).sample_rate, config.block_s)
        rate, blocks = stream(self.path, block_frames=block)
        self.sample_rate = rate
        scanner = _Scanner(rate, frame)
        smooth = max(1, round(_SMOOTH_S / _FRAME_S))
        lo, hi = round(config.min_piece_s / _FRAME_S), round(config.max_piece_s / _FRAME_S)
        held: list[tuple[int, np.ndarray]] = []  # (first sample, raw block), from the last cut on
        cuts, audible = [0], []  # cut frames so far; whether each piece between them was handed out
        handed: np.ndarray | None = None  # the mix weights of the pieces handed out
        doomed = False  # the decision changed after pieces were handed out: restart at the end
        for chunk in blocks:
            first = scanner.n
            scanner.add(chunk)
            if doomed:
                continue
            report, weights = scanner.decision(**self.decide)
            if handed is not None and np.array_equal(weights, handed):
                chunk = _mix([(first, chunk)], first, first + chunk.shape[1], report)
            held.append((first, chunk))
            if handed is not None and not np.array_equal(weights, handed):
                doomed, held = True, []
                continue
            while scanner.frames >= cuts[-1] + hi + smooth:
                a = cuts[-1]
                seg0 = max(0, a + min(0, lo - smooth))
                level = _level(scanner.frame_db(weights, seg0, a + hi + smooth))
                b = _next_cut(_quiet(level), a, lo, hi, seg0)
                i0, i1 = round(a * _FRAME_S * rate), round(b * _FRAME_S * rate)
                if scanner.n < i1:
                    break  # not decoded that far yet (frames and seconds differ at odd rates)
                cuts.append(b)
                audible.append(_audible(level[a - seg0 : b - seg0]))
                if audible[-1]:
                    handed = weights
                    yield i0 / rate, i1 / rate, _mix(held, i0, i1, report), report
                held = [(s, x) for s, x in held if s + x.shape[-1] > i1]
                if handed is not None:  # the decision is now fixed (a change restarts): hold blocks mixed
                    held = [(s, _mix([(s, x)], s, s + x.shape[-1], report)) for s, x in held]
        fscan = scanner.result(**self.decide)
        self.fscan = fscan
        level = _level(fscan.frame_db)
        final = _cut_frames(level, lo, hi)
        spans = list(itertools.pairwise(final))
        self.bounds = _audible_bounds(level, final)
        weights = np.ones(1) if fscan.report is None else mix_weights(fscan.report).astype(np.float64)
        done = len(audible)
        agreed = (
            not doomed
            and final[: len(cuts)] == cuts
            and [_audible(level[a:b]) for a, b in spans[:done]] == audible
            and (handed is None or np.array_equal(handed, weights))
        )
        if not agreed:
            self.restarted = True
            held = []
            yield RESTART
            for start_s, end_s, mono in pieces(self.path, fscan, self.bounds, block_s=config.block_s):
                yield start_s, end_s, mono, fscan.report
            return
        for a, b in spans[done:]:
            if _audible(level[a:b]):
                i0, i1 = round(a * _FRAME_S * rate), min(round(b * _FRAME_S * rate), fscan.n_samples)
                yield i0 / rate, i1 / rate, _mix(held, i0, i1, fscan.report), fscan.report


def _mono(chunk: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """A decoded block mixed to mono with the downmix ``weights`` (None: a mono file); 1-D: mixed already."""
    if chunk.ndim == 1:
        return chunk
    return chunk[0] if weights is None else np.einsum("c,cn->n", weights, chunk)


def _mix(held: list[tuple[int, np.ndarray]], i0: int, i1: int, report: ChannelReport | None) -> np.ndarray:
    """Samples ``[i0, i1)`` of the mono mix of the blocks ``held`` (each raw one mixed whole, as :func:`pieces`
    does; 1-D ones are mixed already).  The blocks that end by ``i1`` are emptied in ``held`` as they are used."""
    weights = None if report is None else mix_weights(report)
    out = np.empty(max(0, i1 - i0), np.float32)
    filled = 0
    for j in range(len(held)):
        first, chunk = held[j]
        if first + chunk.shape[-1] <= i1:
            # Not needed after this piece: let it go while the piece is made (an empty array of its own: an
            # empty view would hold the whole block until the piece has been handed on).
            held[j] = (first, np.empty((*chunk.shape[:-1], 0), chunk.dtype))
        if first + chunk.shape[-1] <= i0 or first >= i1:
            continue
        mono = _mono(chunk, weights)
        part = mono[max(0, i0 - first) : i1 - first]
        out[filled : filled + part.shape[0]] = part
        filled += part.shape[0]
    return out[:filled]


def piece_clips(base: Clip, onepass: OnePass) -> Iterator[Clip | str]:
    """Clips for the pieces of a long file as :class:`OnePass` hands them out, each mono, with its span in
    the source and the piece as its :attr:`~prep.clip.Clip.source_audio`; or :data:`RESTART`.

    The metrics only the whole file knows (``piece_count``, the channel levels and correlations, the
    input's duration) are provisional here: :func:`finish_clips` sets them once the file is read.
    """
    k = 0
    for item in onepass:
        if isinstance(item, str):
            k = 0
            yield item
            continue
        start_s, end_s, mono, report = item
        extra: dict = {"long_file": True, "piece_count": 0}
        extra.update(downmix_metrics(report) if report is not None else {"downmix_mode": "mono"})
        clip = dataclasses.replace(
            base,
            id=f"{base.id}-p{k:03d}",
            audio=mono,
            span_s=(start_s, end_s),
            transcript=None,
            source_audio=SourceAudio(mono, onepass.sample_rate, start_s),
        ).with_metrics(piece_index=k, **extra)
        if report is not None and (notes := downmix_findings(report)):
            clip = clip.with_findings(*notes)
        if base.transcript:
            clip = clip.with_findings(finding("transcript.dropped"))
        k += 1
        del item, mono  # hold no piece while the next is cut
        yield clip
        del clip


def finish_clips(clips: list[Clip], base: Clip, onepass: OnePass) -> tuple[list[Clip], Clip]:
    """A long file's clips and base clip with the metrics only the whole file knows (see :func:`piece_clips`).

    Returns
    -------
    clips : list of Clip
    base : Clip
        With the input's duration as decoded.
    """
    fscan, bounds = onepass.fscan, onepass.bounds
    assert fscan is not None and bounds is not None, "finish_clips before the file was read"
    final: dict = {"piece_count": len(bounds)}
    if fscan.report is not None:
        final.update(downmix_metrics(fscan.report))
    if base.input is not None:
        base = dataclasses.replace(base, input=dataclasses.replace(base.input, duration_s=fscan.n_samples /
                                                                    fscan.sample_rate))
    out = []
    for clip in clips:
        if clip.metrics.get("long_file"):
            metrics = {key: final.get(key, value) for key, value in clip.metrics.items()}
            clip = dataclasses.replace(clip, metrics=metrics, input=base.input)
        out.append(clip)
    return out, base
