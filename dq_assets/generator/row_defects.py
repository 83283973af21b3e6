"""Row-level defects in the formatted frames: one defect per injected row, each logged with
its value (bad values, unknown references as added rows, exact and older duplicates)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dq_assets.contract import tables as C
from dq_assets.generator.constants import (
    BAD_COUNTRIES,
    BAD_CURRENCIES,
    BAD_DURATIONS,
    BAD_EMAILS,
    BAD_ENUMS,
    BAD_INTEGERS,
    BAD_TIMESTAMPS,
    CURRENCIES,
    CUSTOMERS,
    DAY,
    DIMENSIONS,
    FUTURE_DAYS,
    ORDER_ITEMS,
    ORDERS,
    PAYMENTS,
    UTC,
)
from dq_assets.generator.defects import DefectError, _Task
from dq_assets.generator.frame import Frame
from dq_assets.generator.values import (
    _NUM_RE,
    _arr,
    _trim_list,
    fixed_ids,
    money,
    money_str,
    timestamps,
    ts_str,
)


class RowDefects:
    """Row-level injections. Mixed into `_Day` (day.py), whose attributes it uses: cfg, state, i, d, ds, de, tag,
    rng_base, rng_def, injected, frames, used_orders."""

    def _candidates(self, t: _Task) -> np.ndarray:
        f = self.frames[t.table]
        base = np.arange(f.n) < f.base_n
        ok = base & ~f.meta["used"] & ~f.meta["protected"]
        if t.table in (ORDERS, ORDER_ITEMS, PAYMENTS):
            ords = f.meta["order"]
            ok &= ~self.used_orders[ords]
        if t.table == PAYMENTS and t.kind not in ("duplicate",):
            ok &= f.meta["status"] == C.PAYMENT_STATUSES.index("failed")
        if t.table in DIMENSIONS:
            pref = ok & ~f.meta["depended"]
            if pref.sum() >= max(t.count, 1):
                ok = pref
        return np.flatnonzero(ok)

    def _pick(self, t: _Task) -> np.ndarray:
        f = self.frames[t.table]
        r = self.rng_def
        if t.table == PAYMENTS and t.kind != "duplicate":
            rows = np.flatnonzero((f.meta["reserve"] == t.rid) & (np.arange(f.n) < f.base_n))
            assert len(rows) == t.count, (t, len(rows))
            f.meta["used"][rows] = True
            return rows
        cand = self._candidates(t)
        if t.table in (ORDERS, ORDER_ITEMS, PAYMENTS):
            perm = r.permutation(cand)
            _, first = np.unique(f.meta["order"][perm], return_index=True)
            cand = perm[np.sort(first)]
            if len(cand) < t.count:
                raise DefectError(f"{self.d} {t.spec}: only {len(cand)} {t.table} rows can carry it")
            rows = np.sort(cand[: t.count])
            self.used_orders[f.meta["order"][rows]] = True
        else:
            if len(cand) < t.count:
                raise DefectError(f"{self.d} {t.spec}: only {len(cand)} {t.table} rows can carry it")
            rows = np.sort(r.choice(cand, t.count, replace=False))
        f.meta["used"][rows] = True
        return rows

    def row_defect(self, t: _Task) -> None:
        f = self.frames[t.table]
        entry = {"kind": t.kind, "table": t.table, "column": t.option, "count": 0, "spec": t.spec}
        if t.kind == "duplicate":
            entry.pop("column")
            entry["variant"] = t.option
        self.injected.append(entry)
        if t.count == 0:
            entry["rows"] = []
            return
        r = self.rng_def
        if t.kind == "unknown_reference" and (t.table, t.option) in ((PAYMENTS, "order_id"), (ORDER_ITEMS, "order_id")):
            uids = self._ghost_rows(t, f)
            entry["count"] = len(uids)
            vals = pc.utf8_trim(self._value_of(f, t.option, uids), characters=" ").to_pylist()
            self.log_rows(entry, t.table, uids, {u: {"value": v} for u, v in zip(uids, vals)})
            return
        if t.kind == "duplicate":
            self._duplicates(t, f, entry)
            return
        rows = self._pick(t)
        col = C.table(t.table).column(t.option)
        values = self._bad_values(t, f, col, rows, r)
        f.set(t.option, rows, values)
        entry["count"] = len(rows)
        uids = f.meta["uid"][rows]
        self.log_rows(entry, t.table, uids, {int(u): {"value": v} for u, v in zip(uids, values)})

    def _value_of(self, f: Frame, col: str, uids) -> pa.Array:
        pos = np.searchsorted(f.meta["uid"], uids)  # uids sorted ascending before finalize
        return f.get(col, pos)

    def _bad_values(self, t: _Task, f: Frame, col: C.Column, rows: np.ndarray, r) -> list[str]:
        k, n = t.kind, len(rows)
        cyc = lambda opts: [opts[i % len(opts)] for i in range(n)]  # noqa: E731
        meta_ts = {"signup_ts": "signup", "updated_at": "updated", "order_ts": "order_ts",
                   "payment_ts": "ts", "event_ts": "ts"}
        if k == "missing_required":
            return cyc(["", "", "  "])
        if k == "unparseable":
            if col.kind == C.TIMESTAMP:
                secs = f.meta[meta_ts[col.name]][rows]
                return [datetime.fromtimestamp(int(s), UTC).strftime(BAD_TIMESTAMPS[i % 3]) for i, s in enumerate(secs)]
            if col.kind == C.DECIMAL:
                cur = _trim_list(f.get(col.name, rows))
                out = []
                for i, v in enumerate(cur):
                    m = _NUM_RE.match(v.lstrip("+"))
                    ip, fp = (m.group(2), (m.group(3) or "00")) if m else ("12", "50")
                    out.append([f"{ip},{fp}", f"€{ip}.{fp}", f"{ip}.{fp} EUR"][i % 3])
                return out
            return cyc(BAD_DURATIONS if col.name == "duration_ms" else BAD_INTEGERS)
        if k == "invalid_value":
            if col.kind == C.EMAIL:
                return cyc(BAD_EMAILS)
            if col.kind == C.COUNTRY:
                return cyc(BAD_COUNTRIES)
            if col.kind == C.CURRENCY:
                return cyc(BAD_CURRENCIES)
            return cyc(BAD_ENUMS[col.name])
        if k == "out_of_range":
            if col.name == "duration_ms":
                return cyc(["90000000", "-1", "86400001"])
            cents = {"unit_price": "price", "amount": "order_amount" if t.table == PAYMENTS else "amount"}
            c = f.meta[cents[col.name]][rows]
            return [money_str(-max(int(x), 1)) for x in c]
        if k == "future_timestamp":
            secs = self.ds + FUTURE_DAYS * DAY + r.integers(0, DAY, n)
            return [ts_str(int(s), 0) for s in secs]
        if k == "unknown_reference":
            g = r.integers(1, 10**6, n)
            if t.option == "customer_id":
                return [f"CZ{x:06d}" for x in g]
            if t.option == "product_id":
                return [f"PZ{x % 10**4:04d}" for x in g]
        raise DefectError(f"{t.spec}: cannot inject {k} into {t.table}.{col.name}")

    def _ghost_rows(self, t: _Task, f: Frame) -> np.ndarray:
        """New rows referencing orders that never existed (payments / order_items)."""
        r = self.rng_def
        k = t.count
        ghosts = _arr(f"OZ{self.tag}-{x:06d}" for x in r.integers(1, 10**6, k))
        if t.table == PAYMENTS:
            cents = r.integers(500, 20000, k) * self.money_factor  # unit_change: 1 unless requested
            base = f.base_n
            ids = fixed_ids("PAY" + self.tag + "-", np.arange(base + 1, base + k + 1) + 10**self.cfg.payment_width // 2,
                            self.cfg.payment_width)
            cols = {"payment_id": ids, "order_id": ghosts,
                    "payment_ts": timestamps(self.ds + r.integers(0, DAY, k), 0),
                    "method": _arr(self._not_vanished(PAYMENTS, "method", C.PAYMENT_METHODS[0]) for _ in range(k)),
                    "status": _arr(self._not_vanished(PAYMENTS, "status", "captured") for _ in range(k)),
                    "amount": money(cents), "currency": _arr(CURRENCIES[0] for _ in range(k))}
        else:
            prod = r.integers(0, self.state.products.n, k)
            price = self.state.products.cols["price"][prod] * self.money_factor
            cols = {"order_id": ghosts, "line_no": _arr("1" for _ in range(k)),
                    "product_id": fixed_ids("P", prod + 1, 5), "quantity": _arr("1" for _ in range(k)),
                    "unit_price": money(price), "line_amount": money(price)}
        return f.add_rows(cols, {}, r.integers(0, f.base_n + 1, k))

    def _not_vanished(self, table: str, column: str, value: str) -> str:
        """value, or the first other accepted value when vanished_value removed it today."""
        if self.vanished.get((table, column)) != value:
            return value
        return next(v for v in C.table(table).column(column).values if v != value)

    def _duplicates(self, t: _Task, f: Frame, entry: dict) -> None:
        r = self.rng_def
        rows = self._pick(t)
        tab = C.table(t.table)
        k = len(rows)
        if t.option == "mixed" and tab.version_column:
            older = np.arange(k) % 2 == 1
        else:
            older = np.full(k, t.option == "older")
        cols = f.row_dict(rows)
        if older.any():
            oi = np.flatnonzero(older)
            src = rows[oi]
            if t.table == ORDERS:
                ots, upd = f.meta["order_ts"][src], f.meta["updated"][src]
                old_upd = ots + (upd - ots) // 2
                st = pc.replace_with_mask(cols["status"], pa.array(older),
                                          _arr(self._not_vanished(ORDERS, "status", C.ORDER_STATUSES[0]) for _ in oi))
                cols["status"] = st
            elif t.table == CUSTOMERS:
                sg, upd = f.meta["signup"][src], f.meta["updated"][src]
                old_upd = sg + (upd - sg) // 2
            else:
                old_upd = f.meta["updated"][src] - r.integers(3600, 30 * DAY, len(src))
                cols["unit_price"] = pc.replace_with_mask(
                    cols["unit_price"], pa.array(older),
                    _arr(money_str(max(50, int(p * 0.9))) for p in f.meta["price"][src]))
            cols["updated_at"] = pc.replace_with_mask(cols["updated_at"], pa.array(older), timestamps(old_upd, 0))
        # exact duplicates right after or anywhere after the original; older versions anywhere
        pos = np.where(older, r.integers(0, f.base_n + 1, k), np.minimum(rows + 1 + r.integers(0, 5, k), f.base_n))
        meta = {key: f.meta[key][rows] for key in f.meta if key not in ("uid", "pos", "used", "protected")}
        uids = f.add_rows(cols, meta, pos)
        entry["count"] = k
        src_uids = f.meta["uid"][rows]
        extras = {int(u): {"variant": "older_version" if o else "exact", "duplicate_of_line": int(s)}
                  for u, o, s in zip(uids, older, src_uids)}
        self.log_rows(entry, t.table, uids, extras)
