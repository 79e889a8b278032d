"""numba's CPU target, set up without importing all of ``scipy.linalg``: imported by each kernel module.

On its first dispatch (compiling a kernel or loading it from the cache) numba
sets up its CPU target, whose registries import ``numba.np.arraymath``, which
imports ``scipy.linalg.cython_blas`` to see whether BLAS is there; that import
runs all of ``scipy.linalg`` and SciPy's array-API layer (0.05-0.15 s of CPU at
start-up), though these kernels use no BLAS.  Here the target is set up at once,
with that one compiled module loaded alone (:func:`prep._scipy_ext.load_extension`)
for the check; it is then taken out of :data:`sys.modules` again, so that a later
import of it (numba's own, when a kernel elsewhere uses BLAS) is the ordinary one.
If anything here fails, numba sets the target up itself on the first dispatch.
"""

from __future__ import annotations

import sys

from numba.core.registry import cpu_target

from .._scipy_ext import load_extension

_BLAS = "scipy.linalg.cython_blas"


def _set_up() -> None:
    if _BLAS in sys.modules or "numba.np.arraymath" in sys.modules:
        return  # imported the ordinary way already, or the target is set up
    if load_extension(_BLAS) is None:
        return
    try:
        cpu_target.target_context.refresh()
    except Exception:  # an optimisation: numba does it on its first dispatch otherwise
        pass
    finally:
        sys.modules.pop(_BLAS, None)


_set_up()
