"""Is every clip the same voice?  Robust centre of a speaker's embeddings and each clip's similarity to it.

A folder meant to hold one voice can hide a clip of someone else (an interviewer, a second
take by another reader).  :func:`robust_centre` is the voice's centre: an element-wise median
of the clips' unit embeddings, refined by a trimmed mean of the clips nearest to it, so a few
planted clips do not pull it.  :func:`check_voice` scores each clip by its cosine similarity to
the centre and flags those below :data:`WARN_SIMILARITY` (``"warn"``) or
:data:`REJECT_SIMILARITY` (``"reject"``).

The thresholds were calibrated on the real speakers of the shared test corpus
(``benchmarks/speakers.py``, section *speakers* of ``benchmarks/RESULTS.md``): 400 folders
of five 3.5 s clips of one of 11 speakers plus one clip of another speaker.  Genuine clips
scored >= 0.853 in 99 % of cases, planted clips <= 0.606 in 99 %; both thresholds sit in that
gap (planted flagged 100 %, genuine 0 %).  ``reject`` (0.70) keeps a margin to the planted
side, ``warn`` (0.80) one to the genuine side, for real folders noisier than the corpus.
Shorter clips (< 2 s of speech) score lower against their own voice: their flags are weaker
evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

__all__ = ["REJECT_SIMILARITY", "WARN_SIMILARITY", "VoiceCheck", "check_voice", "cosine", "robust_centre"]

#: Cosine similarity to the voice centre below which a clip is flagged ``"warn"``.
WARN_SIMILARITY = 0.80
#: Cosine similarity to the voice centre below which a clip is flagged ``"reject"``.
REJECT_SIMILARITY = 0.70


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of the rows of ``a`` with the vector (or rows) ``b``."""
    return _unit_rows(a) @ _unit_rows(b).T


def robust_centre(embeddings: np.ndarray, *, weights: np.ndarray | None = None, keep: float = 0.8) -> np.ndarray:
    """Centre of one voice's embeddings that a minority of other voices does not move.

    The element-wise (weighted) median of the unit embeddings gives a first centre; the
    ``keep`` share of embeddings most similar to it are then averaged (weighted), and the result
    normalised.

    Parameters
    ----------
    embeddings : np.ndarray, shape (n, dim)
        One row per clip (rows with NaN are ignored).
    weights : np.ndarray, shape (n,), optional
        E.g. seconds of speech per clip; equal by default.
    keep : float
        Share (0-1] of the embeddings kept for the trimmed mean.

    Returns
    -------
    np.ndarray, float32, shape (dim,)
        Unit vector.

    Raises
    ------
    ConfigError
        No finite embedding, or ``keep`` outside (0, 1].
    """
    if not 0 < keep <= 1:
        raise ConfigError(f"keep must be in (0, 1], got {keep!r}")
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2:
        raise ConfigError(f"embeddings must be 2-D (n, dim), got shape {e.shape}")
    w = np.ones(e.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    ok = np.isfinite(e).all(axis=1) & np.isfinite(w) & (w > 0)
    if not ok.any():
        raise ConfigError("robust_centre needs at least one finite embedding")
    e, w = _unit_rows(e[ok]), w[ok]
    if e.shape[0] == 1:
        return e[0].astype(np.float32)
    order = np.argsort(e, axis=0)
    cw = np.cumsum(w[order], axis=0)
    idx = np.argmax(cw >= cw[-1:] / 2, axis=0)
    median = e[order[idx, np.arange(e.shape[1])], np.arange(e.shape[1])]
    sim = e @ _unit_rows(median)
    n_keep = max(1, int(np.ceil(keep * e.shape[0])))
    top = np.argsort(-sim)[:n_keep]
    centre = (e[top] * w[top, None]).sum(axis=0)
    return _unit_rows(centre).astype(np.float32)


@dataclass(frozen=True)
class VoiceCheck:
    """Similarity of each clip to its voice's centre.

    Attributes
    ----------
    centre : np.ndarray, float32, shape (dim,)
    similarity : np.ndarray, float64, shape (n,)
        Cosine similarity of each clip to ``centre`` (NaN for a clip without an embedding).
    flags : tuple of str
        Per clip: ``"ok"``, ``"warn"``, ``"reject"``, or ``"no speech"``.
    warn, reject : float
        The thresholds used.
    """

    centre: np.ndarray
    similarity: np.ndarray
    flags: tuple[str, ...]
    warn: float
    reject: float

    @property
    def flagged(self) -> np.ndarray:
        """Indices of clips flagged warn or reject."""
        return np.flatnonzero([f in ("warn", "reject") for f in self.flags])

    @property
    def rejected(self) -> np.ndarray:
        """Indices of clips flagged reject."""
        return np.flatnonzero([f == "reject" for f in self.flags])


def check_voice(embeddings: np.ndarray, *, weights: np.ndarray | None = None, warn: float = WARN_SIMILARITY,
                reject: float = REJECT_SIMILARITY, centre: np.ndarray | None = None) -> VoiceCheck:
    """Score every clip of one voice against the voice's robust centre.

    Parameters
    ----------
    embeddings : np.ndarray, shape (n, dim)
        Clip embeddings (rows of NaN for clips without speech).
    weights : np.ndarray, shape (n,), optional
        Seconds of speech per clip, for the centre.
    warn, reject : float
        Cosine similarity thresholds (``reject <= warn``).
    centre : np.ndarray, shape (dim,), optional
        A known reference of the voice (e.g. from chosen reference clips) instead of the
        robust centre of these clips.

    Returns
    -------
    VoiceCheck
    """
    if reject > warn:
        raise ConfigError(f"reject ({reject}) must not exceed warn ({warn})")
    e = np.asarray(embeddings, dtype=np.float64)
    c = robust_centre(e, weights=weights) if centre is None else _unit_rows(np.asarray(centre)).astype(np.float32)
    finite = np.isfinite(e).all(axis=1)
    sim = np.full(e.shape[0], np.nan)
    if finite.any():
        sim[finite] = cosine(e[finite], c.astype(np.float64))
    flags = tuple(
        "no speech" if not np.isfinite(s) else "reject" if s < reject else "warn" if s < warn else "ok" for s in sim
    )
    return VoiceCheck(c, sim, flags, float(warn), float(reject))
