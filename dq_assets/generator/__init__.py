"""dq-generate: the test-data generator. Outside the Dagster import chain: it imports the
contract only, and runs where dagster cannot be imported.

Deterministic landing-zone generator with chaos (defect injection).

Writes `<out>/ingest_date=YYYY-MM-DD/{customers,products,orders,order_items,payments,events}.csv`
plus `_manifest.json` per day, exactly as docs/contract.md section 1 describes, and
`<out>/_generator_log.json` (at the landing root) listing per day and table exactly what was
injected, so tests can assert exact counts.

Clean days are 100% valid per the contract but deliberately messy (every accepted timestamp
spelling, surrounding whitespace, mixed case codes, shuffled columns, header names in varying
case, quoted fields, BOM, CRLF, late-arriving rows). Defects are injected on request
(`--defect` every day, `--on` one day); each injected row carries exactly one defect.

Table and column names, enum values and manifest sum fields come from `dq_assets.contract.tables`.
Everything is derived from (seed, ingest date): no wall clock, so the same arguments give
byte-identical output (`--end yesterday` reads the clock for the dates only). Generation is vectorised (numpy + pyarrow) so that a day of 1,000,000
orders (2.5M items, 10M events) takes well under two minutes.

This package must not import dagster: `dq-generate` has to start fast. This file stays
empty of imports, so that importing one module loads only what that module needs.

Modules, in the order a run uses them:
  cli.py              the `dq-generate` command line (`python -m dq_assets.generator`, __main__.py)
  generate.py         generate(): the days of a run into a landing root, and the log
  defects.py          defect kinds, DefectSpec and parse_defect, one day's _Task
  constants.py        names, codes, rates of mess, timestamp spellings, invalid values
  values.py           vectorised ids, money, integers, timestamps (numpy -> Arrow strings)
  state.py            Config and State (dimension pools, recent orders) carried day to day
  log.py              GenerationLog, the written _generator_log.json
  day.py              _Day: one ingest date, from its plan to its log entry, made of
    rows.py             the numeric rows of each table
    numeric_defects.py  partial_load, resent_orders, late_arriving, order_items amount defects
    formatting.py       numeric rows -> Frames of strings, with the valid mess
    row_defects.py      row-level defects in the frames
    writing.py          CSV files, manifest entries, manifest_drift
  frame.py            Frame: one landing file being built
"""
