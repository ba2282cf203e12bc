"""Build the Cython kernels in ``csrc/`` into modules under ``minidl/kernels/``.

Every ``csrc/NAME.pyx`` becomes the extension ``minidl.kernels._NAME``. The
package metadata lives in ``pyproject.toml``; this file only describes the
compiled part, which setuptools cannot express declaratively.
"""

from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent


def kernel_extension(pyx: Path) -> Extension:
    """One extension per ``.pyx``: -O3 always, OpenMP where it uses ``prange``."""
    uses_openmp = "prange" in pyx.read_text()
    openmp = ["-fopenmp"] if uses_openmp else []
    return Extension(
        name=f"minidl.kernels._{pyx.stem}",
        sources=[str(pyx.relative_to(HERE))],
        include_dirs=[np.get_include(), "csrc"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3", *openmp],
        extra_link_args=openmp,
    )


extensions = [kernel_extension(p) for p in sorted((HERE / "csrc").glob("*.pyx"))]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ),
)
