"""Valid-looking drift: data every row-level rule accepts, with a changed distribution
(null_share, unit_change, vanished_value). Each draws from its own random stream, so a day
that requests none of them is generated exactly as before, and the other defects of a day
that does are drawn as without it."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc

from dq_assets.contract import tables as C
from dq_assets.generator.constants import (
    EVENT_TYPE_W,
    EVENTS,
    ORDER_ITEMS,
    ORDER_STATUS_W,
    ORDERS,
    PAYMENT_METHOD_W,
    PAYMENTS,
    PLATFORM_W,
)
from dq_assets.generator.defects import DEFAULT_FACTOR, DEFAULT_RATE, MONEY_COLUMNS, DefectError, _Task
from dq_assets.generator.frame import Frame
from dq_assets.generator.values import _rng, _weights

DRIFT_STREAM = 3  # _rng(seed, day, 3, ...): the drift kinds' own streams
# (table, ENUM column) -> numeric array of the day's rows, and the column's usual weights
# (None: the day's own frequencies of the other values)
ENUM_ARRAYS = {(ORDERS, "status"): "status", (PAYMENTS, "method"): "method", (PAYMENTS, "status"): "status",
               (EVENTS, "event_type"): "type", (EVENTS, "platform"): "platform"}
ENUM_WEIGHTS = {(ORDERS, "status"): ORDER_STATUS_W, (PAYMENTS, "method"): PAYMENT_METHOD_W,
                (EVENTS, "event_type"): EVENT_TYPE_W, (EVENTS, "platform"): PLATFORM_W}
# money above this (in cents) times the factor would leave int64 (and near the contract's 10^18)
MAX_CENTS = 9 * 10**18


class Drift:
    """Drift kinds. Mixed into `_Day` (day.py), whose attributes it uses: cfg, d, injected,
    money_factor, vanished."""

    def drift_rng(self, table: str, purpose: int) -> np.random.Generator:
        return _rng(self.cfg.seed, self.d, DRIFT_STREAM, C.TABLE_NAMES.index(table), purpose)

    def drift(self, tasks: list[_Task], o, it, pay, ev):
        """unit_change and vanished_value on the numeric rows, before formatting. Returns
        (orders, items, payments, events) to write; changed arrays are copies, so `o` (the
        run's state for the next days) is left as it was."""
        o, it, pay = dict(o), dict(it), dict(pay)
        for t in tasks:
            if t.kind == "unit_change":
                self._unit_change(t, o, it, pay)
        for t in tasks:
            if t.kind == "vanished_value":
                rows = {ORDERS: o, PAYMENTS: pay, EVENTS: ev}[t.table]
                self._vanished_value(t, rows)
        return o, it, pay, ev

    def _unit_change(self, t: _Task, o, it, pay) -> None:
        factor = int(t.param) if t.param is not None else DEFAULT_FACTOR["unit_change"]
        arrays = {ORDERS: (o, ("amount",)), ORDER_ITEMS: (it, ("price", "line")), PAYMENTS: (pay, ("amount",))}
        for rows, keys in arrays.values():
            for k in keys:
                top = int(np.abs(rows[k]).max()) if len(rows[k]) else 0
                if top * factor * self.money_factor >= MAX_CENTS:
                    raise DefectError(f"{self.d} {t.spec}: a money amount x{factor} would leave the supported range")
        for rows, keys in arrays.values():
            for k in keys:
                rows[k] = rows[k] * factor
        self.money_factor *= factor
        counts = {tname: len(rows[keys[0]]) for tname, (rows, keys) in arrays.items()}
        self.injected.append({"kind": "unit_change", "table": "*", "factor": factor,
                              "columns": [f"{tn}.{c}" for tn, cs in MONEY_COLUMNS.items() for c in cs],
                              "tables": counts, "count": sum(counts.values()), "spec": t.spec})

    def _vanished_value(self, t: _Task, rows) -> None:
        column, _, value = t.option.partition(".")
        key = (t.table, column)
        if key not in ENUM_ARRAYS:
            raise DefectError(f"{self.d} {t.spec}: the generator does not draw {t.table}.{column}")
        values = list(C.table(t.table).column(column).values)
        arr = rows[ENUM_ARRAYS[key]]
        gone = values.index(value)
        mask = arr == gone
        if key in ENUM_WEIGHTS:
            p = _weights(values, ENUM_WEIGHTS[key])
        else:
            p = np.bincount(arr, minlength=len(values)).astype(float) + 1.0
        p[gone] = 0.0
        p = p / p.sum()
        r = self.drift_rng(t.table, 1 + C.table(t.table).column_names.index(column))
        new = arr.copy()
        if key == (EVENTS, "platform"):  # a session keeps one platform
            sess, inv = np.unique(rows["sess"][mask], return_inverse=True)
            new[mask] = r.choice(len(values), len(sess), p=p).astype(arr.dtype)[inv]
        else:
            new[mask] = r.choice(len(values), int(mask.sum()), p=p).astype(arr.dtype)
        rows[ENUM_ARRAYS[key]] = new
        self.vanished[key] = value
        moved = np.bincount(new[mask], minlength=len(values))
        self.injected.append({"kind": "vanished_value", "table": t.table, "column": column, "value": value,
                              "replaced_by": {v: int(n) for v, n in zip(values, moved) if n},
                              "count": int(mask.sum()), "spec": t.spec})

    def null_share(self, t: _Task, f: Frame) -> None:
        """Blank the nullable column in a further share of the rows (after the row defects:
        only rows that carry none, and not the protected ones, are chosen)."""
        rate = float(t.param) if t.param is not None else DEFAULT_RATE["null_share"]
        col = t.option
        blank = pc.equal(pc.utf8_trim(f.cols[col], characters=" \t\r\n"), "").to_numpy(zero_copy_only=False)
        before = int(blank.sum())
        ok = (np.arange(f.n) < f.base_n) & ~blank & ~f.meta["used"] & ~f.meta["protected"]
        cand = np.flatnonzero(ok)
        k = min(round(rate * f.n), len(cand))
        r = self.drift_rng(t.table, 100 + C.table(t.table).column_names.index(col))
        rows = np.sort(r.choice(cand, k, replace=False))
        f.set(col, rows, [""] * k)
        self.injected.append({"kind": "null_share", "table": t.table, "column": col, "rate": rate,
                              "count": int(k), "table_rows": f.n, "null_before": before, "null_after": before + int(k),
                              "spec": t.spec})
