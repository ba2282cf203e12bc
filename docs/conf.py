"""Sphinx configuration for minidl's documentation.

Build it with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
from the repository root. The build is offline (no intersphinx) and runs every
tutorial in ``tutorials/``: a tutorial that raises fails the build.
"""

import sys
from pathlib import Path

# Document the checkout this file sits in, even if another minidl is installed.
REPO_ROOT = Path(__file__).resolve().parents[1]
if (REPO_ROOT / "minidl").is_dir():
    sys.path.insert(0, str(REPO_ROOT))

import minidl  # noqa: E402  (needs the path above)

project = "minidl"
release = minidl.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build"]

# -- API reference --------------------------------------------------------------
# Docstrings are NumPy style (see STYLE.md). Documented members follow
# each module's __all__ when it has one.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"

# -- Tutorials --------------------------------------------------------------------
# Every .py in tutorials/ is a tutorial and is run on each build; its figures
# are captured by the matplotlib scraper. Stale outputs are re-run too, so a
# library change that breaks a tutorial breaks the build.
sphinx_gallery_conf = {
    "examples_dirs": "../tutorials",
    "gallery_dirs": "tutorials",
    "filename_pattern": r"\.py$",
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
    "run_stale_examples": True,
    "remove_config_comments": True,
}

# -- HTML -------------------------------------------------------------------------
html_theme = "furo"
html_title = f"minidl {release}"
html_show_copyright = False
