"""The landing-zone generator: determinism, manifests, clean days that are 100% valid, and
defects that yield exactly what the log says.

The validator here is written independently of the generator (plain pandas + regex + Decimal),
from docs/contract.md; it only borrows the table declarations of dq_assets.contract.tables.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from dq_assets.contract import tables as C
from dq_assets.generator.cli import main
from dq_assets.generator.constants import LOG_FILE
from dq_assets.generator.defects import VALID_KINDS, DefectError, parse_defect
from dq_assets.generator.generate import generate
from dq_assets.generator.log import GenerationLog

START = date(2025, 1, 1)
D2 = date(2025, 1, 2)
OPD = 30

TS_RE = r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?|\d+)$"
DEC_RE = r"^[+-]?\d+(\.\d+)?$"
INT_RE = r"^[+-]?\d+$"
EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
MONEY = re.compile(DEC_RE)


# ----------------------------------------------------------------------------- reading


def partition(root: Path, d: date) -> Path:
    return root / f"ingest_date={d.isoformat()}"


def read_table(path: Path) -> pd.DataFrame:
    """Raw values as text; column names trimmed and lower-cased; `_line` = physical line."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    df.columns = [c.strip().lower() for c in df.columns]
    df["_line"] = range(2, len(df) + 2)
    return df


def read_partition(root: Path, d: date) -> dict[str, pd.DataFrame]:
    out = {}
    for t in C.TABLES:
        p = partition(root, d) / t.file_name
        if p.exists():
            out[t.name] = read_table(p)
    return out


def trimmed(s: pd.Series) -> pd.Series:
    return s.str.strip(" ")


def parse_ts(s: pd.Series) -> pd.Series:
    """Accepted spellings -> UTC timestamps; anything else NaT. Zoned and naive values are
    parsed apart (pandas would otherwise let a naive value inherit a neighbour's offset)."""
    s = trimmed(s)
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
    ok = s.str.match(TS_RE)
    epoch = ok & s.str.fullmatch(r"\d+")
    if epoch.any():
        out[epoch] = pd.to_datetime(s[epoch].astype("int64"), unit="s", utc=True)
    zoned = ok & ~epoch & s.str.contains(r"(?:Z|[+-]\d{2}:\d{2})$")
    naive = ok & ~epoch & ~zoned
    for m in (zoned, naive):
        if m.any():
            out[m] = pd.to_datetime(s[m], format="ISO8601", utc=True, errors="coerce")
    return out


def dec(s: pd.Series) -> pd.Series:
    return trimmed(s).map(lambda v: Decimal(v) if MONEY.match(v) else None)


# ----------------------------------------------------------------------------- validator


class Validator:
    """Applies the contract's row rules partition by partition; remembers received keys."""

    def __init__(self, root: Path):
        self.root = root
        self.received: dict[str, set[str]] = {t: set() for t in C.TABLE_NAMES}
        self.captured: set[str] = set()

    def run(self, d: date) -> tuple[dict[str, dict[str, set[int]]], dict[str, pd.DataFrame]]:
        frames = read_partition(self.root, d)
        for name in (C.table(n).name for n in C.TABLE_NAMES):
            if name in frames:
                keys = trimmed(frames[name][C.table(name).key[0]]) if C.table(name).key[0] in frames[name] else pd.Series([], dtype=str)
                if name in ("customers", "products", "orders"):
                    self.received[name] |= set(keys[keys != ""])
        same_partition_orders = set()
        if "orders" in frames and "order_id" in frames["orders"]:
            k = trimmed(frames["orders"]["order_id"])
            same_partition_orders = set(k[k != ""])
        end = datetime(d.year, d.month, d.day, tzinfo=timezone.utc) + timedelta(days=1, hours=1)
        result = {}
        for name, df in frames.items():
            result[name] = self.table(C.table(name), df, pd.Timestamp(end), same_partition_orders)
        p = frames.get("payments")
        if p is not None and {"status", "order_id"} <= set(p.columns):
            cap = trimmed(p["status"]).str.lower() == "captured"
            self.captured |= set(trimmed(p.loc[cap, "order_id"]))
        return result, frames

    def table(self, tab: C.Table, df: pd.DataFrame, end: pd.Timestamp, orders_here: set[str]) -> dict[str, set[int]]:
        fails: dict[str, pd.Series] = {r: pd.Series(False, index=df.index) for r in C.REJECT_REASONS}
        typed: dict[str, pd.Series] = {}
        for col in tab.columns:
            if col.name not in df:
                continue
            v = trimmed(df[col.name])
            blank = v == ""
            if not col.nullable:
                fails["missing_required"] |= blank
            if col.kind == C.DECIMAL:
                bad = ~blank & ~v.str.match(DEC_RE)
                typed[col.name] = dec(v)
            elif col.kind == C.INTEGER:
                bad = ~blank & ~v.str.match(INT_RE)
                typed[col.name] = v.where(~bad & ~blank).map(lambda x: Decimal(x) if isinstance(x, str) else None)
            elif col.kind == C.TIMESTAMP:
                ts = parse_ts(v)
                bad = ~blank & ts.isna()
                typed[col.name] = ts
                if col.not_future:
                    fails["future_timestamp"] |= ts.notna() & (ts > end)
            else:
                bad = pd.Series(False, index=df.index)
            fails["unparseable"] |= bad
            if col.kind == C.EMAIL:
                fails["invalid_value"] |= ~blank & ~v.str.match(EMAIL_RE)
            elif col.kind == C.COUNTRY:
                fails["invalid_value"] |= ~blank & ~v.str.upper().isin(C.country_codes())
            elif col.kind == C.CURRENCY:
                fails["invalid_value"] |= ~blank & ~v.str.upper().isin(C.currency_codes())
            elif col.kind == C.ENUM:
                fails["invalid_value"] |= ~blank & ~v.str.lower().isin(col.values)
            if col.min is not None or col.max is not None:
                t = typed[col.name]
                lo = t.map(lambda x: x is not None and col.min is not None and x < col.min)
                hi = t.map(lambda x: x is not None and col.max is not None and x > col.max)
                fails["out_of_range"] |= lo.astype(bool) | hi.astype(bool)
            if col.references and not blank.all():
                ref = col.references
                keys = orders_here if ref.scope == C.SAME_PARTITION else self.received[ref.table]
                fails["unknown_reference"] |= ~blank & ~v.isin(keys)
        if tab.name == "order_items" and {"quantity", "unit_price", "line_amount"} <= set(typed):
            q, p, la = typed["quantity"], typed["unit_price"], typed["line_amount"]
            mism = pd.Series([a is not None and b is not None and c is not None and abs(c - a * b) > Decimal("0.01")
                              for a, b, c in zip(q, p, la)], index=df.index)
            fails["calculation_mismatch"] |= mism
        if tab.name == "payments" and {"status", "amount"} <= set(typed) | set(df.columns):
            st = trimmed(df["status"]).str.lower()
            amt = typed["amount"]
            fails["out_of_range"] |= st.isin(["captured", "refunded"]) & amt.map(lambda x: x is not None and x <= 0)
        # duplicates: exact raw rows, then older versions of a key (by version column, file order)
        cols = [c for c in df.columns if c != "_line"]
        dup = df.duplicated(subset=cols, keep="first")
        key = [k for k in tab.key if k in df]
        if key:
            rest = df[~dup]
            kv = rest[key].apply(lambda s: trimmed(s))
            if tab.version_column and tab.version_column in typed:
                ver = typed[tab.version_column][~dup]
                order = pd.DataFrame({"v": ver, "pos": range(len(rest))}, index=rest.index)
                order = pd.concat([kv, order], axis=1).sort_values(["v", "pos"])
                older = order.duplicated(subset=key, keep="last")
                dup |= older.reindex(df.index, fill_value=False)
            else:
                dup |= kv.duplicated(keep="first").reindex(df.index, fill_value=False)
        fails["duplicate"] |= dup
        return {r: set(df.loc[m, "_line"]) for r, m in fails.items() if m.any()}


def reject_lines(result: dict[str, dict[str, set[int]]]) -> dict[tuple[str, str], set[int]]:
    return {(t, r): lines for t, reasons in result.items() for r, lines in reasons.items() if lines}


def logged_lines(day_log: dict) -> dict[tuple[str, str], set[int]]:
    out: dict[tuple[str, str], set[int]] = {}
    for e in day_log["injected"]:
        if e["kind"] in C.REJECT_REASONS:
            out.setdefault((e["table"], e["kind"]), set()).update(r["line"] for r in e["rows"])
    return {k: v for k, v in out.items() if v}


def reconcile(frames: dict[str, pd.DataFrame], captured: set[str],
              rejected: dict[str, dict[str, set[int]]] | None = None) -> dict[str, list[str]]:
    """Cross-table checks: an order's amount = the sum of its items' line_amount as written
    (exact duplicates once), and paid/shipped/delivered orders have a captured payment.
    Orders that are themselves rejected (quarantined) are left out."""
    problems: dict[str, list[str]] = {}
    o, it = frames.get("orders"), frames.get("order_items")
    if o is not None and rejected and rejected.get("orders"):
        bad = set().union(*rejected["orders"].values())
        o = o[~o["_line"].isin(bad)]
    if o is not None and it is not None:
        items = it.drop_duplicates(subset=[c for c in it.columns if c != "_line"])
        sums: dict[str, Decimal] = {}
        for oid, la in zip(trimmed(items["order_id"]), dec(items["line_amount"])):
            sums[oid] = sums.get(oid, Decimal(0)) + (la or 0)
        for oid, amt in zip(trimmed(o["order_id"]), dec(o["amount"])):
            if oid in sums and amt is not None and abs(sums[oid] - amt) > Decimal("0.01"):
                problems.setdefault("amount_vs_items", []).append(oid)
    if o is not None:
        st = trimmed(o["status"]).str.lower()
        paid = trimmed(o.loc[st.isin(C.REVENUE_STATUSES), "order_id"])
        missing = sorted(set(paid) - captured)
        if missing:
            problems["paid_without_capture"] = missing
    return problems


def event_hours(frames: dict[str, pd.DataFrame], d: date) -> set[int]:
    ts = parse_ts(frames["events"]["event_ts"])
    ts = ts[ts.dt.date == d]
    return set(ts.dt.hour)


# ----------------------------------------------------------------------------- manifest


def money_sum(path: Path, column: str) -> str:
    df = read_table(path)
    if column not in df:
        return "0.00"
    total = sum((x for x in dec(df[column]) if x is not None), Decimal(0))
    return str(total.quantize(Decimal("0.01")))


def manifest_problems(root: Path, d: date, log_day: dict) -> list[str]:
    folder = partition(root, d)
    manifest = json.loads((folder / C.MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["ingest_date"] == d.isoformat()
    problems = []
    present = {p.name for p in folder.iterdir() if p.name != C.MANIFEST_FILE}
    listed = set(manifest["files"])
    problems += [f"missing_file:{f}" for f in sorted(listed - present)]
    problems += [f"unlisted_file:{f}" for f in sorted(present - listed)]
    for name in sorted(listed & present):
        entry = manifest["files"][name]
        path = folder / name
        tab = C.table(name.removesuffix(".csv"))
        if entry["rows"] != len(read_table(path)):
            problems.append(f"rows:{name}")
        if entry["sha256"] != hashlib.sha256(path.read_bytes()).hexdigest():
            problems.append(f"sha256:{name}")
        if tab.manifest_sum:
            col, fld = tab.manifest_sum
            if entry[fld] != money_sum(path, col):
                problems.append(f"{fld}:{name}")
        else:
            assert set(entry) == {"rows", "sha256"}
    return problems


# ----------------------------------------------------------------------------- fixtures


def gen(tmp_path: Path, *defects: str, days: int = 2, opd: int = OPD, seed: int = 3, name: str = "landing", **kw):
    root = tmp_path / name
    log = generate(root, START, days, opd, seed, [parse_defect(s) for s in defects], **kw)
    return root, log


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def clean_zone(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean") / "landing"
    log = generate(root, START, 4, 60, 11, [parse_defect("2025-01-03:products.no_changes")])
    return root, log


# ----------------------------------------------------------------------------- tests


def test_deterministic(tmp_path):
    defects = ("orders.invalid_value=0.05", "2025-01-02:payments.unknown_reference=2",
               "2025-01-02:events.partial_load=5", "2025-01-02:resent_orders=3")
    a, _ = gen(tmp_path, *defects, name="a")
    b, _ = gen(tmp_path, *defects, name="b")
    c, _ = gen(tmp_path, *defects, name="c", seed=4)
    ta, tb, tc = tree(a), tree(b), tree(c)
    assert ta == tb
    assert LOG_FILE in ta and "ingest_date=2025-01-01/_manifest.json" in ta
    assert ta.keys() == tc.keys() and ta != tc


def test_clean_days_are_valid(clean_zone):
    root, log = clean_zone
    v = Validator(root)
    for entry in log.days:
        d = date.fromisoformat(entry["ingest_date"])
        assert entry["injected"] == [] or all(e["kind"] in VALID_KINDS for e in entry["injected"])
        assert manifest_problems(root, d, entry) == []
        result, frames = v.run(d)
        assert reject_lines(result) == {}, d
        assert reconcile(frames, v.captured) == {}, d
        assert event_hours(frames, d) == set(range(24)), d
        # every table present has the contract's columns (any order, any case, trimmed)
        for name, df in frames.items():
            assert set(df.columns) - {"_line"} == set(C.table(name).column_names)
        # volume and feed sizes
        assert 0.9 * 60 <= len(frames["orders"]) <= 1.1 * 60
        assert 2.0 <= len(frames["order_items"]) / len(frames["orders"]) <= 3.0
        assert 8 <= len(frames["events"]) / len(frames["orders"]) <= 12
    first = log.days[0]["files"]
    assert first["customers.csv"]["rows"] == 60 and 30 <= first["products.csv"]["rows"] <= 200
    assert log.day("2025-01-02")["files"]["customers.csv"]["rows"] < 10
    # no_changes: products absent and unlisted on 2025-01-03 (valid)
    assert not (partition(root, date(2025, 1, 3)) / "products.csv").exists()
    assert log.day("2025-01-03")["files"]["products.csv"] == {"rows": 0, "present": False, "listed": False}


def test_clean_data_is_messy_but_valid(clean_zone):
    root, log = clean_zone
    raw = b"".join(p.read_bytes() for p in root.rglob("*.csv"))
    text = raw.decode("utf-8-sig")
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}[,\n\r]", text)  # space, no zone
    assert re.search(r"T\d{2}:\d{2}:\d{2}\.\d{3}Z", text)  # fractional + Z
    assert re.search(r"[+-]\d{2}:\d{2}[,\r\n]", text)  # offsets
    assert re.search(r",1735\d{6}[,\r\n]", text)  # epoch seconds
    assert re.search(r'"[^"\n]*,[^"\n]*"', text)  # quoted field with a comma
    assert re.search(r",(PAID|Paid|CAPTURED|Captured|Page_view|PAGE_VIEW),", text)  # enum case
    assert re.search(r",(eur|Eur|usd|gbp),", text)  # currency case
    assert re.search(r", \S|\S ,", text)  # surrounding whitespace
    mess = [d["mess"] for d in log.days]
    assert any(m["shuffled_columns"] for m in mess)
    assert sum(m["late_rows"]["orders"] + m["late_rows"]["events"] for m in mess) > 0


def test_change_feeds_reference_only_sent_keys(clean_zone):
    root, _ = clean_zone
    sent: set[str] = set()
    for i in range(4):
        d = START + timedelta(days=i)
        frames = read_partition(root, d)
        sent |= set(trimmed(frames["customers"]["customer_id"]))
        refs = set(trimmed(frames["orders"]["customer_id"])) | (set(trimmed(frames["events"]["customer_id"])) - {""})
        assert refs <= sent
        ids = trimmed(frames["orders"]["order_id"])
        assert ids.str.fullmatch(r"O\d{8}-\d{6}").all()
        assert ids.str.startswith("O" + d.strftime("%Y%m%d")).all()
        assert trimmed(frames["customers"]["customer_id"]).str.fullmatch(r"C\d{7}").all()
        assert trimmed(frames["order_items"]["product_id"]).str.fullmatch(r"P\d{5}").all()


ROW_DEFECTS = [
    "orders.missing_required=2", "customers.missing_required=1", "products.missing_required=1",
    "order_items.missing_required=2", "payments.missing_required=2", "events.missing_required@event_type=3",
    "orders.unparseable=2", "orders.unparseable@amount=3", "order_items.unparseable=2",
    "order_items.unparseable@unit_price=1", "payments.unparseable=2", "payments.unparseable@amount=1",
    "events.unparseable=3", "events.unparseable@duration_ms=2", "customers.unparseable=1",
    "products.unparseable=1",
    "orders.invalid_value=2", "orders.invalid_value@currency=3", "customers.invalid_value=1",
    "customers.invalid_value@country_code=2", "products.invalid_value=1", "payments.invalid_value=2",
    "payments.invalid_value@status=1", "events.invalid_value=2", "events.invalid_value@platform=2",
    "orders.out_of_range=2", "products.out_of_range=1", "order_items.out_of_range=2",
    "payments.out_of_range=2", "events.out_of_range=3",
    "orders.future_timestamp=2", "payments.future_timestamp=2",
    "order_items.calculation_mismatch=3",
    "orders.unknown_reference=2", "order_items.unknown_reference=2",
    "order_items.unknown_reference@order_id=1", "payments.unknown_reference=2", "events.unknown_reference=2",
    "orders.duplicate=4", "orders.duplicate@older=2", "customers.duplicate@older=1",
    "products.duplicate@older=1", "order_items.duplicate=2", "payments.duplicate=2", "events.duplicate=3",
]


@pytest.fixture(scope="module")
def first_day_validated(tmp_path_factory) -> tuple[dict, Validator]:
    """The first day of a two-day zone, validated: the row-defect cases put their defects on
    the second day, and each checks that its first day is this one, byte for byte."""
    root, _ = gen(tmp_path_factory.mktemp("first-day"))
    v = Validator(root)
    first, _ = v.run(START)
    assert reject_lines(first) == {}
    return tree(root / f"ingest_date={START}"), v


@pytest.mark.parametrize("spec", ROW_DEFECTS)
def test_row_defect_exact(tmp_path, spec, first_day_validated):
    root, log = gen(tmp_path, f"2025-01-02:{spec}")
    day = log.day(D2)
    (entry,) = day["injected"]
    table, kind = spec.split("=")[0].split("@")[0].split(".")
    count = int(spec.split("=")[1])
    assert (entry["kind"], entry["table"], entry["count"], len(entry["rows"])) == (kind, table, count, count)
    assert day["expected_quarantine"] == {table: {kind: count}}
    assert manifest_problems(root, D2, day) == []
    first_files, after_first = first_day_validated
    assert tree(root / f"ingest_date={START}") == first_files  # clean, as validated once
    v = copy.deepcopy(after_first)  # the keys received and payments captured on the first day
    v.root = root
    result, frames = v.run(D2)
    # exactly the logged lines fail, each for exactly the injected reason
    assert reject_lines(result) == logged_lines(day)
    df = frames[table]
    for r in entry["rows"]:
        row = df[df["_line"] == r["line"]].iloc[0]
        for k, val in r["key"].items():
            assert row[k].strip() == val
        if "value" in r and kind not in ("calculation_mismatch", "out_of_range") or kind == "invalid_value":
            assert row[entry.get("column", k)] == r["value"]
    # no cascade: the other tables stay clean, amounts still reconcile, paid orders captured
    assert reconcile(frames, v.captured, result) == {}
    assert event_hours(frames, D2) == set(range(24))


def test_rate_defects_on_every_table(tmp_path):
    root, log = gen(tmp_path, "*.invalid_value=0.1", "duplicate=0.05", days=3, opd=80,
                    clean_dims_after_day_one=True)
    v = Validator(root)
    for day in log.days:
        d = date.fromisoformat(day["ingest_date"])
        assert manifest_problems(root, d, day) == []
        result, _ = v.run(d)
        assert reject_lines(result) == logged_lines(day)
        tables = {e["table"] for e in day["injected"]}
        if d > START:
            assert not tables & {"customers", "products"}
    total = sum(e["count"] for day in log.days for e in day["injected"])
    assert total > 20


@pytest.mark.parametrize("option", ["rows", "sha256", "sum"])
def test_manifest_drift(tmp_path, option):
    root, log = gen(tmp_path, f"2025-01-02:payments.manifest_drift@{option}")
    day = log.day(D2)
    (e,) = day["injected"]
    fld = {"rows": "rows", "sha256": "sha256", "sum": "amount_sum"}[option]
    assert e["field"] == fld and e["manifest"] != e["actual"]
    manifest = json.loads((partition(root, D2) / C.MANIFEST_FILE).read_text())
    assert manifest["files"]["payments.csv"][fld] == e["manifest"]
    path = partition(root, D2) / "payments.csv"
    actual = {"rows": len(read_table(path)), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
              "amount_sum": money_sum(path, "amount")}[fld]
    assert actual == e["actual"]
    key = {"rows": "rows", "sha256": "sha256", "amount_sum": "amount_sum"}[fld]
    assert manifest_problems(root, D2, day) == [f"{key}:payments.csv"]


def test_missing_and_unlisted_files(tmp_path):
    root, log = gen(tmp_path, "2025-01-02:payments.missing_file", "2025-01-02:events.unlisted_file")
    day = log.day(D2)
    assert {(e["kind"], e["table"]) for e in day["injected"]} == {("missing_file", "payments"),
                                                                   ("unlisted_file", "events")}
    assert manifest_problems(root, D2, day) == ["missing_file:payments.csv", "unlisted_file:events.csv"]
    assert day["files"]["payments.csv"]["present"] is False
    assert day["files"]["events.csv"]["listed"] is False


def test_missing_and_extra_columns(tmp_path):
    root, log = gen(tmp_path, "2025-01-02:orders.missing_column", "2025-01-02:events.extra_column@referrer",
                    "2025-01-02:order_items.extra_column")
    day = log.day(D2)
    frames = read_partition(root, D2)
    assert "currency" not in frames["orders"] and "referrer" in frames["events"] and "note" in frames["order_items"]
    assert manifest_problems(root, D2, day) == []
    assert {(e["kind"], e["table"], e["column"]) for e in day["injected"]} == {
        ("missing_column", "orders", "currency"), ("extra_column", "events", "referrer"),
        ("extra_column", "order_items", "note")}


def test_partial_load(tmp_path):
    root, log = gen(tmp_path, "2025-01-02:partial_load=6")
    (e,) = log.day(D2)["injected"]
    assert len(e["hours"]) == 6 and e["count"] > 0
    frames = read_partition(root, D2)
    assert event_hours(frames, D2) == set(range(24)) - set(e["hours"])
    all_hours = set(parse_ts(frames["events"]["event_ts"]).dt.hour)
    assert not all_hours & set(e["hours"])
    assert manifest_problems(root, D2, log.day(D2)) == []


def test_volume_drop(tmp_path):
    root, log = gen(tmp_path, "2025-01-02:volume_drop=0.3", opd=100)
    n1 = log.day(START)["files"]["orders.csv"]["rows"]
    n2 = log.day(D2)["files"]["orders.csv"]["rows"]
    assert n2 < 0.4 * n1 and n2 < 0.4 * 100
    assert log.day(D2)["files"]["events.csv"]["rows"] < 0.4 * log.day(START)["files"]["events.csv"]["rows"]
    v = Validator(root)
    v.run(START)
    result, frames = v.run(D2)
    assert reject_lines(result) == {} and event_hours(frames, D2) == set(range(24))


def test_late_arriving_and_resent_orders_are_valid(tmp_path):
    root, log = gen(tmp_path, "2025-01-03:resent_orders=8", "2025-01-03:late_arriving=4",
                    "2025-01-03:events.late_arriving=10", days=3)
    day = log.day("2025-01-03")
    assert day["valid"] and day["expected_quarantine"] == {}
    by = {(e["kind"], e["table"]): e for e in day["injected"]}
    resent, late, late_ev = by["resent_orders", "orders"], by["late_arriving", "orders"], by["late_arriving", "events"]
    assert resent["count"] == 8 == len(resent["rows"]) == resent["changed"] + resent["unchanged"]
    assert late["count"] == 4 == len(late["rows"]) and late_ev["count"] == 10 == len(late_ev["rows"])
    v = Validator(root)
    for d in (START, D2):
        v.run(d)
    d3 = date(2025, 1, 3)
    result, frames = v.run(d3)
    assert reject_lines(result) == {}
    assert reconcile(frames, v.captured) == {}
    assert manifest_problems(root, d3, day) == []
    o = frames["orders"]
    for r in resent["rows"]:
        row = o[o["_line"] == r["line"]].iloc[0]
        assert row["order_id"].strip() == r["key"]["order_id"] and r["from_ingest_date"] < "2025-01-03"
        assert not row["order_id"].strip().startswith("O20250103")
    for r in late["rows"]:
        ts = parse_ts(o.loc[o["_line"] == r["line"], "order_ts"]).iloc[0]
        assert ts.date() < d3
    changed = [r for r in resent["rows"] if "amount" in r["change"]]
    assert changed and resent["order_items_lines"] and resent["payments_lines"]
    items = frames["order_items"]
    resent_items = items[items["_line"].isin(resent["order_items_lines"])]
    assert set(trimmed(resent_items["order_id"])) == {r["key"]["order_id"] for r in changed}
    ev = frames["events"]
    late_ts = parse_ts(ev.loc[ev["_line"].isin([r["line"] for r in late_ev["rows"]]), "event_ts"])
    assert (late_ts.dt.date < d3).all()
    assert event_hours(frames, d3) == set(range(24))


def test_log_file_and_format(tmp_path):
    root, log = gen(tmp_path, "2025-01-02:orders.invalid_value=1")
    data = json.loads((root / LOG_FILE).read_text())
    assert data["params"]["defects"] == ["2025-01-02:orders.invalid_value=1"]
    assert GenerationLog.load(root).days == log.days
    (e,) = log.injections(D2, "invalid_value")
    assert set(e["rows"][0]) == {"line", "key", "value"}
    assert not any(p.name == LOG_FILE for p in root.glob("ingest_date=*/*"))


def test_parse_defect_and_errors(tmp_path):
    s = parse_defect("2025-01-12:orders.invalid_value@currency=3")
    assert (s.day, s.table, s.kind, s.option, s.value, s.is_rate) == (date(2025, 1, 12), "orders", "invalid_value",
                                                                      "currency", 3.0, False)
    assert parse_defect("invalid_value=0.02").is_rate
    assert str(s) == "2025-01-12:orders.invalid_value@currency=3"
    for bad in ("nonsense", "order_items.invalid_value", "customers.unknown_reference", "orders.out_of_range@status",
                "events.duplicate@older", "customers.manifest_drift@sum"):
        with pytest.raises(DefectError):
            parse_defect(bad)
    with pytest.raises(DefectError):
        gen(tmp_path, "2025-01-02:orders.invalid_value=500")


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["--out", str(out), "--start", "2025-01-01", "--days", "2", "--orders-per-day", "20",
               "--seed", "5", "--defect", "events.duplicate=0.01",
               "--on", "2025-01-02:orders.invalid_value=2", "--clean-dims-after-day-one"])
    assert rc == 0
    log = GenerationLog.load(out)
    assert log.injections(D2, "invalid_value", "orders")[0]["count"] == 2
    assert (out / "ingest_date=2025-01-02" / "orders.csv").exists()
    assert main(["--out", str(out), "--start", "2025-01-01", "--days", "1", "--on", "orders.invalid_value=1"]) == 2
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    help_text = capsys.readouterr().out
    assert "--on" in help_text and "manifest_drift" in help_text and "[TABLE.]KIND" in help_text


def test_shipped_sample_is_reproducible(tmp_path):
    """data/landing is exactly what the command in data/README.md writes."""
    repo = Path(__file__).resolve().parents[1]
    landing = repo / "data" / "landing"
    assert (landing / LOG_FILE).exists(), "the sample landing zone is missing from data/"
    log = GenerationLog.load(landing)
    p = log.params
    readme = (repo / "data" / "README.md").read_text(encoding="utf-8")
    command = re.search(r"dq-generate --out data/landing (.*?)\n```", readme, re.S).group(1)
    argv = ["--out", str(tmp_path / "sample")] + command.replace("\\\n", " ").split()
    assert main(argv) == 0
    assert tree(tmp_path / "sample") == tree(landing)
    assert p["start"] == "2025-01-01" and len(log.days) == 15 and p["orders_per_day"] == 40
    assert sum(len(b) for b in tree(landing).values()) < 5_000_000
    expected = {"2025-01-11": {"orders": {"invalid_value": 1}, "payments": {"unparseable": 1},
                               "events": {"duplicate": 1}},
                "2025-01-12": {"orders": {"missing_required": 1}, "payments": {"unknown_reference": 1}}}
    for day in log.days:
        assert day["expected_quarantine"] == expected.get(day["ingest_date"], {})
        assert day["valid"] == (day["ingest_date"] not in ("2025-01-11", "2025-01-12", "2025-01-13"))
