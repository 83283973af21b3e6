"""The peer tools that cannot share the project's virtualenv: Soda Core and dbt.

soda-core-duckdb 3.5 pins duckdb<1.1 (the project runs duckdb 2.0.1), and dbt-core pins its own
protobuf, sqlparse, click and more, so each gets its OWN virtualenv, created on first use with
pinned versions under `benchmarks/.venvs/<name>` (git-ignored; `--peers-venv DIR` puts them
elsewhere). A virtualenv is created again when its pins change. Only PyPI is needed.

    python -m benchmarks.peers [--peers-venv DIR] [soda] [dbt]   # create them ahead of a run
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DIR = HERE / ".venvs"

# Pinned: what the benchmark was checked with. dbt-core 1.12 needs a package whose build
# downloads a binary from outside PyPI, so dbt stays on 1.11. dbt-duckdb accepts the project's
# duckdb, so dbt runs on the same DuckDB as dq_assets; Soda on the last duckdb it accepts.
PINS: dict[str, list[str]] = {
    "soda": ["soda-core==3.5.6", "soda-core-duckdb==3.5.6", "duckdb==1.0.0"],
    "dbt": ["dbt-core==1.11.16", "dbt-duckdb==1.11.1", "duckdb==2.0.1"],
}
# The console script each virtualenv must provide (None: its python is enough).
ENTRY = {"soda": None, "dbt": "dbt"}


def base_python() -> str:
    """A Python to create virtualenvs with (the one that runs the benchmark, outside its venv)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def ensure_venv(name: str, root: Path | None = None, timeout: float = 900) -> dict:
    """Create (once) the virtualenv of peer `name`; returns {"ok", "python", "bin", "pins",
    "created_s" | "error"}: never raises, so a failure becomes a failed row of the report."""
    root = Path(root or DEFAULT_DIR)
    venv = root / name
    pins = PINS[name]
    out: dict = {"ok": False, "venv": str(venv), "pins": pins}
    py = venv / "bin" / "python"
    stamp = venv / ".pins.json"
    try:
        if py.exists() and stamp.exists() and json.loads(stamp.read_text()) == pins:
            out.update(ok=True, python=str(py), created_s=0.0)
        else:
            t0 = time.perf_counter()
            if venv.exists():
                shutil.rmtree(venv)
            root.mkdir(parents=True, exist_ok=True)
            log = root / f"{name}.install.log"
            with log.open("w") as f:
                for cmd in ([base_python(), "-m", "venv", str(venv)],
                            [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                             *pins]):
                    f.write("$ " + " ".join(cmd) + "\n")
                    f.flush()
                    r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
                    if r.returncode != 0:
                        tail = log.read_text(errors="replace").splitlines()[-6:]
                        out["error"] = (f"creating the {name} virtualenv failed (exit {r.returncode}"
                                        f" of {cmd[2] if len(cmd) > 2 else cmd[0]}): " + " | ".join(tail))
                        return out
            stamp.write_text(json.dumps(pins))
            out.update(ok=True, python=str(py), created_s=round(time.perf_counter() - t0, 1))
        if ENTRY[name]:
            exe = venv / "bin" / ENTRY[name]
            if not exe.exists():
                out.update(ok=False, error=f"{exe} missing after install")
                return out
            out["bin"] = str(exe)
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        out.update(ok=False, error=f"creating the {name} virtualenv failed: {type(e).__name__}: {e}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peers-venv", type=Path, default=DEFAULT_DIR)
    p.add_argument("names", nargs="*", default=list(PINS))
    args = p.parse_args(argv)
    bad = 0
    for name in args.names:
        r = ensure_venv(name, args.peers_venv)
        print(json.dumps({name: r}))
        bad += not r["ok"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
