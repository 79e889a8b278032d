"""Test helper: findings that give a clip a wanted verdict."""

from __future__ import annotations

from prep.findings import Finding, finding


def findings_for(verdict: str) -> tuple[Finding, ...]:
    """One real finding whose severity makes ``verdict`` (none for ``approved``)."""
    if verdict == "approved":
        return ()
    if verdict == "warning":
        return (finding("duration.short", metric="duration_s", value=8.0, threshold=10.0),)
    if verdict == "rejected":
        return (finding("snr.too_low", metric="snr_db", value=4.0, threshold=10.0),)
    if verdict == "error":
        return (finding("decode.error", detail="in/x.wav: cannot decode"),)
    raise ValueError(f"no such verdict {verdict!r}")
