"""Installing minidl where the C compiler fails, or has no OpenMP, still gives a working minidl.

Without a working compiler the install builds no kernel, says so, and
succeeds; ``import minidl`` warns once that the NumPy references stand in;
the training job runs an epoch on them. With a compiler that refuses
``-fopenmp`` (macOS's clang) the kernels are built single-threaded. The
machine running the tests has a compiler, so ``CC`` names a stand-in script:
one that always fails, as a missing compiler would, or one that refuses
``-fopenmp`` and passes everything else on to the real compiler.

Each test installs minidl into a fresh virtual environment from a copy of this
checkout (its compiled modules and generated C left out), with this
environment's pip (``pip --python``). The build environment comes from pip's
build isolation, as for any user: setuptools, Cython and NumPy, from pip's
cache where the main install left them, else from PyPI. The runtime
dependencies are not installed again: a ``.pth`` file lends the new
environment the folders where this interpreter finds NumPy, tqdm and
threadpoolctl.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="the stand-in compilers are shell scripts"
)

ROOT = Path(__file__).resolve().parents[1]
# What a clean clone holds that the install reads (setup.py, pyproject.toml and
# the files they name), without build outputs.
TOP_FILES = ("setup.py", "pyproject.toml", "README.md", "LICENSE")
FOLDERS = ("csrc", "minidl")
BUILD_OUTPUTS = shutil.ignore_patterns("*.so", "*.pyd", "*.c", "__pycache__", "*.egg-info")
RUNTIME_DEPENDENCIES = ("numpy", "tqdm", "threadpoolctl")

FAILING_COMPILER = """#!/bin/sh
echo "no-compiler: this machine has no C compiler (a test stand-in)" >&2
exit 1
"""
COMPILER_WITHOUT_OPENMP = """#!/bin/sh
for arg in "$@"; do
    if [ "$arg" = "-fopenmp" ]; then
        echo "no-openmp: unsupported option '-fopenmp' (a test stand-in)" >&2
        exit 1
    fi
done
exec {compiler} "$@"
"""

CHECK_NUMPY_BACKEND = """
import minidl, minidl.kernels as K
print("minidl from", minidl.__file__)
K.set_num_threads(4)  # accepted, but the NumPy references run on one thread
print("backend", K.backend(), K.available(), K.has_openmp(), K.get_num_threads())
try:
    K.use("cython")
except ImportError as exc:
    print("use cython:", exc)
"""
CHECK_SINGLE_THREADED_KERNELS = """
import numpy as np
import minidl.kernels as K
from minidl.kernels import reference
K.set_num_threads(4)  # accepted, but without OpenMP every loop runs on one thread
print("backend", K.backend(), K.has_openmp(), K.get_num_threads(), K._im2col.get_num_threads())
x = np.random.default_rng(0).standard_normal((8, 3, 9, 9))
assert np.array_equal(K.im2col(x, 3, 2, 1), reference.im2col(x, 3, 2, 1))
out, indices = K.maxpool2d_forward(x, 3, 2, 1)
assert np.array_equal(out, reference.maxpool2d_forward(x, 3, 2, 1)[0])
print("kernels equal the reference")
"""

WARNING = "minidl's compiled kernels are not built"


def stand_in_compiler(path: Path, script: str) -> Path:
    path.write_text(script)
    path.chmod(0o755)
    return path


def fresh_install(tmp_path: Path, compiler: Path, *pip_options: str) -> tuple[Path, dict, str]:
    """Install a copy of this checkout into a new environment with ``CC=compiler``.

    Returns the environment's python, the environment variables to run it
    with, and pip's verbose output (the build's warnings are in it).
    """
    source, venv = tmp_path / "minidl-checkout", tmp_path / "venv"
    source.mkdir()
    for name in TOP_FILES:
        shutil.copy2(ROOT / name, source / name)
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, source / folder, ignore=BUILD_OUTPUTS)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(CC=str(compiler), CXX=str(compiler),
               PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1")

    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env, tmp_path, 60)
    python = venv / "bin" / "python"
    install = run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-v", "--no-deps",
         *pip_options, str(source)],
        env, tmp_path, 240,
    )
    lend_runtime_dependencies(python)
    return python, env, install


def lend_runtime_dependencies(python: Path) -> None:
    """Make the folders holding NumPy, tqdm, ... importable in ``python``'s environment.

    A path in a ``.pth`` file goes after the environment's own site-packages,
    and the ``.pth`` files inside it are not read: the main environment's
    editable minidl stays out.
    """
    folders = set()
    for name in RUNTIME_DEPENDENCIES:
        spec = importlib.util.find_spec(name)
        module = Path(spec.origin)  # a package's __init__.py, or a single module's file
        folders.add(str(module.parent.parent if spec.submodule_search_locations else module.parent))
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()
    Path(site, "_borrowed_from_main_env.pth").write_text("\n".join(sorted(folders)) + "\n")


def run(command: list[str], env: dict[str, str], cwd: Path, timeout: float) -> str:
    """Run ``command``; return its stdout and stderr together, failing the test on an error."""
    result = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output[-6000:]}"
    return output


@pytest.mark.parametrize("editable", [False, True], ids=["install", "install-e"])
def test_install_without_a_compiler_trains_on_the_numpy_kernels(tmp_path, editable):
    compiler = stand_in_compiler(tmp_path / "no-compiler", FAILING_COMPILER)
    python, env, install = fresh_install(tmp_path, compiler, *(["-e"] if editable else []))
    assert "WARNING (minidl): the compiled kernels are not built" in install
    assert "the C compiler cannot build a test program" in install

    checked = run([str(python), "-c", CHECK_NUMPY_BACKEND], env, tmp_path, 60)
    # The new install's minidl (the copy, or its site-packages), not the main environment's.
    installed_at = Path(checked.split("minidl from", 1)[1].split()[0]).resolve()
    assert installed_at.is_relative_to(tmp_path.resolve()), checked
    assert "backend numpy ('numpy',) False 1" in checked
    assert "use cython: the cython backend needs minidl's compiled kernels" in checked
    assert checked.count(WARNING) == 1, checked

    trained = run(
        [str(python), "-m", "minidl.train", "--model", "mlp", "--epochs", "1", "--no-progress"],
        env, tmp_path, 120,
    )
    assert trained.count(WARNING) == 1, trained
    assert "test accuracy:" in trained


def test_install_with_a_compiler_without_openmp_builds_single_threaded_kernels(tmp_path):
    real = shutil.which(shlex.split(sysconfig.get_config_var("CC") or "cc")[0])
    if real is None:
        pytest.skip("no C compiler here to stand behind the one without OpenMP")
    script = COMPILER_WITHOUT_OPENMP.format(compiler=shlex.quote(real))
    compiler = stand_in_compiler(tmp_path / "no-openmp", script)
    python, env, install = fresh_install(tmp_path, compiler)
    assert "the C compiler does not support OpenMP (-fopenmp)" in install
    assert "the compiled kernels are not built" not in install

    checked = run([str(python), "-c", CHECK_SINGLE_THREADED_KERNELS], env, tmp_path, 60)
    assert "backend cython False 1 1" in checked
    assert "kernels equal the reference" in checked
    assert WARNING not in checked
