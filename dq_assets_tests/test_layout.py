"""The package's layout holds: the import-layer contract (import-linter, configured in
pyproject.toml) is kept and fails on a violation, Dagster's private API is used in one module
only and is still where that module expects it, every imported package is declared, and no
module grows past about 400 lines."""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "dq_assets"
MAX_LINES = 420  # "about 400"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imports_of(path: Path) -> list[str]:
    """Every module an import statement of `path` names (function-level imports included)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)


def test_the_import_layer_contract_is_kept():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BROKEN" not in done.stdout and done.stdout.count("KEPT") >= 4, done.stdout


@pytest.mark.parametrize("module, line, broken", [
    # storage learns about the domain
    ("storage/quality_store.py", "from dq_assets.contract.tables import TABLES", "Storage never imports the domain"),
    # a pure rule starts using Dagster
    ("rules/reconcile.py", "import dagster", "never import Dagster"),
    # a lower layer reaches up: the contract into the layers
    ("contract/suppressions.py", "import dq_assets.layers.raw", "Layers:"),
])
def test_the_contract_fails_on_a_violation(tmp_path, module, line, broken):
    """A copy of the package with one deliberate violation: lint-imports fails and names it."""
    shutil.copytree(PACKAGE, tmp_path / "dq_assets", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "dq_assets" / module
    target.write_text(target.read_text() + f"\n{line}  # deliberate violation\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(rf"{re.escape(broken)}.*BROKEN", done.stdout.replace("\n", " ")), done.stdout


def test_dagsters_private_api_is_used_in_one_module_only():
    private = re.compile(r"^dagster\._")
    users = {str(p.relative_to(REPO)) for p in modules() if any(private.match(m) for m in imports_of(p))}
    assert users == {"dq_assets/dagster_private.py"}
    # ... nor spelled as a string (a class path compared with a log line, say)
    spelled = [str(p.relative_to(REPO)) for p in modules()
               if p.name != "dagster_private.py" and re.search(r"[\"']dagster\._", p.read_text())]
    assert not spelled


def test_the_private_api_is_where_and_what_it_was():
    """Fails loudly when a Dagster upgrade moves or changes what dagster_private relies on."""
    from datetime import datetime, timezone

    import dagster as dg

    from dq_assets import dagster_private as dp

    # the database IO manager machinery: the methods our clients and type handlers implement
    for name in ("delete_table_slice", "ensure_schema_exists", "get_select_statement", "connect"):
        assert callable(getattr(dp.DbClient, name)), name
    for name in ("handle_output", "load_input", "supported_types"):
        assert hasattr(dp.DbTypeHandler, name), name
    assert {"type_handlers", "db_client", "database", "schema", "io_manager_name",
            "default_load_type"} <= set(inspect.signature(dp.DbIOManager.__init__).parameters)
    assert {"table", "schema", "database", "columns", "partition_dimensions"} <= set(dp.TableSlice._fields)
    assert dp.TableMetadataSet(row_count=3).row_count == 3
    # the latest deadline at or before a moment
    tick = dp.latest_completed_tick("0 6 * * *", datetime(2025, 1, 2, 7, tzinfo=timezone.utc))
    assert tick == datetime(2025, 1, 2, 6, tzinfo=timezone.utc)
    # the class names Dagster prints for the errors the console shortens
    assert dp.EXPECTED_ERROR_CLASSES == ("dagster._core.definitions.events.Failure",
                                         "dagster._core.errors.DagsterAssetCheckFailedError")
    # the event log's batched query of check executions
    with dg.instance_for_test() as instance:
        key = dg.AssetCheckKey(dg.AssetKey("a"), "c")
        assert dp.latest_check_executions(instance, [key]) == {}
    # config validation of deploy/: a schema's errors, and an instance file's (without starting it)
    assert dp.config_errors({"n": int}, {"n": 1}) == []
    assert dp.config_errors({"n": int}, {"n": "x"}) and dp.config_errors({"n": int}, {"m": 1})
    assert callable(dp.instance_config_errors)


def test_every_imported_package_is_declared():
    """Each third-party package the code imports is in setup.py's install_requires (yaml and
    pydantic were imported without being declared)."""
    setup = (REPO / "setup.py").read_text()
    declared = {re.split(r"[<>=!\[ ;]", r)[0].lower().replace("_", "-")
                for r in re.findall(r'f?"([A-Za-z0-9_.\-]+(?:\[[a-z,]+\])?[^"]*)"', setup)}
    distributions = importlib.metadata.packages_distributions()
    stdlib = set(sys.stdlib_module_names)
    missing = {}
    for path in modules():
        for name in imports_of(path):
            top = name.split(".")[0]
            if top in stdlib or top == "dq_assets":
                continue
            dists = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
            if not dists & declared:
                missing.setdefault(top, set()).add(str(path.relative_to(REPO)))
    assert not missing, f"imported but not declared in setup.py: {missing}"


def test_no_module_is_over_about_400_lines():
    long = {str(p.relative_to(REPO)): n for p in modules()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long
