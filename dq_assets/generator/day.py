"""`_Day`: everything for one ingest date. It plans the day's defects, generates the rows
(rows.py), injects the numeric-stage defects (numeric_defects.py), formats each table
(formatting.py), injects the row defects (row_defects.py), writes the files and the manifest
(writing.py), then updates the run's state and finishes the day's log entry."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dq_assets.contract import tables as C
from dq_assets.generator.constants import (
    CUSTOMERS,
    DAY,
    DIMENSIONS,
    EVENTS,
    EXTRA_VALUES,
    ORDER_ITEMS,
    ORDERS,
    PARTITION_PREFIX,
    PAYMENTS,
    PRODUCTS,
)
from dq_assets.generator.defects import (
    BATCH_KINDS,
    FILE_ERROR_KINDS,
    PROBABILITY_KINDS,
    ROW_KINDS,
    VALID_KINDS,
    DefectError,
    _check_option,
    _spec_tables,
    _Task,
)
from dq_assets.generator.drift import Drift
from dq_assets.generator.formatting import Formatting
from dq_assets.generator.frame import Frame
from dq_assets.generator.numeric_defects import NumericDefects
from dq_assets.generator.row_defects import RowDefects
from dq_assets.generator.rows import RowGeneration
from dq_assets.generator.state import Config, State
from dq_assets.generator.values import _arr, _rng, day_start, money_str
from dq_assets.generator.writing import Writing


class _Day(RowGeneration, NumericDefects, Drift, Formatting, RowDefects, Writing):
    """Everything for one ingest date."""

    def __init__(self, cfg: Config, state: State, index: int, d: date):
        self.cfg, self.state, self.i, self.d = cfg, state, index, d
        self.ds = day_start(d)
        self.de = self.ds + DAY - 1
        self.tag = d.strftime("%Y%m%d")
        self.rng_base = _rng(cfg.seed, d, 0)
        self.rng_def = _rng(cfg.seed, d, 2)
        self.injected: list[dict[str, Any]] = []
        self.pending_log: list[tuple[dict, str, list[int], dict]] = []  # (entry, table, uids, extra per row)
        self.frames: dict[str, Frame] = {}
        self.money_factor = 1  # unit_change: the factor of the day's written money amounts
        self.vanished: dict[tuple[str, str], str] = {}  # vanished_value: (table, column) -> value

    def mess_rng(self, table: str, purpose: int) -> np.random.Generator:
        return _rng(self.cfg.seed, self.d, 1, C.TABLE_NAMES.index(table), purpose)

    # ------------------------------------------------------------------ plan

    def plan(self) -> list[_Task]:
        """Resolve today's specs into tasks; row-level counts are resolved once sizes are known."""
        tasks = []
        for s in self.cfg.defects:
            if s.day is not None and s.day != self.d:
                continue
            for t in _spec_tables(s):
                if (s.day is None and self.cfg.clean_dims_after_day_one and self.i > 0
                        and t in DIMENSIONS):
                    continue
                task = _Task(s.kind, t, _check_option(s, t), param=s.value, spec=str(s))
                if s.kind == "no_changes" and self.i == 0:
                    raise DefectError(f"{s}: the first day carries the full initial set")
                if s.day is None and s.kind in PROBABILITY_KINDS:
                    if self.rng_def.random() >= (1.0 if s.value is None else s.value):
                        continue
                    task.param = None
                elif s.kind in ROW_KINDS or s.kind in BATCH_KINDS:
                    task.count = -2 if s.value is None else -1 if s.is_rate else int(s.value)
                tasks.append(task)
        return tasks

    def _count(self, task: _Task, n_rows: int, default_rate: float | None = None) -> int:
        if task.count >= 0:
            return task.count
        if task.count == -2:  # no value given
            if default_rate is None:
                return 1
            return max(1, int(round(default_rate * n_rows)))
        rate = float(task.param)
        x = rate * n_rows
        return int(np.floor(x + self.rng_def.random()))

    # ------------------------------------------------------------------ run

    def run(self, out: Path) -> dict[str, Any]:
        tasks = self.plan()
        by_kind = lambda k: [t for t in tasks if t.kind == k]  # noqa: E731
        factor = 1.0
        for t in by_kind("volume_drop"):
            factor = float(t.param) if t.param is not None else 0.3
        no_changes = {t.table for t in by_kind("no_changes")}

        cust_rows = self.customers_delta(CUSTOMERS in no_changes)
        prod_rows = self.products_delta(PRODUCTS in no_changes)
        o, it, pay = self.gen_orders(factor)
        ev = self.gen_events(factor)

        for t in by_kind("volume_drop"):
            normal = self.cfg.orders_per_day
            self.injected.append({"kind": "volume_drop", "table": "*", "factor": factor,
                                  "normal_orders_per_day": normal, "orders": int(len(o["seq"])),
                                  "events": int(len(ev["ts"])), "count": int(len(o["seq"])), "spec": t.spec})
        for t in by_kind("no_changes"):
            self.injected.append({"kind": "no_changes", "table": t.table, "count": 0, "spec": t.spec})

        # numeric-stage injections (they change amounts, timestamps or add consistent rows)
        n_base_orders = len(o["seq"])
        used_orders = np.zeros(n_base_orders, dtype=bool)
        for t in by_kind("partial_load"):
            ev = self.partial_load(t, ev)
        for t in by_kind("resent_orders"):
            o, it, pay, used_orders = self.resent_orders(t, o, it, pay, used_orders, n_base_orders)
        for t in by_kind("late_arriving"):
            if t.table == ORDERS:
                self.late_orders(t, o, pay, used_orders, n_base_orders)
            else:
                self.late_events(t, ev)
        row_tasks = [t for t in tasks if t.kind in ROW_KINDS]
        sizes = {ORDERS: n_base_orders, ORDER_ITEMS: len(it["order"]), PAYMENTS: len(pay["order"]),
                 EVENTS: len(ev["ts"]), CUSTOMERS: len(cust_rows["cust"]), PRODUCTS: len(prod_rows["prod"])}
        for i, t in enumerate(row_tasks):
            t.count = self._count(t, sizes[t.table])
            t.rid = i
        for t in row_tasks:
            if t.table == ORDER_ITEMS and t.kind in ("calculation_mismatch", "out_of_range"):
                self.item_amount_defect(t, o, it, pay, used_orders)
        pay_tasks = [t for t in row_tasks if t.table == PAYMENTS and t.kind not in ("unknown_reference", "duplicate")]
        pay = self.reserve_payment_carriers(pay_tasks, o, pay, used_orders, n_base_orders)
        pay = self.sort_payments(pay, o)
        # valid-looking drift (unit_change, vanished_value): on copies written today; `o`
        # itself (the run's state for later days) keeps the usual units and values
        o_out, it, pay, ev = self.drift(tasks, o, it, pay, ev)

        self.used_orders = used_orders
        mess_log: dict[str, Any] = {
            "late_rows": {ORDERS: int((o["order_ts"] < self.ds).sum()), PAYMENTS: int((pay["ts"] < self.ds).sum()),
                          EVENTS: int((ev["ts"] < self.ds).sum())},
            "bom": [], "crlf": [], "shuffled_columns": [], "header_variants": []}
        dims_ref = (np.unique(np.concatenate([o["cust"], ev["cust"][ev["cust"] >= 0]])), np.unique(it["prod"]))
        pdir = out / f"{PARTITION_PREFIX}{self.d.isoformat()}"
        if pdir.exists():
            shutil.rmtree(pdir)
        pdir.mkdir(parents=True)
        missing = {t.table for t in by_kind("missing_file")}
        unlisted = {t.table for t in by_kind("unlisted_file")}
        manifest_files: dict[str, dict[str, Any]] = {}
        files_log: dict[str, dict[str, Any]] = {}
        # table by table: format, inject (duplicates last so they copy clean rows), write, shrink
        kind_order = [k for k in ROW_KINDS if k != "duplicate"] + ["duplicate"]
        for tname in C.TABLE_NAMES:
            if tname == CUSTOMERS:
                f = self.format_customers(cust_rows)
                f.meta["depended"] = f.meta["is_new"] & np.isin(f.meta["cust"], dims_ref[0])
            elif tname == PRODUCTS:
                f = self.format_products(prod_rows)
                f.meta["depended"] = f.meta["is_new"] & np.isin(f.meta["prod"], dims_ref[1])
            elif tname == ORDERS:
                f = self.format_orders(o_out, used_orders)
            elif tname == ORDER_ITEMS:
                f = self.format_items(it, o_out)
            elif tname == PAYMENTS:
                f = self.format_payments(pay, o_out)
            else:
                f = self.format_events(ev)
                ev = None  # free the numeric events early
            self.frames[tname] = f
            for k in kind_order:
                for t in row_tasks:
                    if t.table == tname and t.kind == k and not (
                            tname == ORDER_ITEMS and k in ("calculation_mismatch", "out_of_range")):
                        self.row_defect(t)
            for t in by_kind("null_share"):
                if t.table == tname:
                    self.null_share(t, f)
            for t in by_kind("missing_column"):
                if t.table == tname:
                    f.drop_column(t.option)
                    self.injected.append({"kind": "missing_column", "table": tname, "column": t.option,
                                          "count": 1, "spec": t.spec})
            for t in by_kind("extra_column"):
                if t.table == tname:
                    r = self.mess_rng(tname, 9)
                    vals = pc.take(_arr(EXTRA_VALUES), pa.array(r.choice(len(EXTRA_VALUES), f.n, p=[.5, .2, .15, .1, .05])))
                    f.add_column(t.option, vals, int(r.integers(0, len(f.order) + 1)))
                    self.injected.append({"kind": "extra_column", "table": tname, "column": t.option,
                                          "count": 1, "spec": t.spec})
            tab = C.table(tname)
            if f.n == 0 and tname in DIMENSIONS:
                files_log[tab.file_name] = {"rows": 0, "present": False, "listed": False}
                continue
            f.finalize()
            present = tname not in missing
            info = self.write_frame(f, pdir / tab.file_name, present, mess_log)
            f.shrink()
            pa.default_memory_pool().release_unused()
            listed = tname not in unlisted
            files_log[tab.file_name] = {"rows": info["rows"], "present": present, "listed": listed}
            if listed:
                manifest_files[tab.file_name] = info
        for tname in sorted(missing):
            self.injected.append({"kind": "missing_file", "table": tname, "file": C.table(tname).file_name,
                                  "count": 1, "spec": _spec_of(tasks, "missing_file", tname)})
        for tname in sorted(unlisted):
            self.injected.append({"kind": "unlisted_file", "table": tname, "file": C.table(tname).file_name,
                                  "count": 1, "spec": _spec_of(tasks, "unlisted_file", tname)})
        for t in by_kind("manifest_drift"):
            self.manifest_drift(t, manifest_files)
        manifest = {"ingest_date": self.d.isoformat(), "files": manifest_files}
        (pdir / C.MANIFEST_FILE).write_bytes((json.dumps(manifest, indent=2) + "\n").encode("utf-8"))

        # resolve row uids into lines and keys
        for entry, tname, uids, extras in self.pending_log:
            f = self.frames[tname]
            rows = []
            refs = [v for u in uids for k, v in extras.get(u, {}).items() if k.endswith("_line")]
            ref_line = dict(zip(refs, f.lines(refs)))
            for u, line, key in zip(uids, f.lines(uids), f.keys(uids)):
                r = {"line": line, "key": key}
                r.update({k: (ref_line[v] if k.endswith("_line") else v) for k, v in extras.get(u, {}).items()})
                rows.append(r)
            entry.setdefault("rows", []).extend(rows)

        self.update_state(o)
        expected: dict[str, dict[str, int]] = {}
        for e in self.injected:
            if e["kind"] in ROW_KINDS and e["count"]:
                expected.setdefault(e["table"], {}).setdefault(e["kind"], 0)
                expected[e["table"]][e["kind"]] += e["count"]
        return {"ingest_date": self.d.isoformat(),
                "valid": all(e["kind"] in VALID_KINDS for e in self.injected),
                "files": files_log, "injected": self.injected,
                "expected_quarantine": expected, "mess": mess_log}

    def log_rows(self, entry: dict, table: str, uids: np.ndarray, extras: dict | None = None) -> None:
        self.pending_log.append((entry, table, [int(u) for u in uids], extras or {}))

    # ------------------------------------------------------------------ state / log finish

    def update_state(self, o) -> None:
        keep = {k: o[k].copy() for k in ("seq", "day", "cust", "order_ts", "updated", "status", "cur", "amount")}
        resent = o["resent"]
        # resent orders update their earlier versions in the history
        if resent.any() and self.state.recent_orders:
            for h in self.state.recent_orders:
                key_h = h["day"] * 10**9 + h["seq"]
                key_r = keep["day"][resent] * 10**9 + keep["seq"][resent]
                pos = np.searchsorted(key_h, key_r)
                pos = np.minimum(pos, len(key_h) - 1)
                hit = key_h[pos] == key_r
                for k in ("status", "updated", "amount"):
                    h[k][pos[hit]] = keep[k][resent][hit]
        new = {k: v[~resent] for k, v in keep.items()}
        # orders of a partition with a file-level error are not re-sent later: the gate may have
        # rejected that whole partition, so its captured payments might never reach staging
        if not any(e["kind"] in FILE_ERROR_KINDS for e in self.injected):
            self.state.recent_orders = (self.state.recent_orders + [new])[-3:]
        # finish the log entries that refer to numeric rows
        of = self.frames[ORDERS]
        pf = self.frames[PAYMENTS]
        itf = self.frames[ORDER_ITEMS]
        for e in self.injected:
            if "_resent" in e:
                idx, days, change = e.pop("_resent")
                uids = self._uids_for_orders(of, idx)
                rows = []
                for u, ln, key, dd, ch in zip(uids, of.lines(uids), of.keys(uids), days, change):
                    rows.append({"line": ln, "key": key, "from_ingest_date": date.fromordinal(int(dd)).isoformat(),
                                 "change": ch})
                e["rows"] = rows
                e["order_items_lines"] = itf.lines(itf.meta["uid"][np.isin(itf.meta["order"], idx)])
                e["payments_lines"] = pf.lines(pf.meta["uid"][np.isin(pf.meta["order"], idx)])
            if "_orders" in e:
                sel = e.pop("_orders")
                days_earlier = e.pop("_days_earlier")
                uids = self._uids_for_orders(of, sel)
                e["rows"] = [{"line": ln, "key": key, "days_earlier": de}
                             for ln, key, de in zip(of.lines(uids), of.keys(uids), days_earlier)]
                e["payments_lines"] = pf.lines(pf.meta["uid"][np.isin(pf.meta["order"], sel) & (pf.meta["uid"] < pf.base_n)])
            if "_events" in e:
                sel = e.pop("_events")
                ef = self.frames[EVENTS]
                uids = sel  # events were not re-ordered before formatting
                e["rows"] = [{"line": ln, "key": key} for ln, key in zip(ef.lines(uids), ef.keys(uids))]
        for t, rows, old, new in getattr(self, "item_defects", []):
            uids = rows  # items uid = numeric row index
            lines = itf.lines(uids)
            keys = itf.keys(uids)
            old, new = old * self.money_factor, new * self.money_factor
            vals = [money_str(int(x)) for x in new]
            if t.kind == "calculation_mismatch":
                entry = {"kind": t.kind, "table": ORDER_ITEMS, "column": "line_amount", "count": len(rows), "spec": t.spec,
                         "rows": [{"line": ln, "key": k, "value": v, "expected": money_str(int(x))}
                                  for ln, k, v, x in zip(lines, keys, vals, old)]}
            else:
                entry = {"kind": t.kind, "table": ORDER_ITEMS, "column": "quantity", "count": len(rows), "spec": t.spec,
                         "rows": [{"line": ln, "key": k, "value": "0", "original_line_amount": money_str(int(x))}
                                  for ln, k, x in zip(lines, keys, old)]}
            self.injected.append(entry)

    @staticmethod
    def _uids_for_orders(of: Frame, idx) -> np.ndarray:
        """uids of the orders frame rows that hold numeric orders idx (uid = numeric index)."""
        return np.asarray(idx, dtype=np.int64)


def _spec_of(tasks: list[_Task], kind: str, table: str) -> str:
    for t in tasks:
        if t.kind == kind and t.table == table:
            return t.spec
    return ""
