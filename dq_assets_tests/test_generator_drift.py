"""The generator's valid-looking drift (null_share, unit_change, vanished_value): the same seed
generated with and without each kind, compared file by file from the written CSVs. Only the
requested day changes, only in the drifted column(s); the rows stay valid and consistent
(manifests, line amounts, order totals, payments), and one unit_change day goes through the
whole warehouse without a quarantined row."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from dq_assets.contract import tables as C
from dq_assets.generator.cli import main
from dq_assets.generator.defects import KIND_HELP, VALID_KINDS, DefectError, parse_defect
from dq_assets.generator.generate import generate
from dq_assets.generator.log import GenerationLog
from dq_assets.storage.duckdb.warehouse import release_warehouse
from dq_assets_tests.conftest import Warehouse

START = date(2025, 1, 1)
DAYS = [date(2025, 1, 1), date(2025, 1, 2), date(2025, 1, 3)]
D2 = DAYS[1]
OPD = 50
SEED = 3
MONEY = {"orders": ("amount",), "order_items": ("unit_price", "line_amount"), "payments": ("amount",)}
SPECS = {
    "base": (),
    "null_share": ("2025-01-02:events.null_share@customer_id=0.3",),
    "unit_change": ("2025-01-02:unit_change",),
    "vanished_platform": ("2025-01-02:events.vanished_value@platform.android",),
    "vanished_method": ("2025-01-02:payments.vanished_value@method.card",),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, GenerationLog]]:
    root = tmp_path_factory.mktemp("drift")
    out = {}
    for name, specs in SPECS.items():
        log = generate(root / name, START, len(DAYS), orders_per_day=OPD, seed=SEED, defects=specs)
        out[name] = (root / name, log)
    return out


def folder(root: Path, d: date) -> Path:
    return root / f"ingest_date={d.isoformat()}"


def files(root: Path, d: date) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder(root, d).iterdir())}


def rows(root: Path, d: date, table: str) -> list[dict[str, str]]:
    """The file's rows as dicts of raw text (header trimmed and lower-cased, BOM dropped)."""
    text = (folder(root, d) / C.table(table).file_name).read_bytes().decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in next(reader)]
    return [dict(zip(header, r)) for r in reader]


def dec(s: str) -> Decimal:
    return Decimal(s.strip())


def blank(s: str) -> bool:
    return s.strip(" \t\r\n") == ""


def differing_files(a: Path, b: Path, d: date) -> set[str]:
    fa, fb = files(a, d), files(b, d)
    assert set(fa) == set(fb)
    return {n for n in fa if fa[n] != fb[n]}


def manifest_problems(root: Path, d: date) -> list[str]:
    """Recompute every listed file's row count, sha256 and money total."""
    manifest = json.loads((folder(root, d) / C.MANIFEST_FILE).read_text())
    problems = []
    for t in C.TABLES:
        info = manifest["files"].get(t.file_name)
        if info is None:
            continue
        data = (folder(root, d) / t.file_name).read_bytes()
        if hashlib.sha256(data).hexdigest() != info["sha256"]:
            problems.append(f"{t.name}: sha256")
        rs = rows(root, d, t.name)
        if len(rs) != info["rows"]:
            problems.append(f"{t.name}: rows {len(rs)} vs {info['rows']}")
        if t.manifest_sum:
            col, fld = t.manifest_sum
            if sum((dec(r[col]) for r in rs), Decimal(0)) != Decimal(info[fld]):
                problems.append(f"{t.name}: {fld}")
    return problems


def only_entry(log: GenerationLog, kind: str) -> dict:
    (entry,) = log.day(D2)["injected"]
    assert entry["kind"] == kind and log.day(D2)["valid"] and log.day(D2)["expected_quarantine"] == {}
    return entry


@pytest.mark.parametrize("name", [n for n in SPECS if n != "base"])
def test_other_days_are_byte_identical(runs, name):
    base, drift = runs["base"][0], runs[name][0]
    for d in (DAYS[0], DAYS[2]):
        assert differing_files(base, drift, d) == set(), (name, d)
        assert runs[name][1].day(d)["injected"] == []
    assert manifest_problems(drift, D2) == []


def test_null_share_blanks_a_further_share_of_customer_id(runs):
    (base, _), (drift, log) = runs["base"], runs["null_share"]
    entry = only_entry(log, "null_share")
    assert (entry["table"], entry["column"], entry["rate"]) == ("events", "customer_id", 0.3)
    assert differing_files(base, drift, D2) == {"events.csv", C.MANIFEST_FILE}
    b, a = rows(base, D2, "events"), rows(drift, D2, "events")
    assert len(a) == len(b) == entry["table_rows"]
    changed = 0
    for rb, ra in zip(b, a):
        assert {k: v for k, v in rb.items() if k != "customer_id"} == {k: v for k, v in ra.items() if k != "customer_id"}
        if ra["customer_id"] != rb["customer_id"]:
            assert blank(ra["customer_id"]) and not blank(rb["customer_id"])
            changed += 1
    assert changed == entry["count"] > 0
    share_b = sum(blank(r["customer_id"]) for r in b) / len(b)
    share_a = sum(blank(r["customer_id"]) for r in a) / len(a)
    assert share_a - share_b == pytest.approx(0.3, abs=0.01)
    assert entry["null_after"] - entry["null_before"] == entry["count"]
    mb = json.loads((folder(base, D2) / C.MANIFEST_FILE).read_text())["files"]
    ma = json.loads((folder(drift, D2) / C.MANIFEST_FILE).read_text())["files"]
    assert {n for n in mb if mb[n] != ma[n]} == {"events.csv"}


def test_unit_change_multiplies_exactly_the_money_columns(runs):
    (base, _), (drift, log) = runs["base"], runs["unit_change"]
    entry = only_entry(log, "unit_change")
    assert entry["factor"] == 100 and entry["table"] == "*"
    assert differing_files(base, drift, D2) == {"orders.csv", "order_items.csv", "payments.csv", C.MANIFEST_FILE}
    counted = {}
    for table, money in MONEY.items():
        b, a = rows(base, D2, table), rows(drift, D2, table)
        assert len(a) == len(b) and len(a) > 0
        counted[table] = len(a)
        for rb, ra in zip(b, a):
            assert set(ra) == set(rb)
            for k in ra:
                if k in money:
                    assert dec(ra[k]) == dec(rb[k]) * 100, (table, k, rb[k], ra[k])
                    assert Decimal(0) <= dec(ra[k]) < Decimal(10) ** C.NUMBER_DIGITS
                else:
                    assert ra[k] == rb[k], (table, k)
    assert entry["tables"] == counted and entry["count"] == sum(counted.values())
    # the manifest's totals follow the files: x100, and recomputed from the files
    mb = json.loads((folder(base, D2) / C.MANIFEST_FILE).read_text())["files"]
    ma = json.loads((folder(drift, D2) / C.MANIFEST_FILE).read_text())["files"]
    for t in ("orders", "order_items", "payments"):
        fld = C.table(t).manifest_sum[1]
        assert Decimal(ma[f"{t}.csv"][fld]) == Decimal(mb[f"{t}.csv"][fld]) * 100
        assert ma[f"{t}.csv"]["rows"] == mb[f"{t}.csv"]["rows"]
    assert ma["products.csv"] == mb["products.csv"]
    assert manifest_problems(drift, D2) == []
    # items, orders and payments consistent with each other
    items = rows(drift, D2, "order_items")
    totals: dict[str, Decimal] = {}
    for r in items:
        assert dec(r["line_amount"]) == int(r["quantity"].strip()) * dec(r["unit_price"])
        totals[r["order_id"].strip()] = totals.get(r["order_id"].strip(), Decimal(0)) + dec(r["line_amount"])
    orders = {r["order_id"].strip(): dec(r["amount"]) for r in rows(drift, D2, "orders")}
    assert totals and all(orders[o] == t for o, t in totals.items())
    captured = [r for r in rows(drift, D2, "payments") if r["status"].strip().lower() == "captured"]
    assert captured and all(dec(p["amount"]) == orders[p["order_id"].strip()]
                            for p in captured if p["order_id"].strip() in orders)


@pytest.mark.parametrize("name, table, column, value", [
    ("vanished_platform", "events", "platform", "android"),
    ("vanished_method", "payments", "method", "card"),
])
def test_vanished_value_is_absent_that_day(runs, name, table, column, value):
    (base, _), (drift, log) = runs["base"], runs[name]
    entry = only_entry(log, "vanished_value")
    assert (entry["table"], entry["column"], entry["value"]) == (table, column, value)
    assert differing_files(base, drift, D2) == {C.table(table).file_name, C.MANIFEST_FILE}
    b, a = rows(base, D2, table), rows(drift, D2, table)
    assert len(a) == len(b)
    accepted = set(C.table(table).column(column).values)
    had = 0
    for rb, ra in zip(b, a):
        assert {k: v for k, v in rb.items() if k != column} == {k: v for k, v in ra.items() if k != column}
        new = ra[column].strip().lower()
        assert new in accepted - {value}
        if rb[column].strip().lower() == value:
            had += 1
        else:
            assert ra[column] == rb[column]
    assert had == entry["count"] > 0 and sum(entry["replaced_by"].values()) == had
    assert value not in entry["replaced_by"]
    if column == "platform":  # a session keeps one platform
        per_session: dict[str, set[str]] = {}
        for r in a:
            per_session.setdefault(r["session_id"].strip(), set()).add(r["platform"].strip().lower())
        assert all(len(p) == 1 for p in per_session.values())


def test_spellings_and_defaults():
    for text in ("2025-01-02:events.null_share@customer_id=0.3", "2025-01-02:unit_change=100",
                 "2025-01-02:events.vanished_value@platform.android"):
        assert str(parse_defect(text)) == text
    s = parse_defect("vanished_value")
    assert (s.table, s.option) == (None, None)
    assert {"null_share", "unit_change", "vanished_value"} <= set(VALID_KINDS) & set(KIND_HELP)


@pytest.mark.parametrize("spec, message", [
    ("events.null_share@session_id", "null_share needs a nullable column; events.session_id is required"),
    ("orders.null_share@customer_id", "null_share does not apply to table orders"),
    ("null_share=1.5", "null_share RATE must be in (0, 1)"),
    ("unit_change=0.5", "unit_change FACTOR must be an integer >= 2"),
    ("unit_change=1", "unit_change FACTOR must be an integer >= 2"),
    ("orders.unit_change", "unit_change scales every fact table's money at once; give no table"),
    ("events.vanished_value@duration_ms.5", "vanished_value needs an ENUM column; events.duration_ms is integer"),
    ("events.vanished_value@platform.windows", "'windows' is not an accepted value of events.platform"),
    ("events.vanished_value@platform", "vanished_value option must be COLUMN.VALUE"),
    ("events.vanished_value@platform.android=2", "vanished_value takes no value"),
    ("orders.extra_column@coupon.code", "only vanished_value takes an option COLUMN.VALUE"),
])
def test_refused_specs(spec, message):
    with pytest.raises(DefectError) as e:
        parse_defect(spec)
    assert message in str(e.value)


def test_cli_refuses_with_the_message(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--start", "2025-01-01", "--days", "1",
                 "--on", "2025-01-01:events.null_share@event_id"]) == 2
    assert "null_share needs a nullable column" in capsys.readouterr().err


def test_a_unit_change_day_passes_the_gate_without_quarantine(tmp_path, instance, capsys):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "ingest_date=2024-12-31").mkdir()  # --clean removes it
    assert main(["--out", str(landing), "--start", "2025-01-01", "--days", "1", "--orders-per-day", str(OPD),
                 "--seed", str(SEED), "--clean", "--on", "2025-01-01:unit_change"]) == 0
    assert [p.name for p in landing.glob("ingest_date=*")] == ["ingest_date=2025-01-01"]
    assert GenerationLog.load(landing).injections(START, "unit_change")[0]["factor"] == 100
    wh = Warehouse(landing, tmp_path / "warehouse.duckdb", instance)
    try:
        result = wh.materialize(START.isoformat())
        assert result.success
        [(gate,)] = wh.query("SELECT gate_passed FROM quality.partition_gate WHERE ingest_date = DATE '2025-01-01'")
        assert gate is True
        for t in C.TABLE_NAMES:
            assert wh.query(f"SELECT count(*) FROM quality.{t}_quarantine") == [(0,)], t
        assert wh.query("SELECT count(*) FROM quality.recon_row_mismatches") == [(0,)]
        assert wh.failed_checks(START.isoformat()) == {}
        # the amounts arrived in cents: the staged revenue is the file's, x100 of the usual
        [(amount,)] = wh.query("SELECT sum(amount) FROM staging.orders")
        manifest = json.loads((landing / "ingest_date=2025-01-01" / C.MANIFEST_FILE).read_text())
        assert Decimal(amount) == Decimal(manifest["files"]["orders.csv"]["amount_sum"])
    finally:
        release_warehouse(str(wh.database))
