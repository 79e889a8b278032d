"""Long recordings in bounded memory.

A file longer than a profile's ``long_file_s`` is never decoded whole.
Pass 1 streams it once, accumulating the channel statistics the downmix
needs and the energy of the would-be mono mix in 50 ms frames.  From those
frames it chooses cut points in the quietest stretches, so that pieces are
``min_piece_s``–``max_piece_s`` long and no cut lands in speech.  Pass 2
streams the file again, mixes each block to mono with the pass-1 decision
and hands every piece to the normal in-memory pipeline as its own clip
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

__all__ = ["LongForm", "FileScan", "scan", "cut_points", "pieces"]

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


def scan(path: str, *, dead_channel_db: float, inverted_corr: float, block_s: float = 10.0) -> FileScan:
    """Pass 1: stream ``path`` once; return the downmix decision and frame energies.

    Per frame it keeps the channels' cross products (``channels²`` floats),
    so the mono mix's energy can be computed after the downmix is decided.
    """
    rate = probe(path).sample_rate
    frame = max(1, round(_FRAME_S * rate))
    block = frame * max(1, round(block_s / _FRAME_S))
    rate, blocks = stream(path, block_frames=block)
    grams: list[np.ndarray] = []
    sums: np.ndarray | None = None
    n = 0
    carry: np.ndarray | None = None
    for chunk in blocks:
        x = chunk.astype(np.float64)
        sums = x.sum(axis=1) if sums is None else sums + x.sum(axis=1)
        n += x.shape[1]
        if carry is not None and carry.shape[1]:
            x = np.concatenate([carry, x], axis=1)
        k = x.shape[1] // frame
        framed = x[:, : k * frame].reshape(x.shape[0], k, frame).transpose(1, 0, 2)  # (k, channels, frame)
        grams.append(np.einsum("kif,kjf->kij", framed, framed))  # no BLAS: thread-count independent
        carry = x[:, k * frame :]
    if sums is None:
        return FileScan(rate, 0, None, np.zeros(0))
    if carry is not None and carry.shape[1]:
        grams.append(np.einsum("if,jf->ij", carry, carry)[None])
    per_frame = np.concatenate(grams, axis=0)  # (frames, channels, channels)
    total_gram = per_frame.sum(axis=0)
    channels = total_gram.shape[0]
    if channels == 1:
        report = None
        weights = np.ones(1)
    else:
        report = channel_report(total_gram, sums, n, dead_channel_db=dead_channel_db, inverted_corr=inverted_corr)
        weights = mix_weights(report).astype(np.float64)
    energy = np.einsum("i,kij,j->k", weights, per_frame, weights) / frame
    with np.errstate(divide="ignore"):
        frame_db = 10.0 * np.log10(np.maximum(energy, 0.0))
    return FileScan(rate, n, report, frame_db)


def cut_points(frame_db: np.ndarray, *, min_piece_s: float, max_piece_s: float) -> list[tuple[float, float]]:
    """Choose piece boundaries (seconds) in the quietest stretches.

    Each cut is placed at the centre of the quietest ``_SMOOTH_S`` window
    between ``min_piece_s`` and ``max_piece_s`` after the previous cut.
    Pieces whose loudest frame is below ``_SILENCE_DBFS`` are left out.

    Returns
    -------
    list of (start_s, end_s)
    """
    n = len(frame_db)
    if n == 0:
        return []
    smooth = max(1, round(_SMOOTH_S / _FRAME_S))
    level = np.where(np.isfinite(frame_db), frame_db, -200.0)
    kernel = np.ones(smooth) / smooth
    quiet = np.convolve(level, kernel, mode="same")
    lo_frames, hi_frames = round(min_piece_s / _FRAME_S), round(max_piece_s / _FRAME_S)
    bounds = [0]
    while n - bounds[-1] > hi_frames:
        start = bounds[-1]
        window = quiet[start + lo_frames : start + hi_frames]
        bounds.append(start + lo_frames + int(np.argmin(window)))
    bounds.append(n)
    out = []
    for a, b in itertools.pairwise(bounds):
        if np.max(level[a:b]) >= _SILENCE_DBFS:
            out.append((a * _FRAME_S, b * _FRAME_S))
    return out


def pieces(
    path: str, fscan: FileScan, bounds: list[tuple[float, float]], *, block_s: float = 10.0
) -> Iterator[tuple[float, float, np.ndarray]]:
    """Pass 2: stream ``path`` again and yield ``(start_s, end_s, mono)`` for each piece.

    ``mono`` is float32 ``(samples,)`` mixed with the pass-1 decision.
    """
    rate = fscan.sample_rate
    weights = None if fscan.report is None else mix_weights(fscan.report)
    _, blocks = stream(path, block_frames=max(1, round(block_s * rate)))
    todo = iter([(round(a * rate), min(round(b * rate), fscan.n_samples)) for a, b in bounds])
    current = next(todo, None)
    buf = np.zeros(0, np.float32)
    buf_start = 0  # source sample index of buf[0]
    for chunk in blocks:
        if current is None:
            break
        mono = chunk[0] if weights is None else np.einsum("c,cn->n", weights, chunk)
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


def piece_clips(base: Clip, path: str, fscan: FileScan, config: LongForm) -> Iterator[Clip]:
    """Clips for the pieces of a long file, each mono, with its span in the source and
    the piece as its :attr:`~prep.clip.Clip.source_audio`."""
    bounds = cut_points(fscan.frame_db, min_piece_s=config.min_piece_s, max_piece_s=config.max_piece_s)
    extra: dict = {"long_file": True, "piece_count": len(bounds)}
    if fscan.report is not None:
        extra.update(downmix_metrics(fscan.report))
    else:
        extra["downmix_mode"] = "mono"
    notes = downmix_findings(fscan.report) if fscan.report is not None else []
    for k, (start_s, end_s, mono) in enumerate(pieces(path, fscan, bounds, block_s=config.block_s)):
        clip = dataclasses.replace(
            base,
            id=f"{base.id}-p{k:03d}",
            audio=mono,
            span_s=(start_s, end_s),
            transcript=None,
            source_audio=SourceAudio(mono, fscan.sample_rate, start_s),
        ).with_metrics(piece_index=k, **extra)
        if notes:
            clip = clip.with_findings(*notes)
        if base.transcript:
            clip = clip.with_findings(finding("transcript.dropped"))
        yield clip
