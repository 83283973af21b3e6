"""Launch a backfill of every asset over a range of days as the UI does, through the webserver's
GraphQL API, and wait for it: for scripts and CI that want Dagster's own backfill (split into runs
by DQ_BACKFILL_RUN_DAYS, ordered by the declared dependencies, executed by the daemon's run queue)
rather than the one run of `dagster asset materialize --partition-range`.

    python -m dq_assets.operations.backfills --url http://localhost:3000 --from 2025-01-01 --to 2025-01-15

prints the backfill's id and its runs, waits, and exits 0 when every partition was materialized,
1 when the backfill failed or was canceled (with what its runs say), 2 when it could not be
launched. Needs a webserver and a daemon (`dagster dev` runs both) on the same instance.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from datetime import date

DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
SUCCEEDED = {"COMPLETED", "COMPLETED_SUCCESS"}

_ASSET_NODES = """
query { assetNodes { assetKey { path } isPartitioned } }"""

_LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on Error { message }
  }
}"""

_STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status
      numCancelable
      error { message }
      runs(limit: 10000) { runId status tags { key value } }
    }
    ... on PythonError { message }
    ... on Error { message }
  }
}"""


class BackfillError(RuntimeError):
    """The webserver refused or could not answer."""


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
    """POST one GraphQL request to the webserver at `url` (e.g. http://localhost:3000)."""
    request = urllib.request.Request(
        f"{url.rstrip('/')}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as e:
        raise BackfillError(f"the webserver at {url} answered {e.code}: {e.read()[:500]!r}") from None
    except (urllib.error.URLError, OSError) as e:
        raise BackfillError(f"no Dagster webserver answers at {url}: {e}") from None
    if body.get("errors"):
        raise BackfillError("; ".join(e.get("message", "") for e in body["errors"]))
    return body["data"]


def _days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    if end < start:
        raise BackfillError(f"the range {first}..{last} ends before it starts")
    return [date.fromordinal(d).isoformat() for d in range(start.toordinal(), end.toordinal() + 1)]


def launch_asset_backfill(url: str, first: str, last: str, *, title: str | None = None) -> str:
    """Backfill every partitioned asset of the code location for the days first..last, with the
    request the UI's "Materialize all" > partition range > "Launch backfill" sends (the days and
    the asset selection); returns its id."""
    days = _days(first, last)
    nodes = graphql(url, _ASSET_NODES)["assetNodes"]
    keys = [{"path": n["assetKey"]["path"]} for n in nodes if n["isPartitioned"]]
    if not keys:
        raise BackfillError(f"the webserver at {url} shows no partitioned assets: is dq_assets loaded?")
    params = {"assetSelection": keys, "partitionNames": days, "fromFailure": False,
              "title": title or f"dq_assets {first}..{last}"}
    result = graphql(url, _LAUNCH, {"params": params})["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise BackfillError(f"backfill not launched ({result['__typename']}): {result.get('message')}")
    return result["backfillId"]


def backfill_state(url: str, backfill_id: str) -> dict:
    """{status, runs: [{runId, status, tags}], error} of a backfill."""
    result = graphql(url, _STATUS, {"id": backfill_id})["partitionBackfillOrError"]
    if result["__typename"] != "PartitionBackfill":
        raise BackfillError(f"backfill {backfill_id}: {result['__typename']}: {result.get('message')}")
    return result


def wait_for_backfill(url: str, backfill_id: str, timeout: float, poll: float = 2.0) -> dict:
    """Poll until the backfill is done (its state, see `backfill_state`); BackfillError after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        state = backfill_state(url, backfill_id)
        if state["status"] in DONE:
            return state
        if time.monotonic() > deadline:
            raise BackfillError(f"backfill {backfill_id} still {state['status']} after {timeout:.0f} s "
                                f"({len(state['runs'])} runs so far): is a dagster-daemon running?")
        time.sleep(poll)


def _partition_range(run: dict) -> str:
    tags = {t["key"]: t["value"] for t in run["tags"]}
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    return f"{tags.get('dagster/asset_partition_range_start', '?')}..{tags.get('dagster/asset_partition_range_end', '?')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dq_assets.operations.backfills", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://localhost:3000", help="the Dagster webserver")
    parser.add_argument("--from", dest="first", required=True, help="first day, YYYY-MM-DD")
    parser.add_argument("--to", dest="last", required=True, help="last day, YYYY-MM-DD")
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait (default 6 h)")
    args = parser.parse_args(argv)
    try:
        backfill_id = launch_asset_backfill(args.url, args.first, args.last)
        print(f"backfill {backfill_id} launched: {args.url}/runs/b/{backfill_id}", flush=True)
        state = wait_for_backfill(args.url, backfill_id, args.timeout)
    except BackfillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for run in sorted(state["runs"], key=_partition_range):
        print(f"  run {run['runId'][:8]} {_partition_range(run)}: {run['status']}")
    ok = state["status"] in SUCCEEDED and all(r["status"] == "SUCCESS" for r in state["runs"])
    print(f"backfill {backfill_id}: {state['status']}, {len(state['runs'])} runs"
          + (f" ({state['error']['message']})" if state.get("error") else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
