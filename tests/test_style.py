"""The code base stays ruff-clean and keeps its layout rules."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed (pip install -e '.[test]')")
    done = subprocess.run([ruff, "check", "--no-cache", str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_kernels_import_numba():
    offenders = [p for p in (ROOT / "prep").rglob("*.py") if "numba" in _imports(p)]
    assert offenders == []
    kernels = [p for p in (ROOT / "kernels").glob("*.py") if p.name != "__init__.py"]
    assert kernels and all("numba" in _imports(p) for p in kernels)


def test_every_kernel_is_njit_cached_and_nogil():
    for path in (ROOT / "kernels").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                decorators = [ast.unparse(d) for d in node.decorator_list]
                jit = [d for d in decorators if d.startswith(("njit", "numba.njit", "jit", "nb.njit"))]
                assert jit, f"{path.name}:{node.name} is not a numba kernel"
                assert "cache=True" in jit[0] and "nogil=True" in jit[0], f"{path.name}:{node.name}: {jit[0]}"


def test_no_top_level_kernels_module_is_installed():
    import prep.kernels

    assert Path(prep.kernels.__file__).parent.name == "kernels"
    done = subprocess.run(
        [sys.executable, "-c", "import kernels"], capture_output=True, text=True, cwd=Path("/")
    )
    assert done.returncode != 0 and "No module named 'kernels'" in done.stderr


#: Functions that may import scipy.signal because they never run in a normal run: the int8 DNSMOS model's
#: calibration audio is made once per user and model (about 6 s of CPU, then cached).
_SCIPY_SIGNAL_ALLOWED = {("dnsmos.py", "_speechlike")}


def _imports_with_function(tree: ast.Module):
    """Yield ``(import node, name of the enclosing function or None)``."""
    def walk(node, func):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, func
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            yield from walk(child, inner)

    yield from walk(tree, None)


def test_prep_never_imports_scipy_signal():
    """scipy.signal (and scipy.stats behind it) cost ~0.7 s of start-up: prep/ uses prep.dsp.spectral instead."""
    offenders = []
    for path in (ROOT / "prep").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, func in _imports_with_function(tree):
            if (path.name, func) in _SCIPY_SIGNAL_ALLOWED:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            if any(n.startswith(("scipy.signal", "scipy.stats")) for n in names):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
    code = (
        "import sys, prep.run.profiles, prep.report.html; "
        "print(sorted(m for m in sys.modules if m.startswith(('scipy.signal', 'scipy.stats'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


#: Parameter names that hold a sample rate; only ``sample_rate`` (keyword-only) is allowed in public API.
_RATE_NAMES = {"rate", "sr", "fs", "samplerate", "sampling_rate", "sample_rate", "rate_hz", "sr_hz", "fs_hz"}
#: Parameter names that hold an audio array (first parameter of a function that takes audio).
_AUDIO_NAMES = {"audio", "x", "y", "signal", "mono", "samples", "wave", "waveform", "data", "block"}
#: Functions whose subject *is* a sample rate (validating one), so it may stay positional.
_RATE_IS_SUBJECT = {"prep/audio.py:check_sample_rate"}


def _misnamed_rate(name: str) -> bool:
    """A name for a sample rate that does not say so: ``rate``, ``sr``, ``target_rate``, ``fs``..."""
    if name.endswith("sample_rate"):
        return False
    return name in _RATE_NAMES or name.endswith(("_rate", "_sr", "_fs"))


def _public_functions(tree: ast.Module):
    """Yield ``(qualified name, node)`` for public module functions and public methods of public classes."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                    not item.name.startswith("_") or item.name == "__init__"
                ):
                    yield f"{node.name}.{item.name}", item


def sample_rate_offenders(root: Path) -> list[str]:
    """Public functions under ``root`` whose sample rate is positional or not named ``sample_rate``.

    A function offends when it has a parameter named like a rate (``rate``,
    ``sr``, ``fs``...) other than ``sample_rate``, when its ``sample_rate`` is
    not keyword-only, or when its first parameter is an audio array and a
    rate-like parameter follows it positionally.
    """
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = f"{path.relative_to(root.parent).as_posix()}"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for qual, node in _public_functions(tree):
            if f"{rel}:{qual}" in _RATE_IS_SUBJECT:
                continue
            args = node.args
            positional = [a.arg for a in (*args.posonlyargs, *args.args) if a.arg not in ("self", "cls")]
            keyword_only = [a.arg for a in args.kwonlyargs]
            for name in positional:
                if name in _RATE_NAMES:
                    offenders.append(f"{rel}:{node.lineno} {qual}: {name!r} is positional (make it '*, sample_rate')")
            for name in keyword_only:
                if _misnamed_rate(name):
                    offenders.append(f"{rel}:{node.lineno} {qual}: {name!r} should be named '..sample_rate'")
            if positional and positional[0] in _AUDIO_NAMES and any("rate" in n for n in positional[1:]):
                offenders.append(f"{rel}:{node.lineno} {qual}: takes audio with a positional rate")
    return sorted(set(offenders))


def test_sample_rate_is_keyword_only_everywhere():
    """Public functions that take audio follow ``f(audio, *, sample_rate, ...)`` (librosa's form)."""
    assert sample_rate_offenders(ROOT / "prep") == []


def test_sample_rate_check_catches_positional_and_misnamed_rates(tmp_path):
    pkg = tmp_path / "prep"
    pkg.mkdir()
    (pkg / "mod.py").write_text(
        "def good(audio, *, sample_rate): ...\n"
        "def positional(audio, sample_rate): ...\n"
        "def short(x, *, sr): ...\n"
        "def fs_first(fs, n): ...\n"
        "def _private(audio, rate): ...\n"
        "class Meter:\n"
        "    def __init__(self, rate, channels): ...\n"
        "    def feed(self, block, *, sample_rate): ...\n"
        "class _Hidden:\n"
        "    def run(self, x, rate): ...\n",
        encoding="utf-8",
    )
    found = sample_rate_offenders(pkg)
    flagged = {line.split(" ")[1].rstrip(":") for line in found}
    assert flagged == {"positional", "short", "fs_first", "Meter.__init__"}


def test_config_and_report_fields_name_their_rates():
    """Dataclass fields and public attributes holding a sample rate end in ``sample_rate``."""
    offenders = []
    for path in sorted((ROOT / "prep").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                name = node.target.id
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Attribute):
                name = node.target.attr
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Attribute):
                name = node.targets[0].attr  # self.x = ...
            else:
                continue
            if not name.startswith("_") and _misnamed_rate(name):
                offenders.append(f"{path.relative_to(ROOT).as_posix()}:{node.lineno} {name}")
    assert offenders == []
