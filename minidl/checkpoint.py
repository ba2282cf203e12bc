"""Save and load training state: nested dicts of arrays and numbers, in one ``.npz`` file.

A checkpoint is a NumPy ``.npz`` archive (a zip of ``.npy`` files). Every
array is one entry; the structure of the state (dicts, lists, tuples) and
every Python scalar go into one more entry, a JSON *manifest* stored as
bytes. The manifest is a tree in which each dict, list, tuple, array and
NumPy scalar is a one-key object that says what it is::

    {"dict": {"epoch": 3, "lr": 0.1, "betas": {"tuple": [0.9, 0.999]},
              "weight": {"array": "array_0"}}}

Numbers, bools, strings and None are written as JSON itself (which keeps
Python's integers exact however large, as a generator's 128-bit state
needs). Loading uses ``np.load(..., allow_pickle=False)`` and ``json``:
neither can run code, so opening a checkpoint from someone else is safe,
unlike a pickle.

Writes are atomic: the archive goes to a temporary file in the same folder,
is flushed to disk, and then renamed over ``path`` in one step, so a crash
leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
import zipfile
from typing import Any

import numpy as np

from minidl.autograd.tensor import Tensor

#: Name of the manifest entry inside the archive.
MANIFEST = "__minidl_checkpoint__"
#: Increased whenever the manifest changes in a way an older minidl could not read.
FORMAT_VERSION = 1

_SUPPORTED = ("dicts with string keys, lists, tuples, NumPy arrays and scalars, Tensors, "
              "int, float, bool, str and None")


def save(state: Any, path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` as a checkpoint, atomically.

    Parameters
    ----------
    state : dict or any other supported value
        Usually a dict such as ``{"model": model.state_dict(), "optimizer":
        optimizer.state_dict(), "epoch": 3}``. Any nesting of dicts with
        string keys, lists and tuples, holding NumPy arrays (any dtype but
        object), NumPy scalars, Tensors (their data is saved, as an array),
        ints, floats, bools, strings and None.
    path : str or path-like
        The file to write, exactly as named (no suffix is added). The
        folder must exist. An existing file is replaced only once the new
        one is complete.

    Raises
    ------
    TypeError
        Naming the entry (e.g. ``state['optimizer']['state']``) that holds a
        value of an unsupported type or a dict key that is not a string.
        Nothing is written then.
    FileNotFoundError
        If the folder of ``path`` does not exist.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import minidl
    >>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt")
    >>> minidl.save({"epoch": 3, "w": np.arange(3.0), "betas": (0.9, 0.999)}, path)
    >>> minidl.load(path)
    {'epoch': 3, 'w': array([0., 1., 2.]), 'betas': (0.9, 0.999)}
    """
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(state, "state", arrays)
    manifest = json.dumps({"format": "minidl checkpoint", "version": FORMAT_VERSION, "state": tree})
    arrays[MANIFEST] = np.frombuffer(manifest.encode("utf-8"), dtype=np.uint8)

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"cannot save the checkpoint {path!r}: the folder {folder!r} does not exist"
        )
    # Same folder, so the rename stays within one file system and is atomic.
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        # Mode "x" never overwrites a file, and the new file gets the usual
        # permissions (those the umask allows), where tempfile.mkstemp's would be 0600.
        with open(temporary, "xb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        # Whatever went wrong (a full disk, Ctrl-C), leave no half-written file behind.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_folder(folder)


def load(path: str | os.PathLike) -> Any:
    """Read a checkpoint written by :func:`save`.

    Parameters
    ----------
    path : str or path-like
        The checkpoint file.

    Returns
    -------
    object
        The saved state: the same dicts (plain ``dict``, in the saved order),
        lists, tuples, scalars and arrays. Tensors come back as NumPy arrays.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is not a minidl checkpoint, or is damaged.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}: there is no such file")
    # Open the file here rather than in np.load, which leaves its own handle
    # open when the file turns out not to be a zip archive.
    with open(path, "rb") as f:
        try:
            archive = np.load(f, allow_pickle=False)
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
            # NumPy's own message here suggests unpickling the file: not advice to follow.
            raise ValueError(
                f"{_not_ours(path)}: it is not an .npz archive, or it is truncated"
            ) from err
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError(f"{_not_ours(path)}: it holds a single array, as np.save writes")
        with archive:
            return _decode(_manifest(archive, path)["state"], archive, path)


def _not_ours(path: str) -> str:
    """The start of the error message for a file that is not a checkpoint."""
    return f"{path!r} is not a minidl checkpoint (one written by minidl.save)"


def _manifest(archive: np.lib.npyio.NpzFile, path: str) -> dict[str, Any]:
    """Read and check the archive's manifest."""
    if MANIFEST not in archive.files:
        raise ValueError(f"{_not_ours(path)}: it is an .npz archive without a {MANIFEST!r} entry")
    try:
        manifest = json.loads(_entry(archive, MANIFEST, path).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path!r} is damaged: its manifest is not valid JSON") from err
    if not (isinstance(manifest, dict) and manifest.get("format") == "minidl checkpoint"
            and "state" in manifest):
        raise ValueError(f"{_not_ours(path)}: its {MANIFEST!r} entry is not a minidl manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path!r} is a checkpoint of format version {manifest.get('version')}, "
                         f"this minidl reads version {FORMAT_VERSION}")
    return manifest


def _encode(value: Any, where: str, arrays: dict[str, np.ndarray]) -> Any:
    """Turn ``value`` into a manifest node, moving its arrays into ``arrays``.

    ``where`` is the value's address, such as ``state['model']['fc.weight']``,
    for error messages.
    """
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, (np.ndarray, np.generic)):
        if value.dtype.hasobject:
            raise TypeError(f"cannot save {where}: arrays of Python objects need pickle, which a "
                            f"checkpoint never uses (got dtype {value.dtype})")
        name = f"array_{len(arrays)}"
        arrays[name] = np.asarray(value)
        return {"array" if isinstance(value, np.ndarray) else "scalar": name}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"cannot save {where}: dict keys must be strings, this one has the "
                                f"{type(key).__name__} key {key!r}")
        return {
            "dict": {key: _encode(item, f"{where}[{key!r}]", arrays) for key, item in value.items()}
        }
    if isinstance(value, (list, tuple)):
        kind = "tuple" if isinstance(value, tuple) else "list"
        return {kind: [_encode(item, f"{where}[{i}]", arrays) for i, item in enumerate(value)]}
    raise TypeError(
        f"cannot save {where}: values of type {type(value).__name__} are not supported; "
        f"a checkpoint holds {_SUPPORTED}"
    )


def _decode(node: Any, archive: np.lib.npyio.NpzFile, path: str) -> Any:
    """Rebuild a value from its manifest node, reading arrays from ``archive``."""
    if not isinstance(node, dict):
        return node
    if len(node) != 1:
        raise ValueError(f"{path!r} is damaged: a manifest node has keys {sorted(node)}")
    (kind, content), = node.items()
    if kind == "dict":
        return {key: _decode(item, archive, path) for key, item in content.items()}
    if kind == "list":
        return [_decode(item, archive, path) for item in content]
    if kind == "tuple":
        return tuple(_decode(item, archive, path) for item in content)
    if kind in ("array", "scalar"):
        array = _entry(archive, content, path)
        # A NumPy scalar was stored as a 0-d array; [()] turns it back into the scalar.
        return array if kind == "array" else array[()]
    raise ValueError(f"{path!r} is damaged: unknown manifest node {kind!r}")


def _entry(archive: np.lib.npyio.NpzFile, name: str, path: str) -> np.ndarray:
    """Read one array of the archive, turning the ways a damaged file fails into one clear error."""
    if name not in archive.files:
        raise ValueError(
            f"{path!r} is damaged: its manifest names the entry {name!r}, which is missing"
        )
    try:
        return archive[name]
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path!r} is damaged: its entry {name!r} cannot be read ({err})") from err


def _fsync_folder(folder: str) -> None:
    """Flush the folder's entry for the renamed file to disk, where the OS allows it.

    The rename is atomic, but until the folder itself is synced a power cut
    could forget it (POSIX). Windows cannot open a folder this way, so the
    step is skipped there.
    """
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
