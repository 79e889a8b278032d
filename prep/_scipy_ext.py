"""Load one of SciPy's compiled extension modules without importing its package.

Start-up time: ``import scipy.fft`` costs about 0.15 s of CPU (it imports
``scipy.special`` and SciPy's array-API layer), and numba's CPU target imports
all of ``scipy.linalg`` (another 0.05-0.15 s) only to find
``scipy.linalg.cython_blas``.  What the pipeline uses of them is one compiled
module each: pocketfft (the FFTs) and cython_blas (numba's BLAS check).  This
loads such a module straight from its file under SciPy's install, as the import
system would: its results are those of SciPy itself.  Registered under its own
name (numba imports cython_blas by name), a later import of that name finds the
very same module; it is then an attribute of its package only if the package was
imported first, which is why the FFT module is kept private (a later ``import
scipy.fft`` loads its own copy of it, as usual).

If the file cannot be found or loaded (another SciPy layout), the caller
falls back to the ordinary import.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["load_extension"]


def load_extension(name: str, *, register: bool = True) -> ModuleType | None:
    """The compiled SciPy module ``name`` (e.g. ``"scipy.linalg.cython_blas"``), loaded alone.

    Parameters
    ----------
    name : str
        Dotted name of a compiled (extension) module inside the ``scipy`` package.
    register : bool
        Put it in :data:`sys.modules` under ``name`` (and on its package, when that is imported already).

    Returns
    -------
    module or None
        The module, or ``None`` when SciPy has no such compiled file here (the caller then imports it the
        ordinary way).
    """
    if register and name in sys.modules:
        return sys.modules[name]
    top, *inner, leaf = name.split(".")
    try:
        spec = importlib.util.find_spec(top)
        if spec is None or not spec.submodule_search_locations:
            return None
        folder = Path(next(iter(spec.submodule_search_locations)), *inner)
        path = next((folder / (leaf + s) for s in importlib.machinery.EXTENSION_SUFFIXES
                     if (folder / (leaf + s)).is_file()), None)
        if path is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(name, str(path))
        module_spec = importlib.util.spec_from_file_location(name, path, loader=loader)
        if module_spec is None:
            return None
        module = importlib.util.module_from_spec(module_spec)
        loader.exec_module(module)
    except (ImportError, OSError, StopIteration):
        return None
    if not register:
        return module
    module = sys.modules.setdefault(name, module)
    parent = sys.modules.get(name.rpartition(".")[0])
    if parent is not None and not hasattr(parent, leaf):
        setattr(parent, leaf, module)
    return module
