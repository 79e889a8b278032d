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


def test_prep_never_imports_scipy_signal():
    """scipy.signal (and scipy.stats behind it) cost ~0.7 s of start-up: prep/ uses prep.dsp.spectral instead."""
    offenders = []
    for path in (ROOT / "prep").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
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
