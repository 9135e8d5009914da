"""Data that arrive in pieces: pandas chunks, a parquet file or directory, a dask DataFrame.

A fit needs two or three passes over the rows (:mod:`hiermio.formula.streaming`), each of which maps
every partition to a small summary and combines the summaries. A :class:`DataSource` does exactly
that and nothing else: ``map_reduce(fn, merge)``. Local sources (chunks, parquet) read one
partition at a time, so the driver holds one partition and one running summary; a dask source
runs ``fn`` on its workers (whatever scheduler is active, a ``dask.distributed`` client included)
and combines the summaries by a tree reduction, so only summaries travel.

>>> import pandas as pd
>>> src = as_source([pd.DataFrame({"x": [1., 2]}), pd.DataFrame({"x": [3.]})])
>>> src.map_reduce(lambda f: float(f.x.sum()), lambda a, b: a + b), src.columns
(6.0, ['x'])
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import pandas as pd

from ..core.exceptions import DataError
from ..core.parallel import progress_enabled

__all__ = ["DataSource", "RowsElsewhere", "ChunkSource", "ParquetSource", "DaskSource", "as_source", "is_out_of_core"]

_PARQUET_BATCH_ROWS = 1 << 18  # rows per partition read from parquet: about 25 MB for 12 float columns


class DataSource:
    """Partitions of one data set, each a pandas frame with the same columns."""

    description: str = "data"

    @property
    def columns(self) -> list[str]:
        raise NotImplementedError

    def partitions(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """Every partition in turn (only ``columns`` when given), on this process."""
        raise NotImplementedError

    def map_reduce(self, fn: Callable[[pd.DataFrame], Any], merge: Callable[[Any, Any], Any],
                   columns: list[str] | None = None, desc: str = "pass over the data", progress: bool | None = None) -> Any:
        """``fn`` of every partition, combined by ``merge`` (associative); a running sum locally."""
        out = None
        parts = self.partitions(columns)
        bar = None
        if progress_enabled(progress):
            from tqdm.auto import tqdm

            bar = parts = tqdm(parts, desc=desc, unit="partition", leave=False)
        try:
            for frame in parts:
                if len(frame) == 0:
                    continue
                s = fn(frame)
                out = s if out is None else merge(out, s)
        finally:
            if bar is not None:
                bar.close()
        if out is None:
            raise DataError(f"{self.description} has no rows")
        return out

    def first(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The first partition with rows."""
        for frame in self.partitions(columns):
            if len(frame):
                return frame
        raise DataError(f"{self.description} has no rows")


@dataclass
class RowsElsewhere(DataSource):
    """The rows of a subset (a cross-validation fold, a half-sample) that only its statistics describe."""

    description: str

    @property
    def columns(self) -> list[str]:
        return []

    def partitions(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        raise DataError(f"{self.description}: only the sufficient statistics of these rows were kept, not the rows")


@dataclass
class ChunkSource(DataSource):
    """pandas frames: a list (or any re-iterable collection), or a function returning a fresh iterator."""

    chunks: Any
    description: str = "the chunks"

    def _iter(self) -> Iterator[pd.DataFrame]:
        it = self.chunks() if callable(self.chunks) else iter(self.chunks)
        for i, frame in enumerate(it):
            if not isinstance(frame, pd.DataFrame):
                raise DataError(f"chunk {i} of the data is a {type(frame).__name__}, not a pandas DataFrame")
            yield frame

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.first().columns]

    def partitions(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        for frame in self._iter():
            yield frame if columns is None else frame[columns]


@dataclass
class ParquetSource(DataSource):
    """A parquet file or a directory of them (a dataset), read in record batches of the columns used."""

    path: str
    batch_rows: int = _PARQUET_BATCH_ROWS

    def __post_init__(self) -> None:
        try:
            import pyarrow.dataset as ds
        except ImportError as exc:  # pragma: no cover - pyarrow is part of the "big" extra
            raise DataError("reading parquet needs pyarrow: pip install 'hiermio[big]'") from exc
        if not os.path.exists(self.path):
            raise DataError(f"no parquet file or directory at {self.path!r}")
        try:
            self._dataset = ds.dataset(self.path, format="parquet")
        except Exception as exc:
            raise DataError(f"{self.path!r} is not a parquet file or a directory of parquet files: {exc}") from exc
        self.description = f"parquet data {self.path!r}"

    def __getstate__(self) -> dict:
        return {"path": self.path, "batch_rows": self.batch_rows}

    def __setstate__(self, state: dict) -> None:
        self.path, self.batch_rows = state["path"], state["batch_rows"]
        self.__post_init__()

    @property
    def columns(self) -> list[str]:
        return list(self._dataset.schema.names)

    def partitions(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        import pyarrow.parquet as pq

        offset = 0
        # one file at a time, decoded on this thread with no read-ahead: the dataset scanner keeps
        # several row groups in flight on its threads, which made the driver's memory grow with the
        # number of files (1e6 rows in one file: 652 MB; 1e7 in ten: 1,007 MB)
        for fragment in self._dataset.get_fragments():
            with pq.ParquetFile(fragment.path, pre_buffer=False) as reader:
                for batch in reader.iter_batches(batch_size=self.batch_rows, columns=columns, use_threads=False):
                    frame = batch.to_pandas()
                    frame.index = pd.RangeIndex(offset, offset + len(frame))  # row numbers of the whole data set
                    offset += len(frame)
                    yield frame


@dataclass
class DaskSource(DataSource):
    """A dask DataFrame: the passes run where dask runs them; only summaries come back."""

    frame: Any
    description: str = "the dask DataFrame"

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def partitions(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        f = self.frame if columns is None else self.frame[columns]
        for i in range(f.npartitions):
            yield f.get_partition(i).compute()

    def map_reduce(self, fn: Callable[[pd.DataFrame], Any], merge: Callable[[Any, Any], Any],
                   columns: list[str] | None = None, desc: str = "pass over the data", progress: bool | None = None) -> Any:
        import dask

        f = self.frame if columns is None else self.frame[columns]

        def summary(part: pd.DataFrame) -> Any:
            return fn(part) if len(part) else None

        def combine(a: Any, b: Any) -> Any:
            return b if a is None else a if b is None else merge(a, b)

        level = [dask.delayed(summary)(p) for p in f.to_delayed()]
        while len(level) > 1:  # a tree reduction: pairs of summaries merge where they were made
            level = [dask.delayed(combine)(*level[i:i + 2]) if i + 1 < len(level) else level[i]
                     for i in range(0, len(level), 2)]
        if progress_enabled(progress) and _local_scheduler():
            from dask.diagnostics import ProgressBar

            with ProgressBar():
                out = level[0].compute()
        else:
            out = level[0].compute()
        if out is None:
            raise DataError(f"{self.description} has no rows")
        return out


def _local_scheduler() -> bool:
    try:
        from distributed import default_client

        default_client()
        return False
    except (ImportError, ValueError):
        return True


def is_out_of_core(data: Any) -> bool:
    """True for anything :func:`as_source` takes that is not a pandas frame.

    >>> import pandas as pd
    >>> is_out_of_core(pd.DataFrame({"x": [1]})), is_out_of_core("discharges/"), is_out_of_core([pd.DataFrame()])
    (False, True, True)
    """
    return not isinstance(data, pd.DataFrame) and (
        isinstance(data, (str, os.PathLike, DataSource, list, tuple)) or callable(data) or _is_dask(data)
        or isinstance(data, Iterable) and not isinstance(data, (dict, bytes)))


def _is_dask(data: Any) -> bool:
    mod = type(data).__module__
    return mod.startswith("dask") and hasattr(data, "npartitions") and hasattr(data, "to_delayed")


def as_source(data: Any) -> DataSource:
    """A :class:`DataSource` for a dask DataFrame, a parquet path, a list of frames or a function
    returning an iterator of frames.

    A one-shot iterator (a generator, ``pd.read_csv(..., chunksize=)``) cannot be read twice, and
    a fit reads its data two or three times: wrap it in a function that makes a fresh one.
    """
    if isinstance(data, DataSource):
        return data
    if _is_dask(data):
        if not hasattr(data, "columns"):
            raise DataError("a dask Series is not a data frame; pass the dask DataFrame that holds the model's columns")
        return DaskSource(data)
    if isinstance(data, (str, os.PathLike)):
        return ParquetSource(os.fspath(data))
    if isinstance(data, (list, tuple)):
        if not data:
            raise DataError("the list of chunks is empty")
        return ChunkSource(data)
    if callable(data):
        return ChunkSource(data, description="the chunks of the function given as data")
    if isinstance(data, Iterator):
        raise DataError(f"data is a one-shot iterator ({type(data).__name__}), but a fit reads its data two or three "
                        "times: pass a function that returns a fresh iterator, e.g. "
                        "data=lambda: pd.read_csv(path, chunksize=100_000), or a list of frames")
    if isinstance(data, Iterable) and not isinstance(data, (dict, bytes)):
        return ChunkSource(data)
    raise DataError(f"data must be a pandas DataFrame, a dask DataFrame, a parquet path, a list of pandas frames or "
                    f"a function returning an iterator of them; got {type(data).__name__}")
