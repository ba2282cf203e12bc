"""Build the Cython kernels in ``csrc/`` into modules under ``minidl/kernels/``.

Every ``csrc/NAME.pyx`` becomes the extension ``minidl.kernels._NAME``. The
package metadata lives in ``pyproject.toml``; this file only describes the
compiled part, which setuptools cannot express declaratively.

The kernels are optional: minidl runs on their NumPy references without them
(slower, and ``import minidl`` says so). So the build first tries the C
compiler on a tiny program. Without a working compiler it builds nothing and
the install still succeeds; a compiler without OpenMP (macOS's clang) builds
the kernels single-threaded; and a kernel that fails to compile leaves all of
them out. Each case prints a warning, which pip shows with ``pip install -v``.
"""

import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import BaseError, CCompilerError

HERE = Path(__file__).parent
SOURCES = sorted((HERE / "csrc").glob("*.pyx"))

PLAIN_PROGRAM = "int minidl_probe(void) { return 0; }\n"
OPENMP_PROGRAM = """\
#include <omp.h>
int minidl_probe(void) { return omp_get_max_threads(); }
"""
OPENMP_FLAGS = ["-fopenmp"]


def kernel_extension(pyx: Path) -> Extension:
    """One extension per ``.pyx``: -O3 always, OpenMP where it uses ``prange``."""
    flags = list(OPENMP_FLAGS) if "prange" in pyx.read_text() else []
    return Extension(
        name=f"minidl.kernels._{pyx.stem}",
        sources=[str(pyx.relative_to(HERE))],
        include_dirs=["csrc"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3", *flags],
        extra_link_args=list(flags),
    )


def without_openmp(flags: list[str]) -> list[str]:
    """``flags`` less the OpenMP ones."""
    return [flag for flag in flags if flag not in OPENMP_FLAGS]


def warn(message: str) -> None:
    """One warning line in the build log."""
    print(f"WARNING (minidl): {message}", file=sys.stderr, flush=True)


class build_kernels(build_ext):
    """``build_ext`` that builds the kernels it can and never fails the install.

    Cython and NumPy are imported only once the compiler has built a test
    program, so a machine without a compiler needs neither to install.
    """

    def build_extensions(self) -> None:
        if not self.compiles(PLAIN_PROGRAM, []):
            return self.skip("the C compiler cannot build a test program (is one installed? "
                             "$CC names it)")
        if not self.compiles(OPENMP_PROGRAM, OPENMP_FLAGS):
            warn("the C compiler does not support OpenMP (-fopenmp): the compiled kernels "
                 "are built single-threaded")
            for extension in self.extensions:
                extension.extra_compile_args = without_openmp(extension.extra_compile_args)
                extension.extra_link_args = without_openmp(extension.extra_link_args)
        try:
            import numpy as np
            from Cython.Build import cythonize
        except ImportError as exc:
            return self.skip(f"{exc.name} is not installed in the build environment")
        generated = cythonize(
            self.extensions,
            language_level=3,
            compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
        )
        # setuptools has already prepared these very extensions for the build:
        # they stay, with the C that Cython generated as their sources.
        sources = {extension.name: extension.sources for extension in generated}
        for extension in self.extensions:
            extension.sources = sources[extension.name]
            extension.include_dirs.append(np.get_include())
        try:
            super().build_extensions()
        except (CCompilerError, BaseError) as exc:
            self.skip(f"compiling them failed ({exc})")

    def compiles(self, program: str, flags: list[str]) -> bool:
        """Whether the compiler turns ``program`` into a shared library with ``flags``."""
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp, "probe.c")
            source.write_text(program)
            try:
                objects = self.compiler.compile(
                    [str(source)], output_dir=tmp, extra_postargs=flags
                )
                self.compiler.link_shared_object(
                    objects, str(Path(tmp, "probe.so")), extra_postargs=flags
                )
            except (CCompilerError, BaseError, OSError):
                return False
        return True

    def skip(self, why: str) -> None:
        """Build no kernel: minidl will run on the NumPy references and say so at import."""
        warn(f"the compiled kernels are not built: {why}. minidl will use their NumPy "
             "references (slower). Install a C compiler and reinstall to build them.")
        self.extensions = []


setup(
    ext_modules=[kernel_extension(pyx) for pyx in SOURCES],
    cmdclass={"build_ext": build_kernels},
)
