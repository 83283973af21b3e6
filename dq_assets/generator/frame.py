"""`Frame`: one landing file being built, string columns plus aligned numpy metadata."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dq_assets.contract import tables as C
from dq_assets.generator.values import _arr, _trim_list


class Frame:
    """One landing file being built: string columns (pyarrow) plus aligned numpy metadata.

    Row positions stay stable until `finalize`; added rows are appended and placed at their
    requested position by a single permutation at the end. `uid` identifies rows for the log.
    """

    def __init__(self, name: str, cols: dict[str, pa.Array], meta: dict[str, np.ndarray]):
        self.name = name
        self.cols = dict(cols)
        self.n = len(next(iter(cols.values())))
        self.meta = {k: np.asarray(v) for k, v in meta.items()}
        self.meta["uid"] = np.arange(self.n, dtype=np.int64)
        self.meta.setdefault("used", np.zeros(self.n, dtype=bool))
        self.meta.setdefault("protected", np.zeros(self.n, dtype=bool))
        self.base_n = self.n
        self.next_uid = self.n
        self.may_quote: set[str] = set()
        self.ws: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # column -> (uids, pad index)
        self._inv: np.ndarray | None = None  # uid -> position cache (after finalize)
        self._inv_n = -1
        self.order = list(cols)  # column order as written

    def get(self, col: str, rows: np.ndarray) -> pa.Array:
        return pc.take(self.cols[col], pa.array(np.asarray(rows, dtype=np.int64)))

    def set(self, col: str, rows: np.ndarray, values: Sequence[str] | pa.Array) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return
        vals = values if isinstance(values, pa.Array) else _arr(values)
        order = np.argsort(rows, kind="stable")
        mask = np.zeros(self.n, dtype=bool)
        mask[rows] = True
        self.cols[col] = pc.replace_with_mask(self.cols[col], pa.array(mask), pc.take(vals, pa.array(order)))
        self.may_quote.add(col)

    def add_rows(self, cols: dict[str, pa.Array], meta: dict[str, np.ndarray], positions: np.ndarray) -> np.ndarray:
        """Append rows; positions[i] = index of the base row they go before (n = at the end)."""
        k = len(next(iter(cols.values())))
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        if "pos" not in self.meta:  # sort key of the final order: base row i -> 2i+1
            self.meta["pos"] = np.arange(self.n, dtype=np.int64) * 2 + 1
        for c in self.cols:
            self.cols[c] = pa.concat_arrays([self.cols[c], cols[c].cast(self.cols[c].type)])
        uids = np.arange(self.next_uid, self.next_uid + k, dtype=np.int64)
        self.next_uid += k
        extra = {"uid": uids, "pos": np.asarray(positions, dtype=np.int64) * 2,
                 "used": np.ones(k, dtype=bool), "protected": np.zeros(k, dtype=bool)}
        for key, arr in self.meta.items():
            add = extra.get(key, meta.get(key))
            if add is None:
                add = np.zeros(k, dtype=arr.dtype)
            self.meta[key] = np.concatenate([arr, np.asarray(add, dtype=arr.dtype)])
        self.n += k
        return uids

    def row_dict(self, rows: np.ndarray) -> dict[str, pa.Array]:
        return {c: self.get(c, rows) for c in self.cols}

    def add_column(self, name: str, values: pa.Array, position: int) -> None:
        self.cols[name] = values
        self.order.insert(position, name)
        self.may_quote.add(name)

    def drop_column(self, name: str) -> None:
        del self.cols[name]
        self.ws.pop(name, None)
        self.order.remove(name)

    def shrink(self) -> None:
        """After writing: keep only what the log needs (key columns and row identities)."""
        key = C.table(self.name).key
        self.cols = {c: a for c, a in self.cols.items() if c in key}
        keep = ("uid", "order", "pos")
        self.meta = {k: v for k, v in self.meta.items() if k in keep}

    def finalize(self) -> None:
        pos = self.meta.get("pos")
        if pos is not None and len(pos) > 1 and np.any(np.diff(pos) < 0):
            perm = np.argsort(pos, kind="stable")
            idx = pa.array(perm)
            for c in list(self.cols):  # one column at a time: bounded extra memory
                self.cols[c] = pc.take(self.cols[c], idx)
            for k in list(self.meta):
                self.meta[k] = self.meta[k][perm]
            self._inv = None
        self._line_of = {}

    def lines(self, uids: Iterable[int]) -> list[int]:
        """1-based physical line numbers (header = line 1) of rows, after finalize."""
        uids = np.asarray(list(uids), dtype=np.int64)
        if len(uids) == 0:
            return []
        u = self.meta["uid"]
        if self._inv is None or len(self._inv) != self.next_uid or self._inv_n != len(u):
            if np.array_equal(u, np.arange(len(u))):
                self._inv = None
                self._inv_n = -1
                return (uids + 2).tolist()
            self._inv = np.full(self.next_uid, -1, dtype=np.int64)
            self._inv[u] = np.arange(len(u))
            self._inv_n = len(u)
        return (self._inv[uids] + 2).tolist()

    def keys(self, uids: Iterable[int]) -> list[dict[str, str]]:
        uids = list(uids)
        lines = self.lines(uids)
        rows = np.array(lines, dtype=np.int64) - 2
        key = C.table(self.name).key
        vals = {k: (_trim_list(self.get(k, rows)) if k in self.cols else [""] * len(rows)) for k in key}
        return [{k: vals[k][i] for k in key} for i in range(len(rows))]
