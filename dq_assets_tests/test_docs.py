"""The documentation works from a clone: every relative link in the README and in docs/ (and the
other READMEs) names a file of the repository, and a `#fragment` names a heading of it; the
contract shipped in docs/ is the one the code declares. (That it is a copy of the shared
specification, ../shared/contract.md where a checkout has one, .ci/run compares.)"""

import re
from pathlib import Path

import pytest

from dq_assets.contract.tables import REJECT_REASONS, TABLES

REPO = Path(__file__).resolve().parent.parent
# the repository's own pages (not those of tools' hidden folders, such as .pytest_cache)
PAGES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"),
                *(p for p in REPO.glob("*/README.md") if not p.parent.name.startswith("."))])

# [text](target) and ![alt](target), not inside code; targets without spaces.
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def text_outside_code(path: Path) -> str:
    return CODE_SPAN.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found, seen = set(), {}
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(text_outside_code(page))
            if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]  # http:, https:, mailto: ...


def broken_links(page: Path, root: Path = REPO) -> list[str]:
    broken = []
    for target in relative_links(page):
        file_part, _, fragment = target.partition("#")
        path = (page.parent / file_part).resolve() if file_part else page
        if not path.exists() or not path.is_relative_to(root):
            broken.append(f"{target}: no such file in the repository")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            broken.append(f"{target}: no heading #{fragment} in {path.relative_to(root)}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == [], page.relative_to(REPO)


def test_the_readme_links_to_the_reference_pages():
    targets = {t.partition("#")[0] for t in relative_links(REPO / "README.md")}
    assert {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")} <= targets


def test_the_checker_finds_a_missing_file_a_missing_anchor_and_a_way_out(tmp_path):
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "layers.md").write_text("# The layers\n## Where every raw row goes\n")
    page = root / "docs" / "page.md"
    page.write_text("[ok](layers.md#where-every-raw-row-goes) [gone](nowhere.md) "
                    "[bad](layers.md#no-such-heading) [out](../../elsewhere.md) "
                    "[web](https://example.com) `[code](x.md)` ![img](layers.md)\n"
                    "```\n[fenced](y.md)\n```\n## Own heading\n[self](#own-heading) [self2](#nope)\n")
    (tmp_path / "elsewhere.md").write_text("outside the repository\n")
    assert broken_links(page, root) == [
        "nowhere.md: no such file in the repository",
        "layers.md#no-such-heading: no heading #no-such-heading in docs/layers.md",
        "../../elsewhere.md: no such file in the repository",
        "#nope: no heading #nope in docs/page.md"]


def test_slugs_follow_githubs_rule():
    assert slug("1. Landing zone") == "1-landing-zone"
    assert slug("5. The gate (default severities)") == "5-the-gate-default-severities"
    assert slug("Long backfills: two Dagster settings") == "long-backfills-two-dagster-settings"
    assert slug("`_manifest.json` (the source system's control totals)") == \
        "_manifestjson-the-source-systems-control-totals"


def test_no_link_leaves_the_repository():
    """The contract is shipped in docs/: nothing points at ../shared any more."""
    offenders = [f"{p.relative_to(REPO)}: {t}" for p in PAGES for t in relative_links(p) if "shared/" in t]
    assert offenders == []
    for path in [*PAGES, *(REPO / "dq_assets").rglob("*.py")]:
        assert "../shared/contract.md" not in path.read_text(encoding="utf-8"), path


def contract_tables(text: str) -> dict[str, tuple[list[str], str]]:
    """table -> (its columns, its rules) from the table of section 2 of a contract."""
    section = text.split("## 2. Tables and rules", 1)[1].split("\n## ", 1)[0]
    found = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"[a-z_]+", cells[0]) and cells[0] != "table":
            found[cells[0]] = ([c.split()[0] for c in cells[1].split(", ")], cells[2])
    return found


def contract_reasons(text: str) -> list[str]:
    """The reject reason codes of section 3, in the contract's order."""
    section = text.split("## 3. Where every raw row goes", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", section, re.M)


def test_the_shipped_contract_is_the_one_the_code_declares():
    """docs/contract.md and dq_assets/contract/tables.py name the same tables, columns (in order),
    accepted values and reject reasons (in order): neither drifts from the other."""
    text = (REPO / "docs" / "contract.md").read_text(encoding="utf-8")
    documented = contract_tables(text)
    assert sorted(documented) == sorted(t.name for t in TABLES)
    for t in TABLES:
        columns, rules = documented[t.name]
        assert columns == [c.name for c in t.columns], t.name
        for c in t.columns:
            if c.values:
                listed = re.search(rf"\b{c.name} ∈ \{{([^}}]*)\}}", rules)
                assert listed and listed.group(1).split(", ") == list(c.values), f"{t.name}.{c.name}"
    assert contract_reasons(text) == list(REJECT_REASONS)


def test_the_contract_checker_sees_a_drift():
    text = (REPO / "docs" / "contract.md").read_text(encoding="utf-8")
    tables = contract_tables(text)
    assert tables["orders"][0][:2] == ["order_id", "customer_id"] and "status ∈ {placed" in tables["orders"][1]
    drifted = text.replace("| payments | payment_id (key), order_id", "| payments | payment_id (key), order_ref")
    assert contract_tables(drifted)["payments"][0][1] == "order_ref"
    assert contract_reasons(text.replace("| `duplicate` |", "| `dupe` |"))[-1] == "dupe"

