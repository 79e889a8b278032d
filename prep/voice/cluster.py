"""Which clips are the same voice: agglomerative clustering of speaker embeddings.

Average linkage on cosine distance (scipy), cut at a calibrated distance
(:data:`CLUSTER_DISTANCE`) rather than at a fixed number of voices.  Voices are named
``<name>-1``, ``<name>-2``... in decreasing order of their amount of speech, so ``-1`` is the
main voice of a folder or a recording.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

__all__ = ["CLUSTER_DISTANCE", "Voices", "adjusted_rand", "cluster_voices", "purity"]

#: Average-linkage cosine distance at which clusters stop merging (calibrated on the corpus,
#: see ``benchmarks/speakers.py``).
CLUSTER_DISTANCE = 0.35


@dataclass(frozen=True)
class Voices:
    """Voices found among embeddings.

    Attributes
    ----------
    labels : tuple of str
        Per embedding, its voice (``"<name>-1"`` has the most speech), or ``""`` for an
        embedding that was not clustered (NaN).
    index : np.ndarray, int, shape (n,)
        Per embedding, the voice number from 0 (= ``-1``; -1 for not clustered).
    speech_s : tuple of float
        Seconds of speech of each voice, in voice order (decreasing).
    names : tuple of str
        The voice names in order.
    """

    labels: tuple[str, ...]
    index: np.ndarray
    speech_s: tuple[float, ...]
    names: tuple[str, ...]

    @property
    def count(self) -> int:
        """Number of voices."""
        return len(self.names)


def cluster_voices(embeddings: np.ndarray, *, speech_s: Sequence[float] | np.ndarray | None = None,
                   name: str = "voice", distance: float = CLUSTER_DISTANCE) -> Voices:
    """Group embeddings into voices, without knowing how many there are.

    Parameters
    ----------
    embeddings : np.ndarray, shape (n, dim)
        One per clip or window; rows with NaN are left unclustered.
    speech_s : array-like, shape (n,), optional
        Seconds of speech behind each embedding (orders the voices); 1 each by default.
    name : str
        Label prefix (the folder or recording name).
    distance : float
        Average-linkage cosine distance at which merging stops (0-2).

    Returns
    -------
    Voices
    """
    if not 0 < distance < 2:
        raise ConfigError(f"distance must be in (0, 2), got {distance!r}")
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2:
        raise ConfigError(f"embeddings must be 2-D (n, dim), got shape {e.shape}")
    n = e.shape[0]
    w = np.ones(n) if speech_s is None else np.asarray(speech_s, dtype=np.float64)
    ok = np.isfinite(e).all(axis=1)
    raw = np.full(n, -1)
    if ok.sum() == 1:
        raw[ok] = 0
    elif ok.sum() > 1:
        from scipy.cluster.hierarchy import fcluster, linkage  # ~0.3 s import: only when clustering

        x = e[ok] / (np.linalg.norm(e[ok], axis=1, keepdims=True) + 1e-12)
        z = linkage(x, method="average", metric="cosine")
        raw[ok] = fcluster(z, t=distance, criterion="distance") - 1
    groups = [g for g in np.unique(raw) if g >= 0]
    amount = {g: float(w[raw == g].sum()) for g in groups}
    order = sorted(groups, key=lambda g: (-amount[g], int(np.flatnonzero(raw == g)[0])))
    rank = {g: i for i, g in enumerate(order)}
    index = np.array([rank[g] if g >= 0 else -1 for g in raw], dtype=int)
    names = tuple(f"{name}-{i + 1}" for i in range(len(order)))
    labels = tuple(names[i] if i >= 0 else "" for i in index)
    return Voices(labels, index, tuple(amount[g] for g in order), names)


def _contingency(truth: Sequence, pred: Sequence) -> np.ndarray:
    _, t = np.unique(np.asarray(truth, dtype=str), return_inverse=True)
    _, p = np.unique(np.asarray(pred, dtype=str), return_inverse=True)
    table = np.zeros((t.max() + 1, p.max() + 1))
    np.add.at(table, (t, p), 1)
    return table


def purity(truth: Sequence, pred: Sequence) -> float:
    """Share of items whose predicted cluster's majority true label is their own."""
    table = _contingency(truth, pred)
    return float(table.max(axis=0).sum() / table.sum())


def adjusted_rand(truth: Sequence, pred: Sequence) -> float:
    """Adjusted Rand index of two labelings (1 = identical partitions, ~0 = chance)."""
    table = _contingency(truth, pred)

    def comb2(x: np.ndarray) -> float:
        return float((x * (x - 1) / 2).sum())

    n = table.sum()
    index = comb2(table)
    a, b = comb2(table.sum(axis=1)), comb2(table.sum(axis=0))
    expected = a * b / (n * (n - 1) / 2) if n > 1 else 0.0
    maximum = (a + b) / 2
    if maximum == expected:
        return 1.0
    return float((index - expected) / (maximum - expected))
