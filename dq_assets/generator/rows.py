"""Each table's rows of a day as numbers (indexes into the pools, cents, epoch seconds): the
customers and products change feeds, orders with their items and payments, events."""

from __future__ import annotations

import numpy as np

from dq_assets.contract import tables as C
from dq_assets.generator.constants import (
    ADJECTIVES,
    ANONYMOUS_RATE,
    CATEGORIES,
    COUNTRIES,
    CURRENCIES,
    CURRENCY_P,
    DAY,
    DOMAINS,
    EVENT_TYPE_W,
    EVENTS,
    FAILED_ATTEMPT_RATE,
    FIRST_NAMES,
    LAST_NAMES,
    LATE_RATE,
    NOUNS,
    ORDER_STATUS_W,
    ORDERS,
    PAYMENT_METHOD_W,
    PLATFORM_W,
)
from dq_assets.generator.values import _weights


class RowGeneration:
    """The numeric rows of each table. Mixed into `_Day` (day.py), whose attributes it uses: cfg, state, i, d, ds, de, tag,
    rng_base, rng_def, injected, frames."""

    # ------------------------------------------------------------------ dimensions

    def customers_delta(self, none: bool) -> dict[str, np.ndarray]:
        r, pool = self.rng_base, self.state.customers
        ds = self.ds
        if self.i == 0:
            n = self.cfg.n_customers0
            signup = ds - r.integers(DAY, 730 * DAY, n)
            new = self._new_customers(r, n, signup)
            pool.extend(new)
            return {**{k: v.copy() for k, v in new.items()}, "cust": np.arange(n), "is_new": np.ones(n, bool)}
        if none:
            return self._empty_cust()
        n0 = self.cfg.n_customers0
        n_new = max(1, int(round(max(2, 0.02 * n0) * r.uniform(0.9, 1.1))))
        n_chg = min(pool.n, max(1, int(round(max(2, 0.01 * pool.n) * r.uniform(0.9, 1.1)))))
        chg = np.sort(r.choice(pool.n, n_chg, replace=False))
        what = r.random(n_chg)
        c = pool.cols
        c["domain"][chg[what < .5]] = (c["domain"][chg[what < .5]] + 1) % len(DOMAINS)
        sel = chg[(what >= .5) & (what < .8)]
        c["country"][sel] = (c["country"][sel] + 1 + r.integers(0, len(COUNTRIES) - 1, len(sel))) % len(COUNTRIES)
        sel = chg[what >= .8]
        c["name_style"][sel] = (c["name_style"][sel] + 1) % 3
        c["updated"][chg] = ds + r.integers(0, DAY, n_chg)
        signup = ds + r.integers(0, DAY - 10, n_new)
        new = self._new_customers(r, n_new, signup)
        first = pool.n
        pool.extend(new)
        ids = np.concatenate([chg, np.arange(first, first + n_new)])
        rows = {k: v[ids].copy() for k, v in pool.cols.items()}
        rows["cust"] = ids
        rows["is_new"] = ids >= first
        o = np.argsort(rows["updated"], kind="stable")
        return {k: v[o] for k, v in rows.items()}

    def _new_customers(self, r, n, signup):
        upd = signup + 1 + (r.random(n) * (self.de - signup - 1)).astype(np.int64)
        return {
            "first": r.integers(0, len(FIRST_NAMES), n), "last": r.integers(0, len(LAST_NAMES), n),
            "domain": r.integers(0, len(DOMAINS), n), "country": r.integers(0, len(COUNTRIES), n),
            "name_style": r.choice(3, n, p=[.9, .08, .02]), "signup": signup.astype(np.int64),
            "updated": upd,
        }

    def _empty_cust(self):
        z = np.zeros(0, dtype=np.int64)
        return {k: z for k in ("first", "last", "domain", "country", "name_style", "signup", "updated", "cust")} | {
            "is_new": np.zeros(0, bool)}

    def products_delta(self, none: bool) -> dict[str, np.ndarray]:
        r, pool = self.rng_base, self.state.products
        if self.i == 0:
            n = self.cfg.n_products0
            new = self._new_products(r, n, self.ds - r.integers(DAY, 365 * DAY, n))
            new["currency"][: len(CURRENCIES)] = np.arange(len(CURRENCIES))
            pool.extend(new)
            return {**{k: v.copy() for k, v in new.items()}, "prod": np.arange(n), "is_new": np.ones(n, bool)}
        if none:
            z = np.zeros(0, dtype=np.int64)
            return {k: z for k in pool.cols} | {"prod": z, "is_new": np.zeros(0, bool)}
        n_chg = min(pool.n, max(2, int(round(0.03 * pool.n * r.uniform(0.9, 1.1)))))
        n_new = 1 if r.random() < 0.5 else 0
        chg = np.sort(r.choice(pool.n, n_chg, replace=False))
        c = pool.cols
        c["price"][chg] = np.maximum(50, np.round(c["price"][chg] * r.uniform(0.85, 1.15, n_chg))).astype(np.int64)
        c["updated"][chg] = self.ds + r.integers(0, DAY, n_chg)
        first = pool.n
        if n_new:
            pool.extend(self._new_products(r, n_new, self.ds + r.integers(0, DAY, n_new)))
        ids = np.concatenate([chg, np.arange(first, first + n_new)])
        rows = {k: v[ids].copy() for k, v in pool.cols.items()}
        rows["prod"] = ids
        rows["is_new"] = ids >= first
        o = np.argsort(rows["updated"], kind="stable")
        return {k: v[o] for k, v in rows.items()}

    def _new_products(self, r, n, updated):
        return {
            "adj": r.integers(0, len(ADJECTIVES), n), "noun": r.integers(0, len(NOUNS), n),
            "category": r.integers(0, len(CATEGORIES), n), "name_style": r.choice(2, n, p=[.9, .1]),
            "price": np.maximum(50, np.round(np.exp(r.normal(3.2, 0.8, n)) * 100)).astype(np.int64),
            "currency": r.choice(len(CURRENCIES), n, p=CURRENCY_P), "updated": updated.astype(np.int64),
        }

    # ------------------------------------------------------------------ facts (numeric)

    def gen_orders(self, factor: float):
        r, cfg = self.rng_base, self.cfg
        ds, de = self.ds, self.de
        n = max(1, int(round(cfg.orders_per_day * r.uniform(0.92, 1.08) * factor)))
        ts = ds + r.integers(0, DAY - 120, n)
        late = r.random(n) < LATE_RATE[ORDERS]
        ts[late] = ds - r.integers(60, 2 * DAY, int(late.sum()))
        ts = np.sort(ts)
        lo = np.maximum(ts + 60, ds)
        upd = lo + (r.random(n) * (de - lo + 1)).astype(np.int64)
        cust = r.integers(0, self.state.customers.n, n)
        status = r.choice(len(C.ORDER_STATUSES), n, p=_weights(C.ORDER_STATUSES, ORDER_STATUS_W))
        cur = r.choice(len(CURRENCIES), n, p=CURRENCY_P)
        o = {"seq": np.arange(1, n + 1), "day": np.full(n, self.d.toordinal()), "cust": cust,
             "order_ts": ts, "updated": upd, "status": status, "cur": cur,
             "resent": np.zeros(n, bool)}
        it = self._items_for(r, np.arange(n), cur)
        o["amount"] = self._amounts(it, n)
        pay = self._payments_for(r, o, np.arange(n))
        return o, it, pay

    def _items_for(self, r, orders: np.ndarray, cur: np.ndarray) -> dict[str, np.ndarray]:
        k = 1 + np.minimum(r.poisson(1.5, len(orders)), 9)
        io = np.repeat(np.arange(len(orders)), k)
        starts = np.cumsum(k) - k
        line_no = np.arange(len(io)) - starts[io] + 1
        pc_ = self.state.products.cols
        prod = np.empty(len(io), dtype=np.int64)
        icur = cur[io]
        for c in range(len(CURRENCIES)):
            group = np.flatnonzero(pc_["currency"] == c)
            sel = np.flatnonzero(icur == c)
            prod[sel] = group[r.integers(0, len(group), len(sel))]
        qty = r.choice(np.arange(1, 6), len(io), p=[.7, .17, .07, .04, .02])
        price = pc_["price"][prod]
        return {"order": orders[io], "line_no": line_no, "prod": prod, "qty": qty, "price": price,
                "line": qty * price}

    @staticmethod
    def _amounts(it, n_orders) -> np.ndarray:
        amt = np.zeros(n_orders, dtype=np.int64)
        np.add.at(amt, it["order"], it["line"])
        return amt

    def _payments_for(self, r, o, orders: np.ndarray, force_capture: np.ndarray | None = None) -> dict[str, np.ndarray]:
        ps = C.PAYMENT_STATUSES
        cap, fail, ref = ps.index("captured"), ps.index("failed"), ps.index("refunded")
        st = C.ORDER_STATUSES
        status = o["status"][orders]
        names = np.array(st)[status]
        captured = np.isin(names, C.REVENUE_STATUSES + ("refunded",))
        if force_capture is not None:
            captured = force_capture
        refunded = names == "refunded"
        failed = r.random(len(orders)) < FAILED_ATTEMPT_RATE
        parts = []
        for mask, pstat, third in ((failed, fail, 0), (captured, cap, 1), (refunded, ref, 2)):
            sel = orders[mask]
            if len(sel) == 0:
                continue
            ots = o["order_ts"][sel]
            lo = np.maximum(ots + 1, self.ds - 3 * DAY)
            span = np.maximum(o["updated"][sel] - lo, 3)
            ts = lo + third * span // 3 + (r.random(len(sel)) * (span // 3)).astype(np.int64)
            amount = o["amount"][sel].copy()
            if pstat == fail:
                amount[r.random(len(sel)) < 0.3] = 0
            parts.append({"order": sel, "status": np.full(len(sel), pstat), "ts": ts, "amount": amount,
                          "method": r.choice(len(C.PAYMENT_METHODS), len(sel),
                                             p=_weights(C.PAYMENT_METHODS, PAYMENT_METHOD_W))})
        if not parts:
            z = np.zeros(0, dtype=np.int64)
            return {k: z for k in ("order", "status", "ts", "amount", "method")}
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def gen_events(self, factor: float) -> dict[str, np.ndarray]:
        r, ds = self.rng_base, self.ds
        n = max(48, int(round(10 * self.cfg.orders_per_day * factor * r.uniform(0.95, 1.05))))
        n_sess = max(1, n // 6)
        pool_n = self.state.customers.n
        s_cust = np.where(r.random(n_sess) < ANONYMOUS_RATE, -1, r.integers(0, pool_n, n_sess))
        s_plat = r.choice(len(C.PLATFORMS), n_sess, p=_weights(C.PLATFORMS, PLATFORM_W)).astype(np.int8)
        ts = ds + r.integers(0, DAY, n)
        late = np.flatnonzero(r.random(n) < LATE_RATE[EVENTS])
        ts[late] = ds - r.integers(1, 2 * DAY, len(late))
        ts[:24] = ds + np.arange(24) * 3600 + r.integers(0, 3600, 24)  # every hour has events
        o = np.argsort(ts, kind="stable")
        ts = ts[o]
        prot = o < 24
        del o
        # the rows are independent draws, so they are drawn directly in the sorted order
        sess = r.integers(0, n_sess, n, dtype=np.int32)
        etype = r.choice(len(C.EVENT_TYPES), n, p=_weights(C.EVENT_TYPES, EVENT_TYPE_W)).astype(np.int8)
        dur = r.normal(8.5, 1.5, n)
        np.exp(dur, out=dur)
        np.clip(dur, 0, 3_600_000, out=dur)
        dur = dur.astype(np.int32)
        dur[r.random(n) < 0.02] = 0
        return {"ts": ts, "protected": prot, "sess": sess, "cust": s_cust[sess].astype(np.int32),
                "platform": s_plat[sess], "type": etype, "dur": dur}
