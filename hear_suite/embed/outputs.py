"""What ``hear-suite embed`` writes, atomically: per input ``DIR/<name>.scene.npy``,
``DIR/<name>.timestamp.npy`` and ``DIR/<name>.timestamps_ms.npy`` (or one ``DIR/<name>.npz`` with
the arrays ``scene``, ``timestamp``, ``timestamps_ms``), and the index of a run, ``index.csv``.

Timestamp embeddings of a streamed file arrive block by block (:class:`TimestampWriter`): they go
to a hidden raw file beside the output and become an ``.npy`` (or an ``.npz`` member) at the end,
copied in pieces, so memory does not grow with the file; a file embedded whole writes its arrays
directly. Every output appears by a rename: an
input whose outputs all exist is done, and an interrupted run loses at most the file in progress.
"""
from __future__ import annotations

import csv
import io
import os
import zipfile
from pathlib import Path
from typing import BinaryIO, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from hear_suite.tasks import write_atomic

FORMATS = ("npy", "npz")
INDEX_COLUMNS = ("path", "output", "duration_s", "sample_rate", "channels", "scene_shape",
                 "timestamp_shape", "status", "error")
COPY_BYTES = 1 << 24


def output_files(out: Path, name: str, fmt: str, *, scene: bool, timestamp: bool
                 ) -> Dict[str, Path]:
    """The files of one input: kind -> path (``npz``: the one archive)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "npz":
        return {"npz": out / f"{name}.npz"}
    files = {"scene": out / f"{name}.scene.npy"} if scene else {}
    if timestamp:
        files.update(timestamp=out / f"{name}.timestamp.npy",
                     timestamps_ms=out / f"{name}.timestamps_ms.npy")
    return files


def is_done(files: Mapping[str, Path]) -> bool:
    return all(p.is_file() for p in files.values())


def _temp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _npy_header(shape: Tuple[int, ...], dtype: np.dtype) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": tuple(shape)})
    return buf.getvalue()


def _write_npy(f: BinaryIO, array: Optional[np.ndarray] = None, *,
               raw: Optional[Path] = None, shape: Tuple[int, ...] = (),
               dtype: np.dtype = np.float32) -> None:
    """An ``.npy`` stream into ``f``: ``array``, or ``shape`` x ``dtype`` values copied from the
    raw file ``raw`` in pieces."""
    if array is not None:
        f.write(_npy_header(array.shape, array.dtype))
        f.write(np.ascontiguousarray(array).tobytes())
        return
    f.write(_npy_header(shape, dtype))
    with open(raw, "rb") as src:
        while chunk := src.read(COPY_BYTES):
            f.write(chunk)


class TimestampWriter:
    """Collects ``(embeddings (k, D), timestamps (k,))`` blocks of one input in raw files beside
    the outputs (:meth:`add`, in order); :func:`write_outputs` turns them into arrays."""

    def __init__(self, out: Path, name: str) -> None:
        self.emb_raw = _temp(out / f"{name}.timestamp.raw")
        self.ts_raw = _temp(out / f"{name}.timestamps_ms.raw")
        self.emb_raw.parent.mkdir(parents=True, exist_ok=True)
        self.emb_file, self.ts_file = open(self.emb_raw, "wb"), open(self.ts_raw, "wb")
        self.rows, self.dim = 0, None

    def add(self, emb, ts) -> None:
        emb = np.ascontiguousarray(emb.detach().cpu().numpy(), dtype=np.float32)
        ts = np.ascontiguousarray(ts.detach().cpu().numpy(), dtype=np.float32)
        if self.dim is not None and emb.shape[1] != self.dim:
            raise ValueError(f"timestamp embeddings changed size: {emb.shape[1]} after {self.dim}")
        self.dim = emb.shape[1]
        self.rows += emb.shape[0]
        self.emb_file.write(emb.tobytes())
        self.ts_file.write(ts.tobytes())

    def close(self) -> None:
        self.emb_file.close()
        self.ts_file.close()

    def discard(self) -> None:
        self.close()
        self.emb_raw.unlink(missing_ok=True)
        self.ts_raw.unlink(missing_ok=True)

    @property
    def shape(self) -> Tuple[int, int]:
        return (self.rows, self.dim or 0)


def write_outputs(files: Mapping[str, Path], *, scene: Optional[np.ndarray],
                  timestamps: Union[None, TimestampWriter, Tuple[np.ndarray, np.ndarray]]
                  ) -> Dict[str, Tuple[int, ...]]:
    """Write one input's outputs, each through a temporary file and a rename. ``timestamps``:
    the blocks of a streamed file (:class:`TimestampWriter`) or the arrays ``(embeddings (T, D),
    timestamps (T,))`` of a file embedded whole. Returns the arrays' shapes."""
    members: Dict[str, dict] = {}
    if scene is not None:
        members["scene"] = dict(array=np.asarray(scene, dtype=np.float32))
    if isinstance(timestamps, TimestampWriter):
        timestamps.close()
        members["timestamp"] = dict(raw=timestamps.emb_raw, shape=timestamps.shape)
        members["timestamps_ms"] = dict(raw=timestamps.ts_raw, shape=(timestamps.rows,))
    elif timestamps is not None:
        members["timestamp"] = dict(array=np.asarray(timestamps[0], dtype=np.float32))
        members["timestamps_ms"] = dict(array=np.asarray(timestamps[1], dtype=np.float32))
    try:
        if "npz" in files:
            _replace(files["npz"], lambda f: _write_npz(f, members))
        else:
            for kind, member in members.items():
                _replace(files[kind], lambda f, m=member: _write_npy(f, **m))
    finally:
        if isinstance(timestamps, TimestampWriter):
            timestamps.discard()
    return {kind: tuple(m["array"].shape if "array" in m else m["shape"])
            for kind, m in members.items()}


def _write_npz(f: BinaryIO, members: Mapping[str, dict]) -> None:
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for kind, member in members.items():
            with z.open(f"{kind}.npy", "w", force_zip64=True) as entry:
                _write_npy(entry, **member)


def _replace(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def array_shapes(files: Mapping[str, Path]) -> Dict[str, Tuple[int, ...]]:
    """Shapes of the arrays of an input's outputs, read from their headers only."""
    shapes = {}
    if "npz" in files:
        with zipfile.ZipFile(files["npz"]) as z:
            for member in z.namelist():
                with z.open(member) as entry:
                    shapes[member[:-4]] = _header_shape(entry)
        return shapes
    for kind, path in files.items():
        with open(path, "rb") as f:
            shapes[kind] = _header_shape(f)
    return shapes


def _header_shape(f: BinaryIO) -> Tuple[int, ...]:
    version = np.lib.format.read_magic(f)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    return tuple(read(f)[0])


def shape_text(shape: Optional[Tuple[int, ...]]) -> str:
    return "" if shape is None else " x ".join(str(s) for s in shape)


def index_name(shard: Tuple[int, int]) -> str:
    i, n = shard
    return "index.csv" if n == 1 else f"index.{i}-of-{n}.csv"


def write_index(out: Path, rows: Sequence[Mapping[str, object]], shard: Tuple[int, int]) -> Path:
    """This run's rows (sorted by output name) in ``index.csv`` or, for shard ``i`` of ``n``,
    ``index.i-of-n.csv``; once every shard's file is there, also their union in ``index.csv``."""
    path = out / index_name(shard)
    write_atomic(path, _csv(sorted(rows, key=lambda r: str(r["output"]))))
    n = shard[1]
    parts = [out / index_name((i, n)) for i in range(n)]
    if n > 1 and all(p.is_file() for p in parts):
        merged: List[Dict[str, str]] = []
        for p in parts:
            with open(p, newline="") as f:
                merged += list(csv.DictReader(f))
        write_atomic(out / "index.csv", _csv(sorted(merged, key=lambda r: r["output"])))
    return path


def _csv(rows: Sequence[Mapping[str, object]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=INDEX_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in INDEX_COLUMNS})
    return buf.getvalue()
