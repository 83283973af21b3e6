"""The documentation works from a clone: every relative link in the README and in docs/ (and the
other READMEs) names a file of the repository, and a `#fragment` names a heading of it; the
contract shipped in docs/ is the one the project is built to."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), *REPO.glob("*/README.md")])
SHARED_CONTRACT = REPO.parent / "shared" / "contract.md"

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


def test_the_shipped_contract_is_the_shared_one():
    if not SHARED_CONTRACT.exists():
        pytest.skip(f"no {SHARED_CONTRACT} beside this clone to compare docs/contract.md with")
    assert (REPO / "docs" / "contract.md").read_bytes() == SHARED_CONTRACT.read_bytes(), (
        "docs/contract.md differs from ../shared/contract.md: copy it again")
