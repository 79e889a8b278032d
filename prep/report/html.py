"""``OUT/report.html``: one page built from the report dict.

No network: CSS and the few lines of table-sorting JavaScript are inline,
the per-clip figures are JPEGs embedded as base64 (drawn by the workers and
kept in ``OUT/plots``; drawn here only when one is missing) and the
distributions are a hand-written inline SVG (no matplotlib for a report whose
figures are all stored).
The page shows a per-speaker summary (totals, selection, consistency), the
clips per finding code, the score / loudness / SNR distributions, a table of
clips (sortable; the secondary columns fold into a details cell per row so the
table fits 1400 px), and per clip its findings, metrics and a figure: waveform
over spectrogram, with time (s) and frequency (kHz) axes and the spectrogram's
top at the clip's measured bandwidth, before (the source over the clip's span)
and after (the written clip).
Each clip has two players under the figure's captions: the source over the
clip's span (the lossless FLAC preview the worker wrote next to the figure,
or a run made before's Ogg Opus one, :mod:`prep.report.audio`) and the
written clip.  By default they link to those files relative to the page;
``embed_audio`` encodes them to Opus into the page as data URIs, so
``report.html`` alone is the whole report.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from ..errors import ConfigError, PrepError
from ..findings import CODES
from ..io import write_bytes_atomic, write_text_atomic
from ..metrics import finite, pick, source_metrics
from ..run.run_folder import CLIPS_DIR, PLOTS_DIR, REPORT_HTML, RunFolder
from .colormap import magma_lut
from .summary import PARTIAL_NOTE, entry_findings, finding_counts

__all__ = ["EMBED_WARN_BYTES", "clip_figure_jpeg", "display_top_hz", "render_html", "write_report_html"]

log = logging.getLogger(__name__)

#: A page with embedded audio larger than this gets a warning (browsers get slow on very large pages).
EMBED_WARN_BYTES = 50_000_000

_COLORS = {"approved": "#2e7d32", "warning": "#b26a00", "rejected": "#c62828", "error": "#6a1b9a"}
_SEVERITY_VERDICT = {"info": "approved", "warning": "warning", "reject": "rejected", "error": "error"}  # colours
_MAX_FRAMES = 500  # spectrogram columns per panel
_WAVE_POINTS = 1200  # min/max pairs per waveform panel

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header .meta{opacity:.8;font-size:13px}
main{padding:18px 28px;max-width:1500px}
h2{margin:28px 0 10px;font-size:18px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600}
.cards{display:flex;flex-wrap:wrap;gap:14px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:14px 18px;min-width:320px;flex:1}
.card h3{margin:0 0 8px;font-size:16px}
.kv{display:grid;grid-template-columns:auto auto;gap:2px 14px;font-size:13px}
.kv > span:nth-child(odd){color:#5b6475}
ul.notes{margin:6px 0 0 18px;padding:0;font-size:13px}
p.partial{background:#fff3cd;border:1px solid #e0b400;padding:8px 12px;border-radius:4px}
table.clips{border-collapse:collapse;background:#fff;width:100%;font-size:13px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
table.clips th{position:sticky;top:0;background:#e8ebf0;cursor:pointer;user-select:none;padding:6px 8px;text-align:left;
white-space:nowrap}
table.clips th:after{content:" \\2195";opacity:.35}
table.clips td{padding:5px 8px;border-top:1px solid #eceef2;vertical-align:top}
table.clips td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.clips th[data-nosort]{cursor:default}
table.clips th[data-nosort]:after{content:""}
table.clips td.id{overflow-wrap:anywhere;min-width:6em}
table.clips details summary{cursor:pointer;color:#5b6475;white-space:nowrap}
table.clips details .kv{margin-top:4px;white-space:nowrap}
table.clips tr:hover td{background:#f3f6fb}
.reasons{color:#5b6475;font-size:12px;overflow-wrap:anywhere}
.sev{display:inline-block;min-width:52px;padding:0 6px;border-radius:8px;color:#fff;font-size:11px;text-align:center}
code.fc{font-size:12px;background:#eef0f4;padding:0 4px;border-radius:4px}
table.codes{border-collapse:collapse;background:#fff;font-size:13px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
table.codes td,table.codes th{padding:4px 10px;border-top:1px solid #eceef2;text-align:left}
table.codes td.num{text-align:right}
.wrap{overflow-x:auto}
section.clip{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:12px 18px;margin:14px 0}
section.clip h3{margin:0 0 6px;font-size:15px}
section.clip img{max-width:100%;height:auto;display:block;margin:8px 0}
.muted{color:#5b6475;font-size:12px}
details table{font-size:12px;border-collapse:collapse}
details td{padding:1px 10px 1px 0}
svg.dist{display:block;height:auto;background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
.fig{margin:8px 0}
section.clip .fig img{margin:0;width:100%}
.caps{display:grid;grid-template-columns:1fr 1fr;font-size:12px;color:#5b6475}
.caps > div{padding:0 2.3% 0 6.5%}
.caps audio{display:block;width:100%;height:34px;margin-top:2px}
"""

_JS = """
document.querySelectorAll('table.clips th').forEach(function(th, col){
  if (th.hasAttribute('data-nosort')) return;
  th.addEventListener('click', function(){
    var table = th.closest('table'), body = table.tBodies[0];
    var asc = th.dataset.dir !== 'asc';
    table.querySelectorAll('th').forEach(function(h){ delete h.dataset.dir; });
    th.dataset.dir = asc ? 'asc' : 'desc';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function(a, b){
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  });
});
"""


#: What an empty field shows.
_EMPTY = "—"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, spec: str = ".1f", unit: str = "") -> str:
    v = finite(value)
    return _EMPTY if v is None else f"{v:{spec}}{unit}"


def _badge(verdict: str) -> str:
    color = _COLORS.get(verdict, "#555")
    return f'<span class="badge" style="background:{color}">{_e(verdict)}</span>'


def _severity(severity: str) -> str:
    color = _COLORS.get(_SEVERITY_VERDICT.get(severity, ""), "#555")
    return f'<span class="sev" style="background:{color}">{_e(severity)}</span>'


def _code_table(clips: Sequence[Mapping[str, Any]]) -> str | None:
    """Clips per finding code (worst severity first), with each code's meaning."""
    counts = finding_counts(clips)
    if not counts:
        return None
    rows = "".join(
        f"<tr><td><code class='fc'>{_e(code)}</code></td><td>{_severity(item['severity'])}</td>"
        f"<td class='num'>{item['clips']}</td><td>{_e(CODES[code].meaning if code in CODES else '')}</td></tr>"
        for code, item in counts.items()
    )
    return (
        "<table class='codes' id='codes'><thead><tr><th>code</th><th>severity</th><th>clips</th><th>meaning</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


# -- audio for the plots ---------------------------------------------------------------
class _SourceCache:
    """The last decoded source file (slices of one long file come in a row)."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.audio: tuple[np.ndarray, int] | None = None

    def get(self, path: str) -> tuple[np.ndarray, int] | None:
        from ..errors import PrepError
        from ..run.decode import load

        if path != self.path:
            self.path = path
            try:
                audio, rate = load(path)
                self.audio = (audio.mean(axis=0, dtype=np.float32), rate)
            except PrepError:
                self.audio = None
        return self.audio


#: Sources longer than this are read span by span, never whole (bounded memory).
_WHOLE_SOURCE_MAX_S = 300.0


def _before(entry: Mapping[str, Any], cache: _SourceCache) -> tuple[np.ndarray, int] | None:
    source = str(entry.get("source", ""))
    span = entry.get("span_s")
    if span and (entry.get("input") or {}).get("duration_s", 0.0) > _WHOLE_SOURCE_MAX_S:
        from ..errors import PrepError
        from ..run.decode import load_span

        try:
            audio, rate = load_span(source, float(span[0]), float(span[1]))
        except PrepError:
            return None
        return (audio.mean(axis=0, dtype=np.float32), rate) if audio.shape[1] else None
    loaded = cache.get(source)
    if loaded is None:
        return None
    audio, rate = loaded
    span = span or [0.0, audio.size / rate]
    i0 = max(0, int(float(span[0]) * rate))
    i1 = min(audio.size, math.ceil(float(span[1]) * rate))
    return (audio[i0:i1], rate) if i1 > i0 else None


def _after(entry: Mapping[str, Any], out_dir: Path) -> tuple[np.ndarray, int] | None:
    import soundfile as sf

    output = entry.get("output")
    if not output:
        return None
    try:
        data, rate = sf.read(str(out_dir / output), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError):
        return None
    return np.ascontiguousarray(data.mean(axis=1)), int(rate)


#: One panel: a waveform over a spectrogram (plot area _PANEL_W wide), a frequency axis on the left
#: (kHz) and a time axis below (s).  The figure is two panels side by side, before | after.
_PANEL_W, _WAVE_H, _SPEC_H = 560, 64, 128
_AXIS_L, _AXIS_B, _PAD_R, _WAVE_GAP = 40, 17, 14, 4
_FIG_PANEL_W = _AXIS_L + _PANEL_W + _PAD_R
_AXIS_COLOR = (91, 100, 117)


def display_top_hz(bandwidth_hz: float | None, *, sample_rate: int) -> float:
    """Top of a spectrogram display: the content's bandwidth rounded up, at most the Nyquist frequency.

    A recording band-limited to 5 kHz is shown up to 6 kHz, not to 24 kHz
    (which would leave most of the picture black).

    Parameters
    ----------
    bandwidth_hz : float or None
        The measured bandwidth (``source_bandwidth_hz``); ``None``, zero or
        non-finite shows the whole band.
    sample_rate : int
        Rate of the audio shown, Hz.

    Returns
    -------
    float
        Hz: ``1.1 * bandwidth_hz`` rounded up to a whole kHz (2 kHz above
        10 kHz), capped at ``sample_rate / 2``.
    """
    nyquist = sample_rate / 2
    bw = finite(bandwidth_hz)
    if bw is None or bw <= 0:
        return nyquist
    step = 1000.0 if bw < 10000 else 2000.0
    return min(nyquist, math.ceil(1.1 * bw / step - 1e-9) * step)


def _wave_image(audio: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """Min/max waveform drawn into an RGB array, shape (_WAVE_H, _PANEL_W, 3), full scale = full height."""
    img = np.full((_WAVE_H, _PANEL_W, 3), 255, np.uint8)
    img[_WAVE_H // 2, :] = 220
    if audio.size == 0:
        return img
    edges = np.linspace(0, audio.size, _PANEL_W + 1).astype(int)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    edges = np.minimum(edges, audio.size)
    ok = edges[1:] > edges[:-1]
    starts = edges[:-1][ok]
    lo = np.full(_PANEL_W, 0.0, np.float32)
    hi = np.full(_PANEL_W, 0.0, np.float32)
    lo[ok] = np.minimum.reduceat(audio, starts)
    hi[ok] = np.maximum.reduceat(audio, starts)
    half = (_WAVE_H - 1) / 2
    top = np.clip(np.round(half - np.clip(hi, -1, 1) * half), 0, _WAVE_H - 1).astype(int)
    bottom = np.clip(np.round(half - np.clip(lo, -1, 1) * half), 0, _WAVE_H - 1).astype(int)
    rows = np.arange(_WAVE_H)[:, None]
    inside = (rows >= top[None, :]) & (rows <= bottom[None, :])
    img[inside] = color
    return img


def _spec_image(audio: np.ndarray, rate: int, top_hz: float) -> np.ndarray:
    """Spectrogram (0 Hz at the bottom, ``top_hz`` at the top, 90 dB range) as RGB, shape (_SPEC_H, _PANEL_W, 3)."""
    from ..dsp.spectral import spectrogram

    nper = 512 if rate <= 24000 else 1024
    if audio.size < nper:
        audio = np.pad(audio, (0, nper - audio.size))
    hop = min(max(nper // 4, audio.size // _MAX_FRAMES), nper)  # frames never overlap less than back to back
    n_frames = (audio.size - nper) // hop + 1
    # only the frames a pixel column shows (a long clip has more frames than columns)
    shown, cols = np.unique(np.linspace(0, n_frames - 1, _PANEL_W).round().astype(np.intp), return_inverse=True)
    sxx = spectrogram(audio, sample_rate=rate, nper=nper, hop=hop, select=shown)
    top = 10 * np.log10(float(np.max(sxx)) + 1e-14)
    top_bin = min(sxx.shape[0] - 1, round(top_hz * nper / rate))
    rows = np.linspace(top_bin, 0, _SPEC_H).round().astype(int)
    level = (10 * np.log10(sxx[rows] + 1e-14))[:, cols]  # only the rows shown, then one column per pixel
    norm = np.clip((level - (top - 90.0)) / 90.0, 0.0, 1.0)
    lut = magma_lut()
    # the colormap's own lookup: value * N, truncated, the top value in the last colour
    index = np.minimum((norm * lut.shape[0]).astype(np.intp), lut.shape[0] - 1)
    return np.take(lut, index, axis=0)  # = lut[index], 4-5x faster than fancy indexing


@functools.cache
def _font(size: int = 11) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled TrueType font
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


@functools.cache
def _label(text: str, anchor: str) -> tuple[np.ndarray, int, int]:
    """A text label rendered once: its coverage (float32, shape (h, w), 0-1) and offsets from its anchor point.

    ``anchor`` is Pillow's two-letter text anchor (``"rm"``: right, middle...).
    """
    from PIL import Image, ImageDraw

    font = _font()
    left, top, right, bottom = font.getbbox(text, anchor=anchor)
    img = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(img).text((-left, -top), text, fill=255, font=font, anchor=anchor)
    coverage = np.asarray(img, dtype=np.float32) / 255.0
    coverage.setflags(write=False)
    return coverage, left, top


def _text(img: np.ndarray, xy: tuple[int, int], text: str, anchor: str) -> None:
    """Blend a label in the axis colour into an RGB array at ``xy`` (its anchor point), clipped to the array."""
    coverage, left, top = _label(text, anchor)
    y0, x0 = xy[1] + top, xy[0] + left
    h, w = coverage.shape
    ys, xs = slice(max(0, y0), min(img.shape[0], y0 + h)), slice(max(0, x0), min(img.shape[1], x0 + w))
    if ys.start >= ys.stop or xs.start >= xs.stop:
        return
    a = coverage[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0, None]
    region = img[ys, xs].astype(np.float32)
    img[ys, xs] = np.round(region * (1 - a) + np.asarray(_AXIS_COLOR, np.float32) * a).astype(np.uint8)


def _axes(img: np.ndarray, *, duration_s: float, top_hz: float) -> None:
    """Draw the time axis (s) under the spectrogram and the frequency axis (kHz) left of it, into a panel array."""
    spec_top = _WAVE_H + _WAVE_GAP
    spec_bottom = spec_top + _SPEC_H - 1
    x0, x1 = _AXIS_L, _AXIS_L + _PANEL_W - 1
    for value, label in _nice_ticks(0.0, top_hz / 1000, target=4):
        y = round(spec_bottom - value * 1000 / top_hz * (_SPEC_H - 1))
        img[y, x0 - 4 : x0] = _AXIS_COLOR
        _text(img, (x0 - 6, y), label, "rm")
    _text(img, (x0 - 6, spec_top - 6), "kHz", "rb")
    if duration_s > 0:
        for value, label in _nice_ticks(0.0, duration_s, target=6):
            x = round(x0 + value / duration_s * (_PANEL_W - 1))
            img[spec_bottom + 1 : spec_bottom + 5, x] = _AXIS_COLOR
            anchor = "lt" if x - x0 < 8 else "rt" if x1 - x < 8 else "mt"
            _text(img, (x, spec_bottom + 5), label, anchor)
    _text(img, (x1 + 4, spec_bottom + 5), "s", "lt")


def _panel(data: tuple[np.ndarray, int] | None, color: tuple[int, int, int], top_hz: float | None) -> np.ndarray:
    """One panel as RGB, uint8, shape (_WAVE_H + gap + _SPEC_H + _AXIS_B, _FIG_PANEL_W, 3)."""
    height = _WAVE_H + _WAVE_GAP + _SPEC_H + _AXIS_B
    img = np.full((height, _FIG_PANEL_W, 3), 255, np.uint8)
    plot = (slice(0, _WAVE_H + _WAVE_GAP + _SPEC_H), slice(_AXIS_L, _AXIS_L + _PANEL_W))
    if data is None or data[0].size == 0:
        img[plot] = 240
        img[plot][::8, ::8] = 200  # dotted: nothing to show
        return img
    audio, rate = data
    shown_hz = min(float(top_hz), rate / 2) if top_hz and top_hz > 0 else rate / 2
    img[:_WAVE_H, _AXIS_L : _AXIS_L + _PANEL_W] = _wave_image(audio, color)
    img[_WAVE_H + _WAVE_GAP : _WAVE_H + _WAVE_GAP + _SPEC_H, _AXIS_L : _AXIS_L + _PANEL_W] = _spec_image(
        audio, rate, shown_hz
    )
    _axes(img, duration_s=audio.size / rate, top_hz=shown_hz)
    return img


def clip_figure_jpeg(
    before: np.ndarray | None,
    after: np.ndarray | None,
    *,
    before_sample_rate: int | None = None,
    after_sample_rate: int | None = None,
    top_hz: float | None = None,
) -> bytes:
    """One JPEG image: before (left) and after (right), each a waveform over a spectrogram, with axes.

    Each panel has a time axis in seconds from the start of its audio and a
    frequency axis in kHz.

    Parameters
    ----------
    before, after : np.ndarray, float32, shape (samples,), or None
        Mono audio; ``None`` draws an empty panel.
    before_sample_rate, after_sample_rate : int, optional
        Rate of ``before`` / ``after`` in Hz; required for the audio given.
    top_hz : float, optional
        Top of both spectrograms (each capped at its Nyquist frequency), e.g.
        :func:`display_top_hz` of the measured bandwidth; default: the Nyquist
        frequency.

    Raises
    ------
    ConfigError
        If audio is given without its sample rate.
    """
    from PIL import Image

    panels = []
    for audio, sample_rate, label in ((before, before_sample_rate, "before"), (after, after_sample_rate, "after")):
        if audio is not None and sample_rate is None:
            raise ConfigError(f"{label} audio needs {label}_sample_rate")
        panels.append(None if audio is None else (audio, int(sample_rate)))  # type: ignore[arg-type]
    left = _panel(panels[0], (122, 133, 153), top_hz)
    right = _panel(panels[1], (31, 95, 168), top_hz)
    figure = Image.fromarray(np.concatenate([left, right], axis=1))  # side by side, one image built once
    buf = io.BytesIO()
    # JPEG: spectrograms are photo-like; 5-10x smaller and faster to encode than PNG
    figure.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _clip_figure(
    before: tuple[np.ndarray, int] | None, after: tuple[np.ndarray, int] | None, top_hz: float | None
) -> str:
    """:func:`clip_figure_jpeg` as a data URI."""
    return _jpeg_uri(
        clip_figure_jpeg(
            None if before is None else before[0],
            None if after is None else after[0],
            before_sample_rate=None if before is None else before[1],
            after_sample_rate=None if after is None else after[1],
            top_hz=top_hz,
        )
    )


def _jpeg_uri(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def _captions(entry: Mapping[str, Any]) -> tuple[str, str]:
    """The captions over the before (source span) and after (clip) panels and players."""
    span = entry.get("span_s") or []
    src_rate = finite((entry.get("input") or {}).get("sample_rate"))
    before = "before (source)"
    if len(span) == 2 and finite(span[0]) is not None and finite(span[1]) is not None:
        start, end = float(span[0]), float(span[1])
        before += f" {start:.2f}–{end:.2f} s: {end - start:.1f} s"
        if src_rate:
            before += f" at {src_rate / 1000:g} kHz"
    else:
        before += ": not available"
    after = "after (clip)"
    duration, rate = finite(entry.get("duration_s")), finite(entry.get("sample_rate"))
    after += f": {duration:.1f} s at {rate / 1000:g} kHz" if duration and rate else ": not available"
    return before, after


def _fresh(path: Path, output: Path) -> bool:
    """Whether a figure or preview exists and is not older than the clip file it belongs to."""
    try:
        return path.stat().st_mtime >= output.stat().st_mtime - 1.0
    except OSError:
        return False


def _stored_figure(entry: Mapping[str, Any], out: Path) -> str | None:
    """The figure a worker drew while it had the audio (no second decode), as a data URI."""
    path = RunFolder(out).plot_path(str(entry.get("speaker")), str(entry.get("id")))
    output = entry.get("output")
    if not output or not _fresh(path, out / output):
        return None
    return _jpeg_uri(path.read_bytes())


def _top_hz(entry: Mapping[str, Any], rates: Sequence[int]) -> float | None:
    """:func:`display_top_hz` of the clip's measured bandwidth, for panels at ``rates``."""
    if not rates:
        return None
    return display_top_hz(source_metrics(entry.get("metrics") or {})["bandwidth_hz"], sample_rate=max(rates))


@dataclass
class _Players:
    """The two players of each clip: links relative to the page, or embedded Opus data URIs."""

    out: Path
    embed: bool
    embedded_bytes: int = 0
    embedded: int = 0

    def _uri(self, data: bytes) -> str:
        from .audio import audio_data_uri

        self.embedded_bytes += len(data)
        self.embedded += 1
        return audio_data_uri(data)

    def _preview(self, entry: Mapping[str, Any]) -> Path | None:
        """The clip's fresh source preview (FLAC, or a run made before's Ogg Opus); None when there is none."""
        output = entry.get("output")
        if not output:
            return None
        paths = RunFolder(self.out).preview_paths(str(entry.get("speaker")), str(entry.get("id")))
        return next((p for p in paths if _fresh(p, self.out / output)), None)

    def preview_missing(self, entry: Mapping[str, Any]) -> bool:
        """Whether the clip has a written file but no fresh source preview."""
        output = entry.get("output")
        return bool(output) and (self.out / output).is_file() and self._preview(entry) is None

    def make_preview(self, entry: Mapping[str, Any], before: tuple[np.ndarray, int]) -> None:
        """Write the missing source preview (FLAC) from source audio decoded for a figure (best effort)."""
        from .audio import flac_preview

        path = RunFolder(self.out).preview_path(str(entry.get("speaker")), str(entry.get("id")))
        try:
            write_bytes_atomic(path, flac_preview(before[0], sample_rate=before[1]))
        except (OSError, PrepError) as err:
            log.info("%s: no source preview: %s", entry.get("id"), err)

    def before(self, entry: Mapping[str, Any]) -> str | None:
        """The source-span player's ``src`` (None when there is no preview).

        Embedded, a FLAC preview is encoded to Opus here (an Ogg Opus one is
        taken as it is): the page stays as small as before.
        """
        from .audio import wav_opus_ogg

        path = self._preview(entry)
        if path is None:
            return None
        if self.embed:
            try:
                if path.suffix == ".ogg":
                    return self._uri(path.read_bytes())
                band = finite((entry.get("metrics") or {}).get("source_bandwidth_hz"))
                return self._uri(wav_opus_ogg(path, bandwidth_hz=band))
            except (OSError, PrepError) as err:
                log.warning("%s: cannot embed its source preview: %s", entry.get("id"), err)
                return None
        return quote(RunFolder(self.out).relative(path))

    def after(self, entry: Mapping[str, Any]) -> str | None:
        """The clip player's ``src`` (None when the clip file is missing)."""
        return self.file(str(entry.get("output") or ""))

    def file(self, relative: str) -> str | None:
        """The ``src`` of a player of a WAV in the run folder (``relative`` to it); None when it is missing."""
        from .audio import wav_opus_ogg

        if not relative or not (self.out / relative).is_file():
            return None
        if self.embed:
            try:
                return self._uri(wav_opus_ogg(self.out / relative))
            except PrepError as err:
                log.warning("%s: cannot embed its audio: %s", relative, err)
                return None
        return quote(relative)

    def note(self, page_bytes: int) -> str:
        """The page's note on where its audio is."""
        from .audio import OPUS_BITRATE_BPS

        if self.embed:
            return (
                f"Audio is embedded in this page: {self.embedded} player(s), "
                f"{self.embedded_bytes / 1e6:.1f} MB of Opus at {OPUS_BITRATE_BPS // 1000} kb/s per channel, "
                f"of the page's {page_bytes / 1e6:.1f} MB; this file alone is the whole report."
            )
        return (
            f"The players link to the files next to this page ({CLIPS_DIR}/ and {PLOTS_DIR}/): keep {REPORT_HTML} "
            "inside the run folder, or write it with voiceprep report OUT --embed-audio to carry it alone."
        )


def _player(src: str | None, what: str) -> str:
    if src is None:
        return f'<span class="muted">{_e(what)}: not available</span>'
    return f'<audio controls preload="none" src="{_e(src)}" title="{_e(what)}"></audio>'


#: One distributions panel: viewBox units (~px at 100 % zoom), plot area inside the margins.
_DIST_W, _DIST_H = 320, 190
_DIST_LEFT, _DIST_RIGHT, _DIST_TOP, _DIST_BOTTOM = 34, 12, 26, 30
_DIST_ALPHA = 0.75


def _short(value: float) -> str:
    """A bin edge for a tooltip: at most two decimals, no trailing zeros, no ``-0``."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _nice_ticks(lo: float, hi: float, target: int = 5) -> list[tuple[float, str]]:
    """Round tick values in ``[lo, hi]``, with labels.

    The step is 1, 2 or 5 times a power of ten, whichever gives the number of
    ticks closest to `target` (ties: the coarser step).

    Parameters
    ----------
    lo, hi : float
        The axis range, ``lo < hi``.
    target : int
        How many ticks are wanted (about).

    Returns
    -------
    list of (float, str)
        Tick values in increasing order and their labels.
    """
    span = hi - lo
    if not span > 0:
        return [(lo, _short(lo))]
    power = math.floor(math.log10(span / target))

    def first_last(step: float) -> tuple[int, int]:
        return math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)

    def distance(step: float) -> tuple[int, float]:
        first, last = first_last(step)
        return abs(last - first + 1 - target), -step  # ties: the coarser step

    step = min((mult * 10.0**exp for exp in (power - 1, power, power + 1) for mult in (1, 2, 5)), key=distance)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    first, last = first_last(step)
    ticks = []
    for k in range(first, last + 1):
        value = round(k * step, decimals)
        label = f"{value:.{decimals}f}"
        ticks.append((value, "0" if label.strip("-0.") == "" else label))
    return ticks


def _hist_panel(key: str, title: str, series: Sequence[tuple[str, list[float], str]]) -> str:
    """One histogram panel (an SVG ``<g>`` at the origin, `_DIST_W` x `_DIST_H`), series overlaid.

    Parameters
    ----------
    key : str
        Short name of the metric, kept in ``data-metric``.
    title : str
        Shown above the plot.
    series : sequence of (label, values, color)
        Non-empty lists of finite values; all share the bins
        ``np.linspace(lo - 0.5, hi + 0.5, min(30, max(5, n)) + 1)`` over
        the ``n`` values of every series.

    Returns
    -------
    str
        SVG markup. Every non-empty bin is a ``<rect>`` with ``data-series``,
        ``data-bin``, ``data-count`` and a ``<title>`` tooltip.
    """
    everything = np.concatenate([np.asarray(v, dtype=float) for _, v, _ in series])
    lo, hi = float(everything.min()), float(everything.max())
    bins = np.linspace(lo - 0.5, hi + 0.5, min(30, max(5, everything.size)) + 1)
    counts = [np.histogram(np.asarray(v, dtype=float), bins=bins)[0] for _, v, _ in series]
    top = max(1, max(int(c.max()) for c in counts))
    x0, x1 = _DIST_LEFT, _DIST_W - _DIST_RIGHT
    y0, y1 = _DIST_TOP, _DIST_H - _DIST_BOTTOM
    e0, e1 = float(bins[0]), float(bins[-1])

    def x(value: float) -> float:
        return x0 + (value - e0) / (e1 - e0) * (x1 - x0)

    parts = [
        f'<g class="panel" data-metric="{_e(key)}" data-bins="{_e(" ".join(repr(float(b)) for b in bins))}">',
        f'<text x="{_DIST_W / 2:.1f}" y="16" text-anchor="middle" font-size="12" font-weight="600">{_e(title)}</text>',
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#d5d9e0" stroke-dasharray="3 3"/>',
        f'<text x="{x0 - 4}" y="{y0 + 4}" text-anchor="end" font-size="10" fill="#5b6475">{top}</text>',
        f'<text x="{x0 - 4}" y="{y1}" text-anchor="end" font-size="10" fill="#5b6475">0</text>',
    ]
    last = len(bins) - 2
    for (label, _, color), count in zip(series, counts, strict=True):
        for i, c in enumerate(count.tolist()):
            if c == 0:
                continue
            left, right = x(float(bins[i])), x(float(bins[i + 1]))
            height = c / top * (y1 - y0)
            close = "]" if i == last else ")"  # np.histogram: the last bin holds its right edge
            tip = f"{label}: {c} clip{'s' if c != 1 else ''} in [{_short(bins[i])}, {_short(bins[i + 1])}{close}"
            parts.append(
                f'<rect x="{left:.2f}" y="{y1 - height:.2f}" width="{right - left:.2f}" height="{height:.2f}" '
                f'fill="{color}" fill-opacity="{_DIST_ALPHA}" data-series="{_e(label)}" data-bin="{i}" '
                f'data-count="{c}"><title>{_e(tip)}</title></rect>'
            )
    parts.append(f'<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}" stroke="#5b6475"/>')
    parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#5b6475"/>')
    for value, label in _nice_ticks(e0, e1):
        tx = x(value)
        parts.append(f'<line x1="{tx:.2f}" y1="{y1}" x2="{tx:.2f}" y2="{y1 + 4}" stroke="#5b6475"/>')
        parts.append(
            f'<text x="{tx:.2f}" y="{y1 + 15}" text-anchor="middle" font-size="10" fill="#5b6475">{_e(label)}</text>'
        )
    if len(series) > 1:
        width = 14 + 7 * max(len(label) for label, _, _ in series)
        tallest = np.max(np.stack(counts), axis=0)
        centers = [x(float(b)) for b in (bins[:-1] + bins[1:]) / 2]

        def under(a: float, b: float) -> int:
            return max((int(t) for t, c in zip(tallest, centers, strict=True) if a - 6 <= c <= b + 6), default=0)

        # top right, unless the bars there are taller than at the top left
        right = under(x1 - width - 8, x1) <= under(x0, x0 + width + 8)
        lx, ly = (x1 - width - 4 if right else x0 + 8), y0 + 4
        parts.append(
            f'<rect x="{lx - 4}" y="{ly - 2}" width="{width + 8}" height="{13 * len(series) + 3}" '
            'fill="#fff" fill-opacity="0.8" stroke="#d5d9e0"/>'
        )
        for j, (label, _, color) in enumerate(series):
            parts.append(
                f'<rect x="{lx}" y="{ly + 13 * j + 1}" width="9" height="9" fill="{color}" '
                f'fill-opacity="{_DIST_ALPHA}"/>'
                f'<text x="{lx + 13}" y="{ly + 13 * j + 10}" font-size="10">{_e(label)}</text>'
            )
    parts.append("</g>")
    return "".join(parts)


def _distributions(clips: Sequence[Mapping[str, Any]]) -> str | None:
    """Score, loudness and SNR histograms as one inline SVG, one panel per metric side by side.

    Parameters
    ----------
    clips : sequence of Mapping
        Report clip entries; values are read from each one's ``metrics``.

    Returns
    -------
    str or None
        A standalone ``<svg>`` element (valid XML, scales with its container
        through ``viewBox``), or ``None`` when no clip has any of the metrics.
    """

    def values(*names: str) -> list[float]:
        return [v for c in clips if (v := pick(c.get("metrics") or {}, *names)) is not None]

    panels = [
        ("score", "score (0–100)", [("score", values("score"), "#1f5fa8")]),
        (
            "loudness",
            "loudness (LUFS)",
            [("source", values("source_lufs"), "#9aa5b8"), ("output", values("output_lufs"), "#1f5fa8")],
        ),
        ("snr", "SNR (dB)", [("source", values("source_snr_db"), "#9aa5b8"), ("output", values("snr_db"), "#1f5fa8")]),
    ]
    panels = [(key, title, [s for s in series if s[1]]) for key, title, series in panels]
    panels = [(key, title, series) for key, title, series in panels if series]
    if not panels:
        return None
    width = _DIST_W * len(panels)
    label = "score, loudness and SNR histograms"
    body = "".join(
        f'<g transform="translate({_DIST_W * i},0)">{_hist_panel(key, title, series)}</g>'
        for i, (key, title, series) in enumerate(panels)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dist" viewBox="0 0 {width} {_DIST_H}" width="100%" '
        f'style="max-width:{round(width * 1.5)}px" role="img" aria-label="{label}" '
        f'font-family="system-ui,-apple-system,Segoe UI,Roboto,sans-serif" fill="#1d2330">'
        f"<title>{label}</title>{body}</svg>"
    )


# -- page ------------------------------------------------------------------------------
_TABLE = [
    # header, metric name (or key), format, unit
    ("score", "score", ".0f", ""),
    ("dur", "duration_s", ".1f", " s"),
    ("speech", "speech_ratio", ".0%", ""),
    ("SNR src", "source_snr_db", ".0f", " dB"),
    ("SNR out", "snr_db", ".0f", " dB"),
    ("band", "bandwidth_khz", ".1f", " kHz"),
    ("clip", "clipping_pct", ".2f", " %"),
    ("reverb", "reverb", ".2f", " s"),
    ("tonal", "tonal", ".2f", ""),
    ("LUFS src", "source_lufs", ".1f", ""),
    ("LUFS out", "output_lufs", ".1f", ""),
    ("TP out", "output_true_peak_dbtp", ".1f", ""),
    ("voice", "voice_similarity", ".2f", ""),
]


def _derived(metrics: Mapping[str, Any], name: str, src: Mapping[str, float | None] | None = None) -> float | None:
    """A table column's value: the same source-over-output values the score judged.

    ``src`` is ``source_metrics(metrics)`` when the caller has it already.
    """
    src = source_metrics(metrics) if src is None else src
    if name == "bandwidth_khz":
        return None if src["bandwidth_hz"] is None else src["bandwidth_hz"] / 1000
    if name == "clipping_pct":
        return None if src["clipping_ratio"] is None else 100 * src["clipping_ratio"]
    if name == "reverb":
        return src["reverb_s"]
    if name == "tonal":
        return src["tonal_ratio"]
    return finite(metrics.get(name))


def _anchor(entry: Mapping[str, Any], index: int) -> str:
    return f"clip-{index}"


_MAP_W, _MAP_H, _MAP_PAD = 260, 160, 10


def _voice_map(entries: Sequence[Mapping[str, Any]], anchors: Mapping[tuple[str, str], str]) -> str | None:
    """A small 2-D map of one speaker's clips: their speaker embeddings on the first two principal axes.

    Parameters
    ----------
    entries : sequence of Mapping
        One speaker's report clip entries; those with a ``voice_embedding`` metric are drawn.
    anchors : Mapping
        ``(speaker, id)`` -> anchor of the clip's section (each dot links to it).

    Returns
    -------
    str or None
        Inline SVG (dots coloured by verdict, ringed when selected), or None with fewer than 3
        embedded clips.
    """
    items = []
    for entry in entries:
        vec = (entry.get("metrics") or {}).get("voice_embedding")
        if isinstance(vec, list) and vec and all(isinstance(v, (int, float)) for v in vec):
            items.append((entry, vec))
    if len(items) < 3 or len({len(v) for _, v in items}) != 1:
        return None
    x = np.asarray([v for _, v in items], dtype=np.float64)
    if not np.isfinite(x).all():
        return None
    x -= x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.maximum(hi - lo, 1e-9)
    dots = []
    for (entry, _), (px, py) in zip(items, xy, strict=True):
        cx = _MAP_PAD + (px - lo[0]) / span[0] * (_MAP_W - 2 * _MAP_PAD)
        cy = _MAP_PAD + (py - lo[1]) / span[1] * (_MAP_H - 2 * _MAP_PAD)
        verdict = str(entry.get("verdict", ""))
        sim = finite((entry.get("metrics") or {}).get("voice_similarity"))
        tip = f"{entry.get('id', '')} · {verdict}" + ("" if sim is None else f" · similarity {sim:.2f}")
        ring = ' stroke="#1d2330" stroke-width="1.5"' if entry.get("selected") else ""
        anchor = anchors.get((str(entry.get("speaker")), str(entry.get("id"))), "")
        dots.append(
            f'<a href="#{_e(anchor)}"><circle cx="{cx:.1f}" cy="{cy:.1f}" r="4.5" '
            f'fill="{_COLORS.get(verdict, "#555")}"{ring}><title>{_e(tip)}</title></circle></a>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="voicemap" viewBox="0 0 {_MAP_W} {_MAP_H}" '
        f'width="{_MAP_W}" height="{_MAP_H}" role="img" aria-label="voice map">'
        f'<rect width="{_MAP_W}" height="{_MAP_H}" fill="#f6f7f9" rx="4"/>{"".join(dots)}</svg>'
        '<p class="muted">voice map: the clips by speaker embedding (first two principal axes); '
        "alike voices lie close. Colour: verdict; ring: selected.</p>"
    )


def _voice_maps(clips: Sequence[Mapping[str, Any]], anchors: Mapping[tuple[str, str], str]) -> dict[str, str]:
    """:func:`_voice_map` of each speaker that has one."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for entry in clips:
        groups.setdefault(str(entry.get("speaker")), []).append(entry)
    return {name: m for name, group in groups.items() if (m := _voice_map(group, anchors)) is not None}


def _speaker_cards(speakers: Mapping[str, Any], anchors: Mapping[tuple[str, str], str],
                   maps: Mapping[str, str] | None = None) -> str:
    if not speakers:
        return '<p class="muted">No speaker summary in this report.</p>'
    cards = []
    for name, s in speakers.items():
        sel = s.get("selection") or {}
        ready = s.get("ready")
        status = _badge("approved") .replace(">approved<", ">ready<") if ready else _badge("warning").replace(
            ">warning<", ">needs more audio<"
        )
        verdicts = " ".join(f"{_badge(v)}&nbsp;{n}" for v, n in (s.get("verdicts") or {}).items())
        links = ", ".join(
            f'<a href="#{anchors.get((name, cid), "")}">{_e(cid)}</a>' for cid in sel.get("clips", [])
        ) or "none"
        notes = list(s.get("notes") or []) + list((s.get("consistency") or {}).get("notes") or [])
        notes_html = "".join(f"<li>{_e(n)}</li>" for n in notes)
        cons = s.get("consistency") or {}
        rates = ", ".join(f"{r / 1000:g} kHz" for r in cons.get("sample_rates") or [])
        cards.append(
            f'<div class="card"><h3>{_e(name)} {status}</h3><div class="kv">'
            f"<span>clips</span><span>{s.get('clips', 0)} &nbsp; {verdicts}</span>"
            f"<span>approved</span><span>{_fmt(s.get('approved_s'), '.1f', ' s')} "
            f"({_fmt(s.get('approved_speech_s'), '.1f', ' s')} speech)</span>"
            f"<span>usable (approved + warning)</span><span>{_fmt(s.get('usable_s'), '.1f', ' s')}</span>"
            f"<span>mean score</span><span>{_fmt(s.get('mean_score'), '.0f')}</span>"
            f"<span>selection</span><span>{sel.get('count', 0)} clip(s), {_fmt(sel.get('total_s'), '.1f', ' s')}</span>"
            f"<span>sources</span><span>{_e(', '.join(cons.get('codecs') or []))} {_e(rates)}</span>"
            f"</div><p class='muted'>selected: {links}</p>"
            + (f'<ul class="notes">{notes_html}</ul>' if notes_html else "")
            + ((maps or {}).get(name) or "")
            + "</div>"
        )
    return '<div class="cards">' + "".join(cards) + "</div>"


#: Columns of the clip table's row; the other `_TABLE` columns fold into the row's details cell.
_MAIN_COLUMNS = ("score", "dur", "speech", "SNR src", "SNR out", "band", "voice")


def _column_value(entry: Mapping[str, Any], name: str, src: Mapping[str, float | None]) -> float | None:
    metrics = entry.get("metrics") or {}
    if name != "duration_s":
        return _derived(metrics, name, src)
    v = finite(entry.get("duration_s"))
    return finite(metrics.get("duration_s")) if v is None else v


def _clip_table(clips: Sequence[Mapping[str, Any]], anchors: Sequence[str]) -> str:
    """The clip table: one row per clip, fitting a 1400 px window (secondary columns in a details cell)."""
    main = [t for t in _TABLE if t[0] in _MAIN_COLUMNS]
    more = [t for t in _TABLE if t[0] not in _MAIN_COLUMNS]
    names = ("clip", "speaker", "verdict", *[t[0] for t in main], "sel", "findings")
    head = "".join(f"<th>{_e(h)}</th>" for h in names) + "<th data-nosort>more</th>"
    rows = []
    order = {v: i for i, v in enumerate(_COLORS)}
    for entry, anchor in zip(clips, anchors, strict=True):
        verdict = str(entry.get("verdict", ""))
        cid, speaker = str(entry.get("id", "")), str(entry.get("speaker", ""))
        src = source_metrics(entry.get("metrics") or {})  # once per clip, not per column
        cells = [
            f'<td class="id" data-v="{_e(cid)}"><a href="#{anchor}">{_e(cid or _EMPTY)}</a></td>',
            f'<td class="id" data-v="{_e(speaker)}">{_e(speaker or _EMPTY)}</td>',
            f'<td data-v="{order.get(verdict, 9)}">{_badge(verdict) if verdict else _EMPTY}</td>',
        ]
        for _, name, spec, unit in main:
            v = _column_value(entry, name, src)
            sort_v = "" if v is None else repr(v)
            cells.append(f'<td class="num" data-v="{sort_v}">{_fmt(v, spec, unit)}</td>')
        selected = bool(entry.get("selected"))
        cells.append(f'<td data-v="{int(selected)}" title="selected">{"✓" if selected else _EMPTY}</td>')
        found = entry_findings(entry)
        codes = " ".join(dict.fromkeys(f.code for f in found))
        messages = "; ".join(f.message for f in found)
        cells.append(f'<td class="reasons" data-v="{_e(codes)}" title="{_e(messages)}">{_e(codes or _EMPTY)}</td>')
        details = "".join(f"<span>{_e(h)}</span><span>{_fmt(_column_value(entry, n, src), spec, unit)}</span>"
                          for h, n, spec, unit in more)
        cells.append(f'<td data-v=""><details><summary>{len(more)} more</summary>'
                     f'<div class="kv">{details}</div></details></td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="wrap"><table class="clips" id="clips"><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table></div>'
    )


def _metrics_table(metrics: Mapping[str, Any]) -> str:
    rows = []
    for key in sorted(metrics):
        value = metrics[key]
        if key == "voice_embedding" and isinstance(value, list):
            text = f"{len(value)} values (speaker embedding)"
        elif isinstance(value, float):
            text = f"{value:.4g}"
        elif isinstance(value, (dict, list)):
            text = json.dumps(value, ensure_ascii=False)
        else:
            text = str(value)
        rows.append(f"<tr><td>{_e(key)}</td><td>{_e(text)}</td></tr>")
    return "<details><summary>all metrics</summary><table>" + "".join(rows) + "</table></details>"


def _clip_section(entry: Mapping[str, Any], anchor: str, figure: str | None, players: _Players) -> str:
    found = entry_findings(entry)
    reasons_html = "".join(
        f"<li>{_severity(f.severity)} <code class='fc'>{_e(f.code)}</code> {_e(f.message)}</li>" for f in found
    ) or "<li>no problems found</li>"
    span = entry.get("span_s") or []
    span_text = f"{_fmt(span[0], '.2f')}–{_fmt(span[1], '.2f')} s" if len(span) == 2 else ""
    output = entry.get("output")
    transcript = entry.get("transcript")
    metrics = entry.get("metrics") or {}
    parts = [
        f'<section class="clip" id="{anchor}"><h3>{_e(entry.get("id", ""))} {_badge(str(entry.get("verdict", "")))} '
        f'<span class="muted">score {_fmt(metrics.get("score"), ".0f")} · {_e(entry.get("speaker", ""))}</span></h3>',
        f'<div class="muted">{_e(entry.get("source", ""))} {_e(span_text)} → {_e(output or "not written")}</div>',
        f'<ul class="notes">{reasons_html}</ul>',
    ]
    info = entry.get("transcript_info") or {}
    origin = info.get("origin")
    if transcript:
        label = {"user": "given", "asr": f"speech recognition ({info.get('model')})"}.get(str(origin), "")
        label_html = f'<span class="muted">{_e(label)}:</span> ' if label else ""
        parts.append(f'<p class="muted">{label_html}“{_e(transcript)}”</p>')
    heard = info.get("heard")
    if heard and heard != transcript:  # what speech recognition heard, beside the given text
        parts.append(f'<p class="muted">heard by speech recognition ({_e(info.get("model") or "")}): '
                     f'“{_e(heard)}”</p>')
    elif info.get("user_text"):
        parts.append(f'<p class="muted">given transcript (replaced): “{_e(info["user_text"])}”</p>')
    left, right = _captions(entry)
    image = (
        f'<img alt="waveform and spectrogram of {_e(entry.get("id", ""))}, before and after" src="{figure}" '
        f'width="{2 * _FIG_PANEL_W}">'
        if figure else ""
    )
    if figure or output:
        parts.append(
            f'<div class="fig" style="max-width:{2 * _FIG_PANEL_W}px">{image}<div class="caps">'
            f'<div class="before"><span>{_e(left)}</span>{_player(players.before(entry), "source preview")}</div>'
            f'<div class="after"><span>{_e(right)}</span>{_player(players.after(entry), "clip")}</div>'
            "</div></div>"
        )
    parts.append(_metrics_table(metrics))
    parts.append("</section>")
    return "".join(parts)


def _references_section(report: Mapping[str, Any], out: Path, players: _Players) -> str:
    """The speakers' Fish Audio reference samples (``OUT/references/<speaker>/``) with players; "" when none.

    A set built from another run's ``report.json`` is marked as outdated.
    """
    import hashlib

    from ..deliver.references import read_references

    try:
        current = hashlib.sha256(RunFolder(out).report_json.read_bytes()).hexdigest()
    except OSError:
        current = None
    speakers = sorted({str(c.get("speaker")) for c in report.get("clips") or []} | set(report.get("speakers") or {}))
    cards = []
    for name in speakers:
        listing = read_references(out, name)
        if listing is None:
            continue
        stale = current is not None and listing.get("report_sha256") != current
        rows = []
        for ref in listing.get("references") or []:
            parts = ref.get("parts") or []
            pauses = [p.get("pause_before_s") for p in parts if p.get("pause_before_s") is not None]
            made = (f"{len(parts)} clips joined (pauses {min(pauses):.2f}–{max(pauses):.2f} s)" if len(parts) > 1
                    else "one clip as it is")
            mos = ref.get("dnsmos_ovrl")
            text = ref.get("transcript")
            rows.append(
                f'<tr class="reference"><td>{_e(ref.get("id", ""))}</td>'
                f'<td>{_player(players.file(str(ref.get("output") or "")), "reference")}</td>'
                f'<td class="num">{_fmt(ref.get("duration_s"), ".1f", " s")}</td>'
                f'<td class="num">{_fmt(ref.get("lufs"), ".1f", " LUFS")}</td>'
                f'<td class="num">{_fmt(mos, ".2f")}</td>'
                f'<td>{_e(made)}<div class="muted">{_e(", ".join(ref.get("clips") or []))}</div></td>'
                f'<td class="reasons">{_e(text) if text else _e(ref.get("text_note") or "no text")}</td></tr>'
            )
        notes = "".join(f"<li>{_e(n)}</li>" for n in listing.get("notes") or [])
        head = (f'<h3>{_e(name)} <span class="muted">{len(rows)} reference(s), '
                f'{_fmt(listing.get("total_s"), ".1f", " s")}</span></h3>')
        warn = ("<p class='partial'>Built from an earlier run: <code>voiceprep references</code> builds them "
                "again (submit does so by itself).</p>" if stale else "")
        table = (
            "<table class='clips references'><thead><tr><th>ref</th><th>listen</th><th>length</th><th>loudness</th>"
            f"<th>DNSMOS</th><th>made of</th><th>transcript</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            if rows else "<p class='muted'>No reference sample could be built.</p>"
        )
        cards.append(f'<div class="card" id="references-{_e(name)}">{head}{warn}{table}'
                     + (f'<ul class="notes">{notes}</ul>' if notes else "") + "</div>")
    if not cards:
        return ""
    return ("<h2>Reference samples</h2><p class='muted'>What <code>voiceprep submit</code> sends to Fish Audio: "
            "10–30 s each, short utterances joined in source order.</p>" + "".join(cards))


def render_html(
    report: Mapping[str, Any], out_dir: str | Path, *, max_plots: int = 500, embed_audio: bool = False
) -> str:
    """Render the report page.

    Parameters
    ----------
    report : Mapping
        As built by :func:`prep.report.summary.build_report` (or read back with
        :func:`prep.report.summary.read_report`).
    out_dir : str or Path
        The run's output folder (clip paths in the report are relative to it).
    max_plots : int
        Draw before/after plots for at most this many clips (the first ones).
        A figure or source preview missing in ``OUT/plots`` is made again from
        the source for these clips (and the preview written there).
    embed_audio : bool
        Put every player's audio into the page as Opus data URIs (the page
        alone is then the whole report; a note gives the size, and a page
        over :data:`EMBED_WARN_BYTES` logs a warning); default: links
        relative to the page.

    Returns
    -------
    str
        The whole HTML document.
    """
    out = Path(out_dir)
    clips = list(report.get("clips") or [])
    anchors = [_anchor(c, i) for i, c in enumerate(clips)]
    anchor_of = {(str(c.get("speaker")), str(c.get("id"))): a for c, a in zip(clips, anchors, strict=True)}
    summary = report.get("summary") or {}
    verdicts = " ".join(f"{_badge(v)}&nbsp;{n}" for v, n in (summary.get("verdicts") or {}).items())
    cache = _SourceCache()
    order = sorted(range(len(clips)), key=lambda i: (str(clips[i].get("source")), i))
    players = _Players(out, embed_audio)
    figures: dict[int, str | None] = {}
    for i in order[: max(0, max_plots)]:
        entry = clips[i]
        if entry.get("verdict") == "error" and not entry.get("output"):
            figures[i] = None
            continue
        stored = _stored_figure(entry, out)
        need_preview = players.preview_missing(entry)
        before = _before(entry, cache) if stored is None or need_preview else None
        if need_preview and before is not None:
            players.make_preview(entry, before)
        if stored is not None:
            figures[i] = stored
            continue
        after = _after(entry, out)
        figures[i] = _clip_figure(before, after, _top_hz(entry, [d[1] for d in (before, after) if d is not None]))
    dist = _distributions(clips)
    title = f"voiceprep report: {out.resolve().name}"
    body = [
        f"<header><h1>{_e(title)}</h1><div class='meta'>profile {_e(report.get('profile', '?'))} · "
        f"{len(clips)} clip(s) · {verdicts} · created {_e(report.get('created', '?'))} · "
        f"voiceprep {_e(report.get('voiceprep_version', '?'))}</div></header><main>",
        *([f"<p class='partial'><strong>Partial report:</strong> {_e(PARTIAL_NOTE)}</p>"]
          if report.get("partial") else []),
        "<h2>Speakers</h2>",
        _speaker_cards(report.get("speakers") or {}, anchor_of, _voice_maps(clips, anchor_of)),
    ]
    body.append(_references_section(report, out, players))
    codes = _code_table(clips)
    if codes:
        body += ["<h2>Findings</h2><p class='muted'>Clips per finding code.</p>", codes]
    if dist:
        body += ["<h2>Distributions</h2>", dist]  # inline SVG
    body += [
        "<h2>Clips</h2><p class='muted'>Click a column header to sort. Source (src) values were measured "
        "before processing.</p>",
        _clip_table(clips, anchors),
        "<h2>Clip details</h2>",
        "",  # the note on the audio, once the page's size is known
    ]
    note_at = len(body) - 1
    body += [
        _clip_section(c, a, figures.get(i), players) for i, (c, a) in enumerate(zip(clips, anchors, strict=True))
    ]
    body.append("</main>")
    head = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
    )
    tail = f"<script>{_JS}</script></body></html>\n"
    size = len(head) + len(tail) + sum(len(part) for part in body)  # characters ~ bytes: nearly all ASCII
    if embed_audio and size > EMBED_WARN_BYTES:
        log.warning(
            "%s is %.0f MB with embedded audio (%d players); browsers get slow on pages this large: "
            "without --embed-audio it links to the audio files instead", REPORT_HTML, size / 1e6, players.embedded
        )
    body[note_at] = f"<p class='muted' id='audio-note'>{_e(players.note(size))}</p>"
    return head + "".join(body) + tail


def write_report_html(
    report: Mapping[str, Any], out_dir: str | Path, *, max_plots: int = 500, embed_audio: bool = False
) -> Path:
    """Write ``out_dir/report.html`` atomically and return its path (see :func:`render_html`)."""
    path = RunFolder(out_dir).report_html
    write_text_atomic(path, render_html(report, out_dir, max_plots=max_plots, embed_audio=embed_audio))
    return path
