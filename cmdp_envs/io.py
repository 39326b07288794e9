"""Reading and writing result files.

Writes go to a temporary name beside the target and are then renamed (atomic on POSIX and Windows for files on one
filesystem), so an interrupted run never leaves half a file. Reads check what they read and raise
:class:`UnreadableFileError` naming the file and what is wrong with it; ``.npz`` files are read without unpickling.
"""

from __future__ import annotations

import json
import os
import secrets
import zipfile
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "atomic_write",
    "write_json",
    "write_csv",
    "save_figure",
    "UnreadableFileError",
    "read_json",
    "check_json_fields",
    "read_npz",
]

# Local file headers start an archive with entries; an archive without entries is only its end-of-directory record.
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_SIGNATURE = b"\x93NUMPY"
# int, uint and float: the only dtypes a saved policy or network holds.
_NUMERIC_KINDS = "iuf"


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``.

    The file gets the permissions the user's umask gives any new file (``0o666 & ~umask``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # Not tempfile.mkstemp: it creates files 0600 whatever the umask, and the rename would keep that mode. Creating
    # the file with mode 0o666 lets the kernel apply the umask, without the race of reading it with os.umask.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """``data`` as indented JSON at ``path``, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    return atomic_write(path, lambda file: file.write(text.encode()))


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """``rows`` (dicts with the same keys) as CSV with a header line at ``path``, atomically."""
    import csv
    import io

    text = io.StringIO()
    if rows:
        writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return atomic_write(path, lambda file: file.write(text.getvalue().encode()))


def save_figure(figure: Any, path: str | os.PathLike, dpi: int = 120) -> Path:
    """A matplotlib figure as PNG at ``path``, atomically."""
    return atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=dpi, bbox_inches="tight"))


class UnreadableFileError(ValueError):
    """A file exists but does not hold what it should. The message is ``"<path>: <reason>"``.

    :param path: the file.
    :param reason: what is wrong with it.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in ``path``.

    Raises ``FileNotFoundError`` when the file is missing and :class:`UnreadableFileError` when it is empty, not UTF-8
    or not valid JSON.
    """
    data = Path(path).read_bytes()
    if not data:
        raise UnreadableFileError(path, "empty file (0 bytes), expected JSON")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnreadableFileError(path, f"not UTF-8 text (byte {data[error.start]:#04x} at offset {error.start}), "
                                        "expected JSON") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UnreadableFileError(path, f"not valid JSON: {error}") from error


def check_json_fields(path: str | os.PathLike, where: str, value: Any,
                      fields: Mapping[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """``value`` (read from the JSON of ``path``) if it is an object holding every key of ``fields`` with a value of
    its type(s), else :class:`UnreadableFileError` naming ``path``, ``where`` in it (``"policy_values[3]"``) and the
    bad key. JSON ``true`` and ``false`` load as bools, which Python counts as ints: they pass only for ``bool``."""
    if not isinstance(value, dict):
        raise UnreadableFileError(path, f"{where} must be a JSON object with keys {sorted(fields)}, got a "
                                        f"{type(value).__name__}")
    missing = sorted(set(fields) - set(value))
    if missing:
        raise UnreadableFileError(path, f"{where} misses the key(s) {missing}")
    for key, kind in fields.items():
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value[key], kinds) or (isinstance(value[key], bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise UnreadableFileError(path, f"{where}: {key!r} must be a JSON {names}, got {value[key]!r}")
    return value


def read_npz(path: str | os.PathLike, text_keys: Collection[str] = ()) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` archive ``path``, by name, read without unpickling (``allow_pickle=False``).

    Arrays must have an int, uint or float dtype, except those named in ``text_keys``, which must be strings (a JSON
    header, say). Raises ``FileNotFoundError`` when the file is missing and :class:`UnreadableFileError` when it is
    not an ``.npz`` archive (empty, a bare ``.npy`` array, other bytes), is truncated or damaged, or holds an array
    of another dtype.
    """
    with open(path, "rb") as file:
        signature = file.read(len(_NPY_SIGNATURE))
    if not signature:
        raise UnreadableFileError(path, "empty file (0 bytes), expected an .npz archive")
    if signature.startswith(_NPY_SIGNATURE):
        raise UnreadableFileError(path, "a single .npy array, not an .npz archive")
    # numpy would try any other bytes as a pickle and, with pickling off, report "pickled data": check first.
    if signature[:4] not in _ZIP_SIGNATURES:
        raise UnreadableFileError(path, f"not an .npz archive (starts with {signature[:4]!r}, not a zip signature)")
    arrays: dict[str, Any] = {}
    key = None
    try:
        with np.load(path, allow_pickle=False) as archive:
            for key in archive.files:
                arrays[key] = archive[key]
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise UnreadableFileError(path, f"a damaged or truncated .npz archive ({error})") from error
    except ValueError as error:
        if "allow_pickle" in str(error):
            reason = f"array {key!r} has dtype object (reading it would unpickle), expected an int, uint or float dtype"
        else:
            reason = f"array {key!r} has a malformed header ({error})"
        raise UnreadableFileError(path, reason) from error
    for key, array in arrays.items():
        _check_array(path, key, array, key in text_keys)
    return arrays


def _check_array(path: str | os.PathLike, key: str, array: Any, text: bool) -> None:
    # NpzFile returns the raw bytes of a zip entry that is not a .npy file.
    if not isinstance(array, np.ndarray):
        raise UnreadableFileError(path, f"entry {key!r} of the archive is not a .npy array")
    if text:
        if array.dtype.kind != "U":
            raise UnreadableFileError(path, f"array {key!r} has dtype {array.dtype}, expected a string")
    elif array.dtype.kind not in _NUMERIC_KINDS:
        raise UnreadableFileError(path, f"array {key!r} has dtype {array.dtype}, expected an int, uint or float dtype")
