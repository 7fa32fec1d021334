"""The HTML report in a real browser (the system's headless Chromium, driven by Selenium): the plots
render with their data points, hovering a point shows its canonical string, sorting works, and the
console stays clean. Skips with the reason where no browser is installed, unless
EINSEARCH_REQUIRE_BROWSER=1 (as .ci/run sets it, after installing one), where it fails instead."""
from __future__ import annotations

import os
import re
import time

import pytest

from einsearch import sample
from einsearch.report import browser, write_html_report
from einsearch.search.library import templates
from einsearch.storage import Store

TASK = "toy-causal:vocab=64,seq=32"


def _need_browser() -> None:
    problem = browser.missing()
    if problem:
        if os.environ.get("EINSEARCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"EINSEARCH_REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(f"no headless browser: {problem}")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Two searches: sampled architectures and a Transformer baseline, curves, lineage, a failure and
    two fidelities; returns (path, {canonical string: metric})."""
    tmp = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{tmp / 'einsearch.db'}"
    archs = sample(8, seed=4, task=TASK, max_params=100_000)
    baseline = [t for t in templates() if t.name == "transformer"][0].render(32, 2)
    metrics = {}
    with Store.open(url) as store:
        store.create_search("first", task=TASK, strategy="evolution", budget=10)
        store.create_search("second", task=TASK, strategy="random", budget=4)
        for i, arch in enumerate([baseline, *archs]):
            search = "first" if i < 6 else "second"
            for steps in (10, 20):
                value = 0.3 + 0.05 * i + (0.01 * steps if i % 2 else 0.0)
                ev = store.start_evaluation(search, {"arch": arch, "task": TASK, "steps": steps, "seed": 0,
                                                     "parents": [baseline] if 0 < i < 4 else [], "op": "mutate"})
                store.finish_evaluation(ev, {"status": "ok", "metric_name": "accuracy", "metric": value,
                                             "curve": [[s, value * s / steps] for s in range(1, steps + 1, 3)],
                                             "params": 5000 + 1000 * i})
            metrics[str(arch)] = value
        bad = store.start_evaluation("first", {"arch": archs[0], "task": TASK, "steps": 20, "seed": 1})
        store.finish_evaluation(bad, {"status": "failed", "error": "CUDA out of memory (simulated)"})
        path = write_html_report(store, ["first", "second"], tmp / "report.html", top=10)
    return path, metrics


def test_the_file_is_self_contained(report):
    path, metrics = report
    page = path.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", page) and "<link" not in page  # nothing fetched at view time
    assert "CUDA out of memory (simulated)" in page and "baseline transformer" in page
    assert all(f'title="{text}"' in page for text in metrics)  # every architecture's canonical string


@pytest.fixture(scope="module")
def driver(report):
    _need_browser()
    drv = browser.chromium(1400, 1000)
    drv.get(report[0].resolve().as_uri())
    deadline = time.time() + 60
    while time.time() < deadline and not drv.execute_script(
            "return document.querySelectorAll('.js-plotly-plot').length >= 6 && "
            "document.querySelectorAll('#pareto path.point').length > 0"):
        time.sleep(0.2)
    yield drv
    drv.quit()


def test_plots_render_with_their_points(driver, report):
    _, metrics = report
    counts = driver.execute_script("""
        const out = {};
        for (const id of ['pareto', 'best-so-far', 'curves', 'lineage', 'winner', 'shared', 'fidelity']) {
          const el = document.getElementById(id);
          out[id] = el && el.data ? el.data.reduce((n, t) => n + (t.x ? t.x.length : 0), 0) : -1;
        }
        out.points = document.querySelectorAll('#pareto .scatterlayer path.point').length;
        out.missing = Array.from(document.querySelectorAll('.note[id$="-missing"]')).map(e => e.id);
        return out;""")
    assert counts["missing"] == []
    assert all(counts[k] > 0 for k in ("pareto", "best-so-far", "curves", "lineage", "winner", "shared", "fidelity"))
    # every architecture once per panel (params and state), each drawn as an SVG point
    assert counts["points"] == 2 * len(metrics)
    assert driver.find_element("id", "leaderboard").find_elements("css selector", "tbody tr")


def test_hovering_a_point_shows_its_canonical_string(driver, report):
    from selenium.webdriver.common.action_chains import ActionChains

    _, metrics = report
    shown = 0
    for point in driver.find_elements("css selector", "#pareto .subplot.xy .scatterlayer path.point")[:3]:
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", point)
        ActionChains(driver).move_to_element(point).pause(0.3).perform()
        text = driver.execute_script(
            "const h = document.querySelector('#pareto .hoverlayer .hovertext'); return h ? h.textContent : ''")
        squeezed = re.sub(r"\s+", "", text)
        assert any(re.sub(r"\s+", "", arch) in squeezed for arch in metrics), text
        shown += 1
        ActionChains(driver).move_to_element(driver.find_element("css selector", "#pareto .legend")).perform()
    assert shown == 3


def test_the_leaderboard_sorts_and_carries_canonical_strings(driver, report):
    _, metrics = report
    table = driver.find_element("id", "leaderboard")
    titles = [td.get_attribute("title") for td in table.find_elements("css selector", "td.arch")]
    assert titles and all(t in metrics for t in titles)
    header = [th for th in table.find_elements("css selector", "th") if th.text.strip() == "params"][0]
    driver.execute_script("arguments[0].click()", header)
    column = [th.text for th in table.find_elements("css selector", "th")].index(header.text)
    values = [float(tr.find_elements("css selector", "td")[column].get_attribute("data-sort"))
              for tr in table.find_elements("css selector", "tbody tr")]
    assert values == sorted(values)


def test_the_console_has_no_errors(driver):
    errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []
