"""Reading landed files into raw rows: headers, BOM, line numbers, schema drift, manifest."""

import json

import pytest

from dq_assets.contract.tables import table
from dq_assets.landing.csv_files import _has_padded_quotes, read_csv_file
from dq_assets.landing.zone import LandingError, LandingZone
from dq_assets.storage.duckdb.warehouse import connect_duckdb


def read(tmp_path, text: str | bytes, name="orders"):
    path = tmp_path / f"{name}.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    data, schema = read_csv_file(connect_duckdb(), path, table(name), "2025-01-07", path.name)
    return data.to_pylist(), schema


def test_headers_match_case_insensitively_in_any_order_with_bom(tmp_path):
    text = "\ufeff Amount ,ORDER_ID,status,currency,customer_id,order_ts,updated_at\r\n 5 ,O1,paid,EUR,C1,t,u\r\n"
    [row], schema = read(tmp_path, text)
    assert schema.missing == [] and schema.unknown == []
    assert (row["order_id"], row["amount"], row["status"]) == ("O1", " 5 ", "paid")  # as received
    assert row["source_line"] == 2 and str(row["ingest_date"]) == "2025-01-07"


def test_unknown_columns_are_kept_as_json_and_missing_ones_are_null(tmp_path):
    text = "order_id,customer_id,order_ts,status,currency,updated_at,Coupon\nO1,C1,t,paid,EUR,u,XMAS\n"
    [row], schema = read(tmp_path, text)
    assert schema.missing == ["amount"] and schema.unknown == ["Coupon"]
    assert row["amount"] is None
    assert json.loads(row["extra_columns"]) == {"Coupon": "XMAS"}


def test_source_line_counts_physical_lines_across_quoted_newlines(tmp_path):
    text = ('order_id,customer_id,order_ts,status,currency,amount,updated_at\n'
            'O1,C1,t,"paid\nwith\nnotes",EUR,1,u\n'
            'O2,C1,t,paid,EUR,"1,5",u\n'
            'O3,C1,t,paid,EUR,1,u\n')
    rows, _ = read(tmp_path, text)
    assert [r["source_line"] for r in rows] == [2, 5, 6]
    assert rows[1]["amount"] == "1,5"  # RFC 4180 quoting


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_source_line_of_a_file_without_quotes_counts_blank_lines(tmp_path, eol):
    """No quote character: no record spans lines, so lines come from the reader's record numbers
    (no newline count per value), and blank lines still shift them, whatever the line end."""
    header = "order_id,customer_id,order_ts,status,currency,amount,updated_at"
    lines = [header, "O1,C1,t,paid,EUR,1,u", "", "O2,C1,t,paid,EUR,2,u", "", "", "O3,C1,t,paid,EUR,3,u"]
    rows, _ = read(tmp_path, eol.join(lines) + eol)
    assert [(r["order_id"], r["source_line"]) for r in rows] == [("O1", 2), ("O2", 4), ("O3", 7)]
    rows, _ = read(tmp_path, eol.join(lines[:2] + lines[3:4]))  # no blank line, no last line end
    assert [(r["order_id"], r["source_line"]) for r in rows] == [("O1", 2), ("O2", 3)]


def test_empty_values_are_null_and_whitespace_is_kept(tmp_path):
    [row], _ = read(tmp_path, 'order_id,customer_id,order_ts,status,currency,amount,updated_at\nO1,,t,"",EUR,  ,u\n')
    assert row["customer_id"] is None and row["amount"] == "  "


def test_spaces_and_tabs_around_a_quoted_value_are_no_part_of_it(tmp_path):
    """One rule wherever a value is read (header, rows, lines): the quoted content is the value."""
    text = ('\ufeff "Order_ID"\t,customer_id,order_ts,status,currency,amount,updated_at\r\n'
            'O1,C1,t,  "pa""id"  ,EUR,\t"1,5"\t,u\r\n'
            '\r\n'
            'O2,C1,t, "paid\r\nlate" ,EUR,1,  "u"\r\n'
            'O3,"C1", t ,paid,EUR,1,u')
    rows, schema = read(tmp_path, text)
    assert schema.missing == [] and schema.unknown == []
    assert [(r["order_id"], r["status"], r["amount"], r["updated_at"], r["order_ts"], r["source_line"])
            for r in rows] == [("O1", 'pa"id', "1,5", "u", "t", 2),
                               ("O2", "paid\r\nlate", "1", "u", "t", 4),
                               ("O3", "paid", "1", "u", " t ", 6)]  # unquoted: as received


def test_padding_the_reader_drops_itself_is_read_from_the_file(tmp_path):
    """One space before a quote and spaces after one: DuckDB's reader applies the rule itself, so
    the file is read as it is (no copy); this pins that behaviour of the reader."""
    text = ('order_id,customer_id,order_ts,status,currency,amount,updated_at\n'
            'O1,C1,t, "pa""id"   ,EUR, "1,5",u\n')
    assert not _has_padded_quotes(text.encode())
    [row], _ = read(tmp_path, text)
    assert (row["status"], row["amount"]) == ('pa"id', "1,5")


@pytest.mark.parametrize("field", ['"ab"c', '  "ab" c', '\t"ab"c', ' "a, ""b"""c'])
def test_text_after_a_closing_quote_is_an_error_naming_its_line(tmp_path, field):
    text = ('order_id,customer_id,order_ts,status,currency,amount,updated_at\n'
            'O1,C1,t,  "paid"  ,EUR,1,u\n'
            f'O2,C1,t,{field},EUR,1,u\n')
    with pytest.raises(LandingError) as e:
        read(tmp_path, text)
    assert str(e.value) == (f"{tmp_path / 'orders.csv'}: line 3: cannot be read as CSV: text follows "
                            "the closing quote of a quoted value (only spaces or tabs may)")


def test_a_quoted_header_name_followed_by_text_is_an_error(tmp_path):
    with pytest.raises(LandingError, match="line 1: the header cannot be read as CSV"):
        read(tmp_path, '"order_id"x,customer_id,order_ts,status,currency,amount,updated_at\n')


def test_a_quote_inside_an_unquoted_value_is_text_and_the_lines_after_it_stay_right(tmp_path):
    """Only a quote that starts a field opens a quoted value, for the reader and for the scan
    that names lines after empty ones alike (it took `5"` as opening one: the file was refused)."""
    text = ('product_id,sku,product_name,category,unit_price,currency,updated_at\n'
            'P1,S1,TV 5" screen,tv,1,EUR,u\n\n'
            'P2,S2,"x, ""y""\n z",tv,1,EUR,u\n'
            'P3,S3,z,tv,1,EUR,u\n')
    rows, _ = read(tmp_path, text, name="products")
    assert [(r["product_name"], r["source_line"]) for r in rows] == [
        ('TV 5" screen', 2), ('x, "y"\n z', 4), ("z", 6)]


def test_header_only_file_has_no_rows(tmp_path):
    rows, schema = read(tmp_path, "order_id,customer_id,order_ts,status,currency,amount,updated_at\n")
    assert rows == [] and schema.missing == []


def test_ragged_row_is_a_clear_error_naming_the_file(tmp_path):
    with pytest.raises(LandingError, match="orders.csv"):
        read(tmp_path, "order_id,customer_id,order_ts,status,currency,amount,updated_at\nO1,C1\n")


@pytest.mark.parametrize("text, line, what", [
    ('\ufeff"no\nte",order_id,customer_id,order_ts,status,currency,amount,updated_at\n'
     "z,O1,C1,t,paid,EUR,1,u\nz,O2,C1\n", 4, "expected 8 fields as in the header, found 3"),
    ('"no\nte",order_id,customer_id,order_ts,status,currency,amount,updated_at\r\n'
     "z,O1,C1,t,paid,EUR,1,u\nz,O2,C1,t,paid,EUR,1,u\r\n", 3, "mixed line endings"),
], ids=["ragged", "mixed_endings"])
def test_an_error_after_a_header_with_a_line_break_names_its_physical_line(tmp_path, text, line, what):
    # such a header is read from a copy where it is one line: the records keep their numbers
    with pytest.raises(LandingError, match=f"orders.csv: line {line}: cannot be read as CSV: {what}"):
        read(tmp_path, text)


def test_manifest_problems_are_one_clear_line(tmp_path):
    zone = LandingZone(root=str(tmp_path))
    with pytest.raises(LandingError, match="no landing folder"):
        zone.manifest("2025-01-07")
    folder = tmp_path / "ingest_date=2025-01-07"
    folder.mkdir()
    with pytest.raises(LandingError, match="not complete"):
        zone.manifest("2025-01-07")
    (folder / "_manifest.json").write_text("{not json")
    with pytest.raises(LandingError, match="not valid JSON"):
        zone.manifest("2025-01-07")
    (folder / "_manifest.json").write_text(json.dumps({"ingest_date": "2025-01-08", "files": {}}))
    with pytest.raises(LandingError, match="does not match"):
        zone.manifest("2025-01-07")
    (folder / "_manifest.json").write_text(json.dumps({"ingest_date": "2025-01-07", "files": {}}))
    assert zone.manifest("2025-01-07").files == {}
    assert zone.partitions() == ["2025-01-07"]


def test_a_partition_key_cannot_escape_the_landing_root(tmp_path):
    with pytest.raises(ValueError):
        LandingZone(root=str(tmp_path)).partition_path("../../etc")


def test_a_changed_file_gets_a_new_sha256(tmp_path):
    import hashlib
    import os

    from dq_assets.landing.zone import sha256_of

    path = tmp_path / "orders.csv"
    path.write_bytes(b"a,b\n1,2\n")
    assert sha256_of(path) == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    path.write_bytes(b"a,b\n1,3\n")  # same size: the modification time tells it apart
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert sha256_of(path) == hashlib.sha256(b"a,b\n1,3\n").hexdigest()
