"""dq_assets: a Dagster data warehouse that is a trust gate for daily e-commerce data.

`defs`, the code location's Definitions, is built when it is first asked for
(`dagster ... -m dq_assets`, `from dq_assets import defs`): a tool that needs one module, such
as `dq-generate` (dq_assets.generator.cli) or the DuckDB helpers, starts without loading Dagster."""

__all__ = ["defs"]


def __getattr__(name: str):
    if name == "defs":
        from dq_assets.definitions import defs

        return defs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:  # what Dagster's module loader lists (inspect.getmembers)
    return sorted({*globals(), "defs"})
