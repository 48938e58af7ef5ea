"""Every notebook in a real JupyterLab, driven by headless Chromium (Debian's package) through Playwright.

JupyterLab runs on 127.0.0.1 (a free port, a token) over a temporary copy of the notebooks, the
params files and the committed results, so nothing the notebooks or JupyterLab write reaches the
repository. Each notebook is opened, its kernel started, saved (which must change no byte: the
committed metadata is what JupyterLab writes), "Run All Cells" run with its smoke
defaults; then: no error output, the parameters cell is tagged, no tqdm "IProgress not found"
warning, and every figure notebook shows at least one inline image (in the notebook model and as
an ``<img>`` on the page). A screenshot of one figure notebook after Run All goes to
``build/test-artifacts/``. Skips with the reason when Chromium or Playwright is absent; nothing
here downloads a browser (install Chromium with ``apt-get install chromium``, as .ci/run does).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import copy_checkout

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "build" / "test-artifacts"
SCREENSHOT_OF = "notebooks/paper001/02_quadratic_figures.ipynb"


def _figure_notebooks() -> set[str]:
    """Notebooks whose DVC stage writes under figures/ (they must show inline figures; the others,
    the runs notebooks, must show a progress bar)."""
    import yaml

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = set()
    for stage in stages.values():
        nb = re.search(r"(notebooks/\S+\.ipynb)", stage.get("cmd", ""))
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage.get("outs", [])]
        if nb and any(str(o).startswith("figures/") for o in outs):
            out.add(nb.group(1))
    return out


FIGURE_NOTEBOOKS = _figure_notebooks()
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")

pytestmark = pytest.mark.slow


def _chromium() -> str | None:
    env = os.environ.get("BILEVEL_CHROMIUM")
    for path in ((env,) if env else ()) + CHROMIUM_CANDIDATES:
        if path and os.access(path, os.X_OK):
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium: install Debian's package (`apt-get install chromium`, as .ci/run does) "
                    "or set BILEVEL_CHROMIUM to its binary")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements/lock.txt)")
    tmp = tmp_path_factory.mktemp("lab")
    repo, state = tmp / "repo", tmp / "jupyter"
    copy_checkout(repo, "notebooks", "data/results", "data/processed", "params.yaml", "params-smoke.yaml",
                  "dvc.yaml")
    (state / "config" / "labconfig").mkdir(parents=True)
    (state / "config" / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}   # kernels: inline backend
    env.update(PYTHONPATH=str(ROOT), JUPYTER_CONFIG_DIR=str(state / "config"), JUPYTER_DATA_DIR=str(state / "data"),
               JUPYTER_RUNTIME_DIR=str(state / "runtime"), IPYTHONDIR=str(state / "ipython"),
               MPLCONFIGDIR=str(state / "mpl"), PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1", DVC_NO_ANALYTICS="1",
               HOME=str(tmp / "home"))
    port, token = _free_port(), "browser-test-token"
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", "--allow-root", f"--ServerApp.root_dir={repo}",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.expose_app_in_browser=True"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "w"))
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None:
                pytest.fail("JupyterLab exited: " + (tmp / "server.log").read_text()[-3000:])
            time.sleep(0.1)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu",
                                                                     "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/lab?reset&token={token}")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started !== undefined", timeout=60000)
        page.evaluate("() => window.jupyterapp.restored")
        yield dict(page=page, base=base, token=token, repo=repo)
        browser.close()
    server.terminate()
    server.wait(timeout=30)


# Runs the notebooks two at a time (the machine has two cores); for each: open it, wait for an idle
# kernel, Run All Cells, read the model's outputs, count the <img> shown once it is the active tab,
# then shut its kernel down and close it (except `keep`, left open for the screenshot).
RUN_ALL = """async ({paths, keep, concurrency}) => {
  const app = window.jupyterapp;
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const runOne = async (path) => {
    const t0 = Date.now();
    const panel = await app.commands.execute('docmanager:open', {path, factory: 'Notebook', activate: false});
    await panel.context.ready;
    await panel.sessionContext.ready;
    while (!(panel.sessionContext.session && panel.sessionContext.session.kernel &&
             panel.sessionContext.session.kernel.status === 'idle')) {
      if (Date.now() - t0 > 60000) throw new Error(path + ': the kernel did not become idle');
      await sleep(100);
    }
    // JupyterLab writes the kernel's kernelspec and language_info into the model once the kernel is
    // up; saving now is "open and save an unchanged notebook": the file must keep every byte
    await panel.sessionContext.session.kernel.info;
    await sleep(200);
    const dirtyOnOpen = panel.context.model.dirty;
    await panel.context.save();
    const saved = (await app.serviceManager.contents.get(path, {type: 'file', format: 'text', content: true})).content;
    const cells = panel.content.widgets;
    const firstCode = cells.find(c => c.model.type === 'code');
    const tags = firstCode.model.getMetadata('tags') || [];
    const t1 = Date.now();
    const ok = await NotebookRunAll(panel);
    const t2 = Date.now();
    const outputs = cells.filter(c => c.model.type === 'code').map(c => c.model.outputs.toJSON());
    const hasImage = outputs.some(cell => cell.some(o => o.data && o.data['image/png']));
    const shown = hasImage ? await countImages(panel) : 0;
    if (path !== keep) {
      await panel.sessionContext.shutdown();
      panel.dispose();
    }
    return {path, ok, tags, outputs, shown, saved, dirtyOnOpen, id: panel.id, start_s: (t1 - t0) / 1000, run_s: (t2 - t1) / 1000};
  };
  // 'notebook:run-all-cells' is given the panel by id and told not to activate it (JupyterLab's
  // `widgetId` argument), so running never depends on which tab has focus. Showing a panel (to count
  // the <img> it renders) does: those happen one at a time, and wait for the panel to be visible
  // (not focused: a dialog or a busy shell can hold focus elsewhere; visibility is what rendering needs).
  let lock = Promise.resolve();
  const withLock = (fn) => { const run = lock.then(fn); lock = run.catch(() => {}); return run; };
  const show = async (panel) => {
    for (let i = 0; i < 1500 && !panel.isVisible; i++) {
      if (i % 50 === 0) app.shell.activateById(panel.id);
      await sleep(20);
    }
    if (!panel.isVisible) {
      const dialogs = [...document.querySelectorAll('.jp-Dialog')].map(d => d.innerText.slice(0, 300));
      throw new Error(panel.context.path + ': could not show its tab within 30 s' +
                      (dialogs.length ? '; open dialogs: ' + dialogs.join(' | ') : ''));
    }
    await sleep(50);
  };
  const NotebookRunAll = (panel) =>
    app.commands.execute('notebook:run-all-cells', {widgetId: panel.id, activate: false});
  const countImages = (panel) => withLock(async () => {
    await show(panel);
    let shown = 0;
    for (let i = 0; i < 20 && shown === 0; i++) {
      await sleep(100);
      shown = panel.node.querySelectorAll('.jp-OutputArea-output img').length;
    }
    return shown;
  });
  const queue = [...paths], results = [];
  const worker = async () => { while (queue.length) results.push(await runOne(queue.shift())); };
  await Promise.all(Array.from({length: concurrency}, worker));
  return results;
}"""

SHOW = """async (id) => { window.jupyterapp.shell.activateById(id); }"""


def _notebooks():
    return sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("notebooks/*/*.ipynb"))


def test_every_notebook_runs_in_jupyterlab_with_inline_figures(lab):
    page = lab["page"]
    page.set_default_timeout(600000)
    t0 = time.perf_counter()
    order = sorted(_notebooks(), key=lambda rel: (rel in FIGURE_NOTEBOOKS, rel))   # runs before figures
    results = page.evaluate(RUN_ALL, {"paths": order, "keep": SCREENSHOT_OF,
                                      "concurrency": int(os.environ.get("BILEVEL_BROWSER_CONCURRENCY", "2"))})
    failures, timings = [], {}
    for res in sorted(results, key=lambda r: r["path"]):
        rel = res["path"]
        outs = [o for cell in res["outputs"] for o in cell]
        errors = [f"{o.get('ename')}: {o.get('evalue')}" for o in outs if o["output_type"] == "error"]
        stderr = "".join(o.get("text", "") for o in outs if o.get("name") == "stderr")
        images = sum("image/png" in o.get("data", {}) for o in outs)
        timings[rel] = dict(kernel_start_s=res["start_s"], run_all_s=res["run_s"], images=images, img_shown=res["shown"])
        if not res["ok"] or errors:
            failures.append(f"{rel}: Run All failed: {errors or 'no error output, but Run All reported failure'}")
        if res["saved"] != (ROOT / rel).read_text():
            failures.append(f"{rel}: opening and saving it in JupyterLab changed the file "
                            f"(model dirty on open: {res['dirtyOnOpen']}); run `make strip`")
        if "parameters" not in res["tags"]:
            failures.append(f"{rel}: the first code cell is not tagged 'parameters' (tags {res['tags']})")
        if "IProgress not found" in stderr:
            failures.append(f"{rel}: tqdm found no ipywidgets (IProgress not found)")
        bars = sum("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outs)
        timings[rel]["progress_bars"] = bars
        if rel not in FIGURE_NOTEBOOKS and bars < 1:
            failures.append(f"{rel}: its runs showed no progress bar (no tqdm widget output)")
        if rel in FIGURE_NOTEBOOKS and (images < 1 or res["shown"] < 1):
            failures.append(f"{rel}: no inline figure ({images} image/png outputs, {res['shown']} <img> shown)")
    shot = ARTIFACTS / "jupyterlab_02_quadratic_figures_after_run_all.png"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    kept = next(r for r in results if r["path"] == SCREENSHOT_OF)
    page.evaluate(SHOW, kept["id"])
    img = page.locator(f"#{kept['id']} .jp-OutputArea-output img").first
    img.scroll_into_view_if_needed()
    page.screenshot(path=str(shot))
    total = round(time.perf_counter() - t0, 1)
    (ARTIFACTS / "browser_timings.json").write_text(json.dumps({"total_s": total, **timings}, indent=1) + "\n")
    assert len(results) == len(_notebooks())
    assert not failures, "\n".join(failures)
    assert shot.stat().st_size > 10000
