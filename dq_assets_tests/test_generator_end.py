"""`dq-generate --end`: days that end on a date, or on yesterday (UTC) for a demo whose
freshness checks pass; the same days as the `--start` that begins them, and what to run next
printed (the first day as DQ_PARTITIONS_START, one run over the days)."""

from datetime import date

import pytest

from dq_assets.generator import cli
from dq_assets.generator.constants import PARTITION_PREFIX
from dq_assets.generator.log import GenerationLog


def tree(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def days_in(root) -> list[str]:
    return sorted(p.name.removeprefix(PARTITION_PREFIX) for p in root.glob(PARTITION_PREFIX + "*"))


def test_end_writes_the_days_that_end_there(tmp_path, capsys):
    by_end, by_start = tmp_path / "end", tmp_path / "start"
    assert cli.main(["--out", str(by_end), "--end", "2025-03-02", "--days", "3", "--orders-per-day", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"wrote 3 partitions 2025-02-28..2025-03-02 to {by_end} ")
    # what to run next: the landing zone and the first partition, then one run over the days
    assert out[2] == f"  export DQ_LANDING={by_end.resolve()} DQ_PARTITIONS_START=2025-02-28"
    assert out[3] == ("  dagster asset materialize -m dq_assets --select '*' "
                      "--partition-range 2025-02-28...2025-03-02 -c dq_assets/console.yaml")
    assert days_in(by_end) == ["2025-02-28", "2025-03-01", "2025-03-02"]
    assert GenerationLog.load(by_end).params["start"] == "2025-02-28"
    # the same content as the --start that begins the same days
    assert cli.main(["--out", str(by_start), "--start", "2025-02-28", "--days", "3", "--orders-per-day", "5"]) == 0
    assert tree(by_end) == tree(by_start)


def test_end_yesterday_is_the_last_complete_utc_day(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "utc_today", lambda: date(2026, 3, 1))
    assert cli.main(["--out", str(tmp_path), "--end", "yesterday", "--days", "2", "--orders-per-day", "5",
                     "--on", "2026-02-28:orders.invalid_value=1"]) == 0
    assert days_in(tmp_path) == ["2026-02-27", "2026-02-28"]
    assert GenerationLog.load(tmp_path).injections(date(2026, 2, 28), "invalid_value", "orders")
    assert capsys.readouterr().out.splitlines()[-1].endswith("--partition-range 2026-02-27...2026-02-28 "
                                                             "-c dq_assets/console.yaml")


@pytest.mark.parametrize("argv, error", [
    (["--start", "2025-01-01", "--end", "2025-01-03"], "argument --end: not allowed with argument --start"),
    ([], "one of the arguments --start --end is required"),
    (["--end", "tomorrow"], "argument --end: 'tomorrow' is not a date YYYY-MM-DD"),
    (["--end", "2025-02-30"], "argument --end: '2025-02-30' is not a date YYYY-MM-DD"),
])
def test_start_or_end_exactly_one_and_a_real_date(tmp_path, capsys, argv, error):
    with pytest.raises(SystemExit) as e:
        cli.main(["--out", str(tmp_path), "--days", "2", *argv])
    assert e.value.code == 2
    assert error in capsys.readouterr().err
    assert not days_in(tmp_path)
