"""Injections at the numeric stage, before formatting: they change amounts and timestamps or
add consistent rows (partial_load, resent_orders, late_arriving, the order_items defects
whose order amount follows), and reserve the payments that will carry row defects."""

from __future__ import annotations

import numpy as np

from dq_assets.contract import tables as C
from dq_assets.generator.constants import DAY, EVENTS, ORDERS, PAYMENT_METHOD_W
from dq_assets.generator.defects import DefectError, _Task
from dq_assets.generator.values import _weights


class NumericDefects:
    """Defects on the numeric rows. Mixed into `_Day` (day.py), whose attributes it uses: cfg, state, i, d, ds, de, tag,
    rng_base, rng_def, injected, frames."""

    def partial_load(self, t: _Task, ev):
        hours_n = int(t.param) if t.param is not None else 6
        hours = np.sort(self.rng_def.choice(24, hours_n, replace=False))
        hod = (ev["ts"] % DAY) // 3600
        drop = np.isin(hod, hours)
        self.injected.append({"kind": "partial_load", "table": EVENTS, "hours": hours.tolist(),
                              "count": int(drop.sum()), "spec": t.spec})
        return {k: v[~drop] for k, v in ev.items()}

    def resent_orders(self, t: _Task, o, it, pay, used, n_base):
        r = self.rng_def
        prev = self.state.recent_orders
        entry = {"kind": "resent_orders", "table": ORDERS, "count": 0, "changed": 0, "unchanged": 0,
                 "spec": t.spec}
        self.injected.append(entry)
        if not prev:
            return o, it, pay, used
        hist = {k: np.concatenate([p[k] for p in prev]) for k in prev[0]}
        k = self._count(t, n_base, default_rate=0.05)
        k = min(k, len(hist["seq"]))
        st = list(C.ORDER_STATUSES)
        # about 30% placed orders (they may change amount and items), the first one always does
        placed = np.flatnonzero(hist["status"] == st.index("placed"))
        n_pl = min(len(placed), max(1, round(0.3 * k))) if k else 0
        first = np.sort(r.choice(placed, n_pl, replace=False)) if n_pl else np.zeros(0, np.int64)
        rest = np.setdiff1d(np.arange(len(hist["seq"])), first)
        pick = np.concatenate([first, np.sort(r.choice(rest, k - n_pl, replace=False))]).astype(np.int64)
        new = {key: hist[key][pick].copy() for key in ("seq", "day", "cust", "order_ts", "updated",
                                                          "status", "cur", "amount")}
        names = np.array(st)[new["status"]]
        unchanged = r.random(k) < 0.25
        force_items = n_pl > 0
        if force_items:
            unchanged[0] = False
        change = np.array(["unchanged"] * k, dtype=object)
        nxt = {"paid": "shipped", "shipped": "delivered", "delivered": "refunded"}
        new_items_for: list[int] = []
        capture = np.zeros(k, bool)
        refund = np.zeros(k, bool)
        for j in range(k):
            if unchanged[j] or names[j] in ("cancelled", "refunded"):
                unchanged[j] = True
                continue
            old = names[j]
            if old == "placed":
                u = r.random()
                if u < 0.4 or (j == 0 and force_items):
                    new_items_for.append(j)
                    new["status"][j] = st.index("paid")
                    capture[j] = True
                    change[j] = "placed->paid, amount"
                elif u < 0.7:
                    new["status"][j] = st.index("paid")
                    capture[j] = True
                    change[j] = "placed->paid"
                else:
                    new["status"][j] = st.index("cancelled")
                    change[j] = "placed->cancelled"
            else:
                new["status"][j] = st.index(nxt[old])
                refund[j] = nxt[old] == "refunded"
                change[j] = f"{old}->{nxt[old]}"
            new["updated"][j] = self.ds + int(r.integers(0, DAY))
        idx = np.arange(len(o["seq"]), len(o["seq"]) + k)
        # new items (and amounts) for orders whose content changed
        sel = np.array(new_items_for, dtype=np.int64)
        if len(sel):
            items = self._items_for(r, idx[sel], new["cur"][sel])
            amt = np.zeros(len(o["seq"]) + k, dtype=np.int64)
            np.add.at(amt, items["order"], items["line"])
            new["amount"][sel] = amt[idx[sel]]
            it = {key: np.concatenate([it[key], items[key]]) for key in it}
        o2 = {key: np.concatenate([o[key], new[key] if key != "resent" else np.ones(k, bool)]) for key in o}
        # payments: capture for placed->paid, refund for delivered->refunded
        parts = []
        ps = C.PAYMENT_STATUSES
        for mask, pstat in ((capture, ps.index("captured")), (refund, ps.index("refunded"))):
            rows = idx[mask]
            if len(rows):
                lo = np.maximum(o2["order_ts"][rows] + 1, self.ds)
                ts = lo + (r.random(len(rows)) * np.maximum(o2["updated"][rows] - lo, 1)).astype(np.int64)
                parts.append({"order": rows, "status": np.full(len(rows), pstat), "ts": ts,
                              "amount": o2["amount"][rows],
                              "method": r.choice(len(C.PAYMENT_METHODS), len(rows),
                                                 p=_weights(C.PAYMENT_METHODS, PAYMENT_METHOD_W))})
        for p in parts:
            pay = {key: np.concatenate([pay[key], p[key]]) for key in pay}
        used = np.concatenate([used, np.ones(k, bool)])
        entry.update(count=int(k), changed=int((~unchanged).sum()), unchanged=int(unchanged.sum()))
        entry["_resent"] = (idx, new["day"], change)
        return o2, it, pay, used

    def late_orders(self, t: _Task, o, pay, used, n_base):
        r = self.rng_def
        cand = np.flatnonzero(~used[:n_base] & (o["order_ts"][:n_base] >= self.ds))
        k = min(self._count(t, n_base, default_rate=0.05), len(cand))
        sel = np.sort(r.choice(cand, k, replace=False))
        shift = r.integers(1, 4, k) * DAY
        o["order_ts"][sel] -= shift
        pm = np.isin(pay["order"], sel)
        ps = np.searchsorted(sel, pay["order"][pm])
        pay["ts"][pm] -= shift[ps]
        used[sel] = True
        self.injected.append({"kind": "late_arriving", "table": ORDERS, "count": int(k), "spec": t.spec,
                              "_orders": sel, "_days_earlier": (shift // DAY).tolist(),
                              "payments_shifted": int(pm.sum())})

    def late_events(self, t: _Task, ev):
        r = self.rng_def
        cand = np.flatnonzero(~ev["protected"] & (ev["ts"] >= self.ds))
        k = min(self._count(t, len(ev["ts"]), default_rate=0.05), len(cand))
        sel = np.sort(r.choice(cand, k, replace=False))
        ev["ts"][sel] -= r.integers(1, 4, k) * DAY
        ev["protected"][sel] = True  # keep them clean
        self.injected.append({"kind": "late_arriving", "table": EVENTS, "count": int(k), "spec": t.spec,
                              "_events": sel})

    def item_amount_defect(self, t: _Task, o, it, pay, used):
        """calculation_mismatch / out_of_range (quantity 0) in order_items, order amount following."""
        r = self.rng_def
        n_base = len(used)
        n_items = np.bincount(it["order"], minlength=len(o["seq"]))
        ok_order = ~used & (np.arange(len(used)) < n_base) & ~o["resent"][:len(used)]
        if t.kind == "out_of_range":
            ok_order &= n_items[: len(used)] >= 2
        cand_orders = np.flatnonzero(ok_order)
        if len(cand_orders) < t.count:
            raise DefectError(f"{self.d} {t.spec}: only {len(cand_orders)} orders can carry it")
        orders = np.sort(r.choice(cand_orders, t.count, replace=False))
        used[orders] = True
        by_order = np.argsort(it["order"], kind="stable")
        first = np.searchsorted(it["order"][by_order], orders)
        rows = by_order[first + (r.random(len(orders)) * n_items[orders]).astype(np.int64)]
        old = it["line"][rows].copy()
        if t.kind == "calculation_mismatch":
            delta = r.integers(100, 1000, len(rows)) * np.where(r.random(len(rows)) < 0.5, 1, -1)
            delta = np.where(old + delta < 0, np.abs(delta), delta)
            it["line"][rows] = old + delta
        else:
            it["qty"][rows] = 0
            it["line"][rows] = 0
            delta = -old
        o["amount"][orders] += delta
        pm = np.isin(pay["order"], orders) & (pay["status"] != C.PAYMENT_STATUSES.index("failed"))
        pay["amount"][pm] += delta[np.searchsorted(orders, pay["order"][pm])]
        self.item_defects = getattr(self, "item_defects", [])
        self.item_defects.append((t, rows, old, it["line"][rows].copy()))

    def reserve_payment_carriers(self, tasks: list[_Task], o, pay, used, n_base):
        """Payments defects that modify a row go into failed attempts (so no paid order loses
        its captured payment); reserve them now, adding failed attempts where too few exist."""
        failed = C.PAYMENT_STATUSES.index("failed")
        r = self.rng_def
        pay["reserve"] = np.full(len(pay["order"]), -1, dtype=np.int64)
        for t in tasks:
            cand = np.flatnonzero((pay["status"] == failed) & ~used[pay["order"]] & (pay["reserve"] < 0))
            perm = r.permutation(cand)
            _, first = np.unique(pay["order"][perm], return_index=True)
            cand = np.sort(perm[first])
            if len(cand) < t.count:
                k = t.count - len(cand)
                free = np.flatnonzero(~used[:n_base])
                free = free[~np.isin(free, pay["order"][pay["status"] == failed])]
                if len(free) < k:
                    raise DefectError(f"{self.d} {t.spec}: not enough orders to carry it")
                sel = np.sort(r.choice(free, k, replace=False))
                span = np.maximum(o["updated"][sel] - o["order_ts"][sel] - 1, 3)
                add = {"order": sel, "status": np.full(k, failed),
                       "ts": o["order_ts"][sel] + 1 + (r.random(k) * (span // 3)).astype(np.int64),
                       "amount": o["amount"][sel].copy(),
                       "method": r.choice(len(C.PAYMENT_METHODS), k, p=_weights(C.PAYMENT_METHODS, PAYMENT_METHOD_W)),
                       "reserve": np.full(k, -1, dtype=np.int64)}
                pay = {key: np.concatenate([pay[key], add[key]]) for key in pay}
                cand = np.concatenate([cand, np.arange(len(pay["order"]) - k, len(pay["order"]))])
            rows = np.sort(r.choice(cand, t.count, replace=False)) if t.count else cand[:0]
            pay["reserve"][rows] = t.rid
            used[pay["order"][rows]] = True
        return pay

    @staticmethod
    def sort_payments(pay, o):
        order = np.lexsort((pay["status"], pay["order"], pay["ts"]))
        return {k: v[order] for k, v in pay.items()}
