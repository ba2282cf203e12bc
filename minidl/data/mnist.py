"""MNIST and Fashion-MNIST, read from the IDX files in a folder the user gives.

Nothing is downloaded: minidl reads the four standard files, plain or
gzipped, from the folder you name.

The IDX format (LeCun et al., "The MNIST database", file formats section)
is a header and then the raw values, C order:

- a 4-byte magic number, big-endian: two zero bytes, a type code (``0x08``
  for unsigned bytes, the only type MNIST uses) and the number of
  dimensions, so 2051 (``0x00000803``) for images and 2049
  (``0x00000801``) for labels;
- one 4-byte big-endian size per dimension (count, rows, columns);
- the values, one unsigned byte each.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from minidl.data.dataset import TensorDataset

#: The four files of MNIST and of Fashion-MNIST (both use the same names).
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: Where each kind of data set can be found, for the message shown when files are missing.
SOURCES = {
    "mnist": "MNIST: 'The MNIST database of handwritten digits' by Yann LeCun, Corinna Cortes and "
             "Christopher J. C. Burges, from its page or one of its mirrors",
    "fashion-mnist": "Fashion-MNIST: Zalando Research's GitHub repository "
                     "zalandoresearch/fashion-mnist, folder data/fashion",
}

_UNSIGNED_BYTE = 0x08


def load_mnist(root: str | os.PathLike, kind: str = "mnist") -> tuple[TensorDataset, TensorDataset]:
    """Load MNIST or Fashion-MNIST from the standard IDX files in ``root``.

    Parameters
    ----------
    root : str or path-like
        The folder that holds ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
        ``t10k-labels-idx1-ubyte``, each either as it is or gzipped with a
        ``.gz`` suffix (as distributed). A plain file is read in preference
        to its ``.gz``.
    kind : {"mnist", "fashion-mnist"}, default "mnist"
        Which data set the folder holds. Both have the same file names and
        format; ``kind`` only changes where the error message says to get
        missing files.

    Returns
    -------
    train, test : TensorDataset
        Samples ``(image, label)``: images float32 in [0, 1] (bytes divided
        by 255) of shape (N, 1, 28, 28) (in general, the rows and columns
        the files' headers give), labels int64 from 0 to 9. MNIST has 60,000
        training and 10,000 test images.

    Raises
    ------
    FileNotFoundError
        Naming every missing file, the folder to put it in, and where to get it.
    ValueError
        If a file is not an IDX file of the expected kind (wrong magic
        number), is truncated or too long, is not valid gzip, or the images
        and labels of a split disagree in number.

    Examples
    --------
    With the four files in ``~/data/mnist``::

        from minidl.data import load_mnist
        train, test = load_mnist("~/data/mnist")
        image, label = train[0]      # image.shape == (1, 28, 28)
    """
    if kind not in SOURCES:
        raise ValueError(f"kind must be one of {sorted(SOURCES)}, got {kind!r}")
    folder = Path(root).expanduser()
    paths = {name: _find(folder, name) for split in FILES.values() for name in split}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        wanted = "\n".join(f"  {folder / name}  (or {name}.gz)" for name in missing)
        raise FileNotFoundError(
            f"load_mnist(kind={kind!r}) needs these files, which are not in {folder}:\n{wanted}\n"
            f"Download them yourself (minidl never downloads): {SOURCES[kind]}. "
            f"Put the four files, gzipped or not, in {folder} and keep their names."
        )
    datasets = []
    image_shape = None
    for images_name, labels_name in FILES.values():
        images = _read_idx(paths[images_name], ndim=3)
        labels = _read_idx(paths[labels_name], ndim=1)
        if len(images) != len(labels):
            raise ValueError(
                f"{paths[images_name]} holds {len(images)} images but {paths[labels_name]} holds "
                f"{len(labels)} labels; they must come from the same split of the same data set"
            )
        if image_shape is not None and images.shape[1:] != image_shape:
            raise ValueError(
                f"the training images are {image_shape[0]}×{image_shape[1]} pixels but "
                f"{paths[images_name]} holds {images.shape[1]}×{images.shape[2]} images"
            )
        image_shape = images.shape[1:]
        pixels = images[:, np.newaxis].astype(np.float32)
        pixels /= 255  # in place: the training images take 188 MB as float32
        datasets.append(TensorDataset(pixels, labels.astype(np.int64)))
    train, test = datasets
    return train, test


def _find(folder: Path, name: str) -> Path | None:
    """The file ``name`` in ``folder``, or its gzipped ``name.gz``, or None."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes with ``ndim`` dimensions, checking its header and size."""
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                raw = f.read()
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise ValueError(
                f"{path} is not a complete gzip file ({err}); download it again"
            ) from err
    else:
        raw = path.read_bytes()
    magic = int.from_bytes(raw[:4], "big")
    expected = _UNSIGNED_BYTE << 8 | ndim
    if magic != expected:
        raise ValueError(
            f"{path} starts with magic number {magic}, but an IDX file of unsigned bytes "
            f"with {ndim} dimension(s) starts with {expected}: is it the right file, "
            "and not an HTML error page?"
        )
    # The magic number and one size per dimension, 4 bytes each.
    header_size = 4 * (1 + ndim)
    if len(raw) < header_size:
        raise ValueError(
            f"{path} is too short ({len(raw)} bytes) to hold an IDX header of {header_size} bytes"
        )
    shape = tuple(int.from_bytes(raw[4 * (i + 1):4 * (i + 2)], "big") for i in range(ndim))
    expected_bytes = header_size + int(np.prod(shape))
    if len(raw) != expected_bytes:
        problem = "truncated" if len(raw) < expected_bytes else "longer than its header says"
        raise ValueError(
            f"{path} is {problem}: its header promises shape {shape}, "
            f"{expected_bytes} bytes in all, but the file has {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)
