"""The compiled kernels are built wherever they can be.

Without a C compiler minidl installs on the NumPy references alone
(``tests/test_install_no_compiler.py``), and the tests that compare the two
backends skip. These tests keep that from hiding a broken build: where a C
compiler works, the compiled kernels must be there, and where it takes
``-fopenmp``, they must use OpenMP.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sysconfig
from pathlib import Path

import pytest

import minidl.kernels as K

PLAIN_PROGRAM = "int minidl_probe(void) { return 0; }\n"
OPENMP_PROGRAM = "#include <omp.h>\nint minidl_probe(void) { return omp_get_max_threads(); }\n"


def compiles(tmp_path: Path, program: str, *flags: str) -> bool:
    """Whether ``$CC`` (else the compiler Python was built with) compiles ``program``."""
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC")
    if not compiler:
        return False
    source = tmp_path / "probe.c"
    source.write_text(program)
    command = [*shlex.split(compiler), *flags, "-c", str(source), "-o", str(tmp_path / "probe.o")]
    try:
        result = subprocess.run(command, capture_output=True, timeout=60)
    except OSError:  # no such program
        return False
    return result.returncode == 0


def test_compiled_kernels_are_built_and_the_default_where_a_c_compiler_works(tmp_path):
    if not compiles(tmp_path, PLAIN_PROGRAM):
        pytest.skip("no working C compiler here: minidl runs on the NumPy references")
    assert K.available() == ("cython", "numpy"), f"not built: {K._BUILD_ERROR}"
    assert K.backend() == "cython"


def test_compiled_kernels_use_openmp_where_the_compiler_has_it(tmp_path):
    if not compiles(tmp_path, OPENMP_PROGRAM, "-fopenmp"):
        pytest.skip("the C compiler here has no OpenMP: the kernels are built single-threaded")
    assert K.has_openmp()
