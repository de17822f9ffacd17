"""The audit page (`audit.html`) and its overview figure, as a reader meets them: the committed mini
study's page in a real headless Chromium at desktop and phone width, and the page against audit.md."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from iapo.audit_page import chapters, forest_svg
from tests.test_pipeline import audit_verdicts

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "paper_figures" / "mini"
SHOTS = os.environ.get("IAPO_SCREENSHOTS")  # a folder: keep the screenshots there


class Cards(HTMLParser):
    """Each claim card of the page: its id, its badge text, whether it has a forest plot, its links."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: dict[str, dict] = {}
        self.current: dict | None = None
        self.in_badge = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "article" and "card" in classes:
            self.current = self.cards.setdefault(a["id"] or "", {"badge": "", "forest": False, "links": [],
                                                                 "classes": classes})
        elif self.current is not None:
            self.in_badge = tag == "span" and "badge" in classes
            self.current["forest"] |= tag == "svg" and "forest" in classes
            if tag == "a" and a.get("href") and not a["href"].startswith("#"):
                self.current["links"].append(a["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "article":
            self.current = None
        self.in_badge = False

    def handle_data(self, data: str) -> None:
        if self.in_badge and self.current is not None:
            self.current["badge"] += data.strip()


def page_cards(path: Path) -> dict[str, dict]:
    parser = Cards()
    parser.feed(path.read_text())
    return parser.cards


def test_page_and_report_state_the_same_verdicts() -> None:
    """audit.md and audit.html of the committed study: the same claims with the same verdicts, a
    forest plot on every card, and every link of a card pointing at a file that exists."""
    cards = page_cards(MINI / "audit.html")
    stated = {k: v for k, v in audit_verdicts((MINI / "audit.md").read_text()).items() if " | " not in k}
    assert {cid: card["badge"] for cid, card in cards.items()} == stated
    for cid, card in cards.items():
        assert card["forest"], cid
        assert f"v-{card['badge']}" in card["classes"], cid
        assert card["links"] and all((MINI / link).is_file() for link in card["links"]), (cid, card["links"])
    assert (MINI / "audit_overview.png").is_file()


def test_chapters_of_a_section() -> None:
    assert chapters("§4.2.4, A.3") == ["§4", "App. A"]
    assert chapters("Abstract, §1, §4.2.2") == ["Abstract", "§1", "§4"]
    assert chapters("§5; workshop §4.2") == ["§5", "Workshop"]
    assert chapters("B.1") == ["App. B"]


def test_forest_plot_places_each_group_on_the_claim_unit() -> None:
    """A group's point sits at estimate / unit on an axis that also holds the rule's regions; an out-of-scope
    group is grey; a claim without groups says so."""
    from iapo.audit import ClaimResult, GroupResult
    from iapo.claims import load_claims
    from iapo.decide import Rule

    claim = next(c for c in load_claims(ROOT / "claims.yaml") if c.test.kind == "not_worse")
    rule = Rule.of("not_worse", margin=0.1 * 200.0)
    inside = GroupResult("Hopper-v2", "supported", "", env="Hopper-v2", estimate=-10.0, low=-15.0, high=-5.0,
                         unit=200.0, rule=rule)
    outside = GroupResult("Ant-v2", "inconclusive", "", env="Ant-v2", in_scope=False, estimate=40.0,
                          low=-60.0, high=140.0, unit=200.0, rule=rule)
    svg = forest_svg(ClaimResult(claim, "supported", "", [inside, outside]), "normalized return")
    x = {float(m[1]): m[0] for m in re.finditer(r'<text x="([\d.]+)" y="[\d.]+" text-anchor="middle" '
                                                 r'class="tick">([^<]+)</text>', svg)}
    assert len(x) >= 3  # ticks
    circles = re.findall(r'<circle cx="([\d.]+)" cy="[\d.]+" r="4" fill="(#\w+)"><title>([^<]+)</title>', svg)
    (cx_in, fill_in, title_in), (cx_out, fill_out, _) = circles
    assert fill_in == "#1a7f37" and fill_out == "#8c959f"
    assert "-0.05 [-0.075, -0.025]" in title_in  # -10 / 200 and its interval
    assert float(cx_in) < float(cx_out)
    # the margin -0.1 is a dashed edge, left of the in-scope point
    edges = [float(m) for m in re.findall(r'<line x1="([\d.]+)" x2="[\d.]+" y1="\d+" y2="\d+" class="edge"/>',
                                          svg)]
    assert edges and max(edges) < float(cx_in)
    assert "no group of this claim ran" in forest_svg(ClaimResult(claim, "inconclusive", "", []), "u")


# ------------------------------------------------------------------ a real browser
def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if (path := shutil.which(name)) is not None:
            return path
    return None


CHECK = """<script>
window.addEventListener('load', () => {
  const w = document.documentElement.clientWidth;
  const cards = [...document.querySelectorAll('article.card')].map(c => ({
    id: c.id, badge: !!c.querySelector('.badge'), forest: !!c.querySelector('svg.forest'),
    figure: (c.querySelector('a.figure-link') || {}).href || null,
    img: !!c.querySelector('.thumb img') && c.querySelector('.thumb img').naturalWidth > 0,
    overflow: c.scrollWidth > c.clientWidth + 1,
    right: c.getBoundingClientRect().right}));
  const overview = document.querySelector('.overview img');
  parent.postMessage(JSON.stringify({width: w, scrollWidth: document.documentElement.scrollWidth, cards,
    overview: !!overview && overview.naturalWidth > 0}), '*');
});
</script>"""
# the page in a frame exactly `width` px wide (a headless window is never narrower than 500 px)
FRAME = """<!DOCTYPE html><html><body style="margin:0">
<iframe src="audit-check.html" style="width:{width}px;height:2400px;border:0"></iframe>
<script>window.addEventListener('message', e => {{
  const out = document.createElement('pre'); out.id = 'dom-check'; out.textContent = e.data;
  document.body.appendChild(out); }});</script></body></html>"""


def browse(browser: str, page: Path, width: int, shot: Path) -> dict:
    """The DOM check of `page` at `width` px (dumped by the injected script) and a screenshot."""
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--hide-scrollbars", "--allow-file-access-from-files", f"--window-size={width},2400"]
    subprocess.run([*common, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120,
                   check=True)
    page.with_name("audit-check.html").write_text(page.read_text().replace("</body>", CHECK + "</body>"))
    frame = page.with_name("audit-frame.html")
    frame.write_text(FRAME.format(width=width))
    dom = subprocess.run([*common, "--virtual-time-budget=5000", "--dump-dom", frame.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    found = re.search(r'<pre id="dom-check">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return json.loads(found[1].replace("&quot;", '"').replace("&amp;", "&"))


def test_committed_audit_page_in_a_real_browser(tmp_path: Path) -> None:
    """The committed mini study's audit.html in headless Chromium at 1400 and 400 px: every claim has a
    card with a verdict badge, a forest plot and a link to a figure that loads; nothing overflows."""
    browser = chromium()
    if browser is None:
        if os.environ.get("IAPO_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required here (IAPO_REQUIRE_BROWSER) but not installed")
        pytest.skip("no Chromium (Debian: apt-get install chromium; .ci/run installs it)")
    site = tmp_path / "mini"
    shutil.copytree(MINI, site)
    claims = set(page_cards(site / "audit.html"))
    for width in (1400, 400):
        shot = tmp_path / f"audit_{width}.png"
        found = browse(browser, site / "audit.html", width, shot)
        assert shot.stat().st_size > 10_000
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(SHOTS) / shot.name)
        assert found["width"] <= width and found["scrollWidth"] <= found["width"], found["scrollWidth"]
        assert found["overview"], "the overview figure did not load"
        assert {c["id"] for c in found["cards"]} == claims
        for card in found["cards"]:
            assert card["badge"] and card["forest"] and card["img"], card
            assert card["figure"] and Path(card["figure"].removeprefix("file://")).is_file(), card
            assert not card["overflow"] and card["right"] <= found["width"] + 1, card
