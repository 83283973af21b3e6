"""The trust gate's checks, derived from the table contracts: one module per family, each
declaring its checks (`CheckDef`s, the asset specs are made from) and evaluating them.

Checks are evaluated inside the step that produces the data (set-based, on the frames that
step already holds), one outcome per check and partition. Every outcome is appended to
`quality.check_results` and reported to Dagster as an asset check result (`reporting.report`);
the `quality.partition_gate` asset then blocks the marts of any partition with a failed ERROR
check. Severities come from dq_assets/contract/gate.yaml (dq_assets.contract.gate), keyed
`<scope>.<check>`: the scope is the table's name for raw.<table> and staging.<table>, else
the family's `SEVERITY_SCOPE`.

Check names by family (module: on which asset, evaluated by which step of dq_assets.layers):
- `landing` (raw.<table>, the raw step): file_listed_and_present, file_readable,
  manifest_rows, manifest_sha256, manifest_<sum field>, required_columns, unknown_columns;
  (raw.landing_files, the landing audit; scope `landing_files`): no_unexpected_files
- `history` (raw.landing_files, the landing audit; scope `landing_files`): history_complete,
  blocking
- `staging` (staging.<table>, the staging step): row_conservation, unique_key,
  quarantine_rate, volume, partial_load (tables with hourly coverage), and one `no_<reason>`
  per reject reason that can occur in the table (`Table.reject_reasons`: not-null, parse,
  accepted values and shapes, ranges, future timestamps, row rules, referential integrity,
  duplicates)
- `reconciliation` (quality.recon_row_mismatches; scope `recon`): order_amount_matches_items,
  orders_have_captured_payment
- `gate` (quality.partition_gate; scope `gate`): no_expired_suppressions; gate_passed (always
  ERROR, a check of its own reading the decision)
- `marts` (marts.fact_revenue_daily, the publishing step; scope `marts`): matches_staging,
  blocking

Shared: `model` (CheckDef, Outcome, Recon, check_result, readable_sql) and `reporting`
(check_results and recon_summary rows, suppressions, Dagster results per partition). Freshness
checks are declared and evaluated apart, in dq_assets.operations.freshness.
"""
