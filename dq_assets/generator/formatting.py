"""Numeric rows -> `Frame`s of strings, with the valid "realistic mess": every accepted
timestamp spelling, mixed case codes and enums, short or signed money, surrounding whitespace."""

from __future__ import annotations

from datetime import date
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dq_assets.contract import tables as C
from dq_assets.generator.constants import (
    ADJECTIVES,
    CASE_RATE,
    CATEGORIES,
    COUNTRIES,
    CURRENCIES,
    CUSTOMERS,
    DOMAINS,
    EVENTS,
    FIRST_NAMES,
    ID_WHITESPACE_RATE,
    LAST_NAMES,
    MONEY_PLUS_RATE,
    MONEY_SHORT_RATE,
    NICKNAMES,
    NOUNS,
    ORDER_ITEMS,
    ORDERS,
    PAYMENTS,
    PRODUCTS,
    TS_STYLE_P,
    TS_STYLES,
    WHITESPACE_RATE,
    WS_PADS,
)
from dq_assets.generator.frame import Frame
from dq_assets.generator.values import (
    _arr,
    _ndigits,
    _short_money,
    fixed_ids,
    integers,
    money,
    money_str,
    timestamps,
)


class Formatting:
    """Formatting each table. Mixed into `_Day` (day.py), whose attributes it uses: cfg, state, i, d, ds, de, tag,
    rng_base, rng_def, injected, frames."""

    def _ts(self, table: str, sec: np.ndarray, purpose: int) -> pa.Array:
        r = self.mess_rng(table, purpose)
        style = r.choice(len(TS_STYLES), len(sec), p=TS_STYLE_P)
        return timestamps(sec, style, r)

    def _enum(self, table: str, values: Sequence[str], idx: np.ndarray, purpose: int) -> pa.Array:
        r = self.mess_rng(table, purpose)
        base = list(values)
        variants = base + [v.upper() for v in base] + [v.capitalize() for v in base]
        v = np.asarray(idx, dtype=np.int64).copy()
        m = r.random(len(v)) < CASE_RATE
        v[m] += len(base) * r.integers(1, 3, int(m.sum()))
        return pc.take(_arr(variants), pa.array(v))

    def _money(self, table: str, cents: np.ndarray, purpose: int) -> pa.Array:
        s = money(cents)
        r = self.mess_rng(table, purpose)
        n = len(cents)
        short = np.flatnonzero(r.random(n) < MONEY_SHORT_RATE)
        plus = np.flatnonzero(r.random(n) < MONEY_PLUS_RATE)
        plus = plus[~np.isin(plus, short)]
        if len(short) or len(plus):
            rows = np.concatenate([short, plus])
            vals = [_short_money(int(c)) for c in cents[short]] + ["+" + money_str(int(c)) for c in cents[plus]]
            order = np.argsort(rows)
            mask = np.zeros(n, bool)
            mask[rows] = True
            s = pc.replace_with_mask(s, pa.array(mask), _arr(np.array(vals, dtype=object)[order]))
        return s

    def _whitespace(self, f: Frame, purpose: int) -> None:
        """Choose the values that get surrounding whitespace; applied while writing, to rows
        that carry no defect (so logged values and exact duplicates stay as they are)."""
        tab = C.table(f.name)
        r = self.mess_rng(f.name, purpose)
        for col in tab.columns:
            rate = ID_WHITESPACE_RATE if col.kind == C.ID else WHITESPACE_RATE
            rows = np.unique(r.integers(0, max(f.n, 1), r.binomial(f.n, rate))) if f.n else np.zeros(0, np.int64)
            if len(rows):
                f.ws[col.name] = (rows, r.integers(0, len(WS_PADS), len(rows)))

    def format_customers(self, c) -> Frame:
        n = len(c["cust"])
        first = _arr(x[0] for x in FIRST_NAMES)
        last = _arr(x[0] for x in LAST_NAMES)
        fa = pc.take(first, pa.array(c["first"]))
        la = pc.take(last, pa.array(c["last"]))
        plain = pc.binary_join_element_wise(fa, la, " ")
        if n:
            rev = pc.binary_join_element_wise(la, fa, ", ")
            nick = pc.binary_join_element_wise(
                fa, pc.take(_arr(f'"{x}"' for x in NICKNAMES), pa.array(c["cust"] % len(NICKNAMES))), la, " ")
            ns = pa.array(c["name_style"])
            full = pc.if_else(pc.equal(ns, 1), rev, pc.if_else(pc.equal(ns, 2), nick, plain))
        else:
            full = plain
        cid = c["cust"] + 1
        local = pc.binary_join_element_wise(
            pc.take(_arr(x[1] for x in FIRST_NAMES), pa.array(c["first"])),
            pc.binary_join_element_wise(pc.take(_arr(x[1] for x in LAST_NAMES), pa.array(c["last"])),
                                        integers(cid), ""), ".")
        email = pc.binary_join_element_wise(local, pc.take(_arr(DOMAINS), pa.array(c["domain"])), "@")
        r = self.mess_rng(CUSTOMERS, 1)
        em = np.flatnonzero(r.random(n) < 0.08)
        if len(em):
            sub = self._case_mess(pc.take(email, pa.array(em)), r)
            mask = np.zeros(n, bool)
            mask[em] = True
            email = pc.replace_with_mask(email, pa.array(mask), sub)
        country = self._code(CUSTOMERS, COUNTRIES, c["country"], 2)
        cols = {"customer_id": fixed_ids("C", cid, 7), "email": email, "full_name": full,
                "country_code": country, "signup_ts": self._ts(CUSTOMERS, c["signup"], 3),
                "updated_at": self._ts(CUSTOMERS, c["updated"], 4)}
        f = Frame(CUSTOMERS, cols, {"cust": c["cust"], "signup": c["signup"], "updated": c["updated"],
                                    "is_new": c["is_new"]})
        f.may_quote.add("full_name")
        self._whitespace(f, 5)
        return f

    @staticmethod
    def _case_mess(a: pa.Array, r) -> pa.Array:
        up = pc.utf8_upper(a)
        cap = pc.utf8_capitalize(a)
        pick = pa.array(r.random(len(a)) < 0.5)
        return pc.if_else(pick, up, cap)

    def _code(self, table: str, codes: Sequence[str], idx: np.ndarray, purpose: int) -> pa.Array:
        r = self.mess_rng(table, purpose)
        variants = list(codes) + [x.lower() for x in codes] + [x.capitalize() for x in codes]
        v = np.asarray(idx, dtype=np.int64).copy()
        m = r.random(len(v)) < CASE_RATE
        v[m] += len(codes) * r.integers(1, 3, int(m.sum()))
        return pc.take(_arr(variants), pa.array(v))

    def format_products(self, p) -> Frame:
        pid = p["prod"] + 1
        cat = pc.take(_arr(CATEGORIES), pa.array(p["category"]))
        adj = pc.take(_arr(ADJECTIVES), pa.array(p["adj"]))
        noun = pc.take(_arr(NOUNS), pa.array(p["noun"]))
        name = pc.binary_join_element_wise(adj, noun, " ")
        if len(pid):
            name = pc.if_else(pa.array(p["name_style"] == 1), pc.binary_join_element_wise(noun, adj, ", "), name)
        sku = pc.binary_join_element_wise(
            pc.utf8_upper(pc.utf8_slice_codeunits(cat, 0, 3)), fixed_ids("", pid, 5), "-")
        sku = pc.binary_join_element_wise(pa.scalar("SKU-"), sku, "")
        cols = {"product_id": fixed_ids("P", pid, 5), "sku": sku, "product_name": name, "category": cat,
                "unit_price": self._money(PRODUCTS, p["price"], 1),
                "currency": self._code(PRODUCTS, CURRENCIES, p["currency"], 2),
                "updated_at": self._ts(PRODUCTS, p["updated"], 3)}
        f = Frame(PRODUCTS, cols, {"prod": p["prod"], "updated": p["updated"], "price": p["price"],
                                   "is_new": p["is_new"]})
        f.may_quote.add("product_name")
        self._whitespace(f, 5)
        return f

    def _order_ids(self, seq: np.ndarray, day: np.ndarray) -> pa.Array:
        w = self.cfg.order_width
        if len(day) == 0 or np.all(day == self.d.toordinal()):
            return fixed_ids("O" + self.tag + "-", seq, w)
        tags = _arr(date.fromordinal(int(x)).strftime("O%Y%m%d-") for x in np.unique(day))
        ti = np.searchsorted(np.unique(day), day)
        return pc.binary_join_element_wise(pc.take(tags, pa.array(ti)), fixed_ids("", seq, w), "")

    def format_orders(self, o, used) -> Frame:
        cols = {"order_id": self._order_ids(o["seq"], o["day"]),
                "customer_id": fixed_ids("C", o["cust"] + 1, 7),
                "order_ts": self._ts(ORDERS, o["order_ts"], 1),
                "status": self._enum(ORDERS, C.ORDER_STATUSES, o["status"], 2),
                "currency": self._code(ORDERS, CURRENCIES, o["cur"], 3),
                "amount": self._money(ORDERS, o["amount"], 4),
                "updated_at": self._ts(ORDERS, o["updated"], 5)}
        n = len(o["seq"])
        f = Frame(ORDERS, cols, {"order": np.arange(n), "order_ts": o["order_ts"], "updated": o["updated"],
                                 "amount": o["amount"], "status": o["status"], "resent": o["resent"],
                                 "cust": o["cust"]})
        self._whitespace(f, 6)
        return f

    def format_items(self, it, o) -> Frame:
        oid = self._order_ids(o["seq"], o["day"])
        cols = {"order_id": pc.take(oid, pa.array(it["order"])), "line_no": integers(it["line_no"]),
                "product_id": fixed_ids("P", it["prod"] + 1, 5), "quantity": integers(it["qty"]),
                "unit_price": self._money(ORDER_ITEMS, it["price"], 1),
                "line_amount": self._money(ORDER_ITEMS, it["line"], 2)}
        f = Frame(ORDER_ITEMS, cols, {"order": it["order"], "qty": it["qty"], "price": it["price"],
                                      "line": it["line"], "prod": it["prod"]})
        self._whitespace(f, 3)
        return f

    def format_payments(self, pay, o) -> Frame:
        n = len(pay["order"])
        oid = self._order_ids(o["seq"], o["day"])
        cols = {"payment_id": fixed_ids("PAY" + self.tag + "-", np.arange(1, n + 1), self.cfg.payment_width),
                "order_id": pc.take(oid, pa.array(pay["order"])),
                "payment_ts": self._ts(PAYMENTS, pay["ts"], 1),
                "method": self._enum(PAYMENTS, C.PAYMENT_METHODS, pay["method"], 2),
                "status": self._enum(PAYMENTS, C.PAYMENT_STATUSES, pay["status"], 3),
                "amount": self._money(PAYMENTS, pay["amount"], 4),
                "currency": self._code(PAYMENTS, CURRENCIES, o["cur"][pay["order"]], 5)}
        f = Frame(PAYMENTS, cols, {"order": pay["order"], "status": pay["status"], "ts": pay["ts"],
                                   "amount": pay["amount"], "order_amount": o["amount"][pay["order"]],
                                   "reserve": pay["reserve"]})
        self._whitespace(f, 6)
        return f

    def format_events(self, ev) -> Frame:
        """Consumes ev (numeric columns are dropped as soon as they are formatted)."""
        n = len(ev["ts"])
        cust_n = ev.pop("cust")
        cw = max(7, _ndigits(int(cust_n.max()) + 1 if n else 1))
        cust = fixed_ids("C", np.maximum(cust_n, 0) + 1, cw)
        anon = cust_n < 0
        del cust_n
        if anon.any():
            r = self.mess_rng(EVENTS, 7)
            idx = np.zeros(n, dtype=np.int8)
            idx[anon] = np.where(r.random(int(anon.sum())) < 0.25, 1, 0)
            blank = pc.take(_arr(["", " "]), pa.array(idx))
            cust = pc.if_else(pa.array(anon), blank, cust)
            del blank, idx
        cols = {"event_id": fixed_ids("E" + self.tag + "-", np.arange(1, n + 1), self.cfg.event_width),
                "customer_id": cust}
        cols["session_id"] = fixed_ids("S" + self.tag + "-", ev.pop("sess") + 1, self.cfg.session_width)
        cols["event_type"] = self._enum(EVENTS, C.EVENT_TYPES, ev.pop("type"), 1)
        cols["event_ts"] = self._ts(EVENTS, ev["ts"], 2)
        cols["platform"] = self._enum(EVENTS, C.PLATFORMS, ev.pop("platform"), 3)
        cols["duration_ms"] = integers(ev.pop("dur"))
        f = Frame(EVENTS, cols, {"ts": ev["ts"], "protected": ev["protected"]})
        self._whitespace(f, 4)
        return f
