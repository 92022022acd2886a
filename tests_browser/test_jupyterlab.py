"""What a learner sees in JupyterLab: a real server on 127.0.0.1, a real headless Chromium.

Runs notebooks 02, 04 and 05 top to bottom in FAST mode through JupyterLab's own Run menu, then
checks the page as a person would see it: every widget renders (no "Error displaying widget"),
moving notebook 02's noising slider redraws its image, clicking through notebook 05's blind
judgement shows a verdict and records it in the model folder's metrics.json, no Python error in
any output, no JavaScript error in the console. Screenshots go to runs/browser/.
`make test-browser` runs it; it needs Debian's chromium and chromium-driver (apt-get install
chromium chromium-driver).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "runs" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


SHOTS.mkdir(parents=True, exist_ok=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on the notebooks (FAST mode, its own runs folder, a token)."""
    for path, what in ((CHROMIUM, "chromium"), (DRIVER, "chromium-driver")):
        if not Path(path).exists():
            pytest.fail(f"{path} not found: install Debian's {what} "
                        "(apt-get install chromium chromium-driver), then rerun.")
    port, token = free_port(), secrets.token_hex(16)
    # Serve copies: JupyterLab autosaves what it runs, and the repository's notebooks stay
    # without outputs.
    served = tmp_path_factory.mktemp("notebooks")
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(nb, served / nb.name)
    config = tmp_path_factory.mktemp("jupyter-config")
    (config / "labconfig").mkdir()
    (config / "labconfig" / "page_config.json").write_text(  # no "Jupyter news?" popup
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
    # Render every cell (JupyterLab 4 otherwise leaves cells out of view unrendered).
    settings = tmp_path_factory.mktemp("lab-settings")
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        '{"windowingMode": "none"}')
    env = {**os.environ, "PDD_FAST": "1", "PDD_RUNS": str(tmp_path_factory.mktemp("runs")),
           "JUPYTER_CONFIG_DIR": str(config), "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    env.pop("PDD_STATIC", None)  # a person's front end: widgets, not static figures
    log = open(tmp_path_factory.mktemp("lab") / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
         f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={served}"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail(f"JupyterLab did not start; see {log.name}")
    yield url, token
    server.terminate()
    server.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER),
                              options=options)
    yield driver
    driver.quit()


def menu(driver, top: str, item: str) -> None:
    """Click JupyterLab's menu `top`, then its entry `item`."""
    wait = WebDriverWait(driver, 30)
    wait.until(ec.element_to_be_clickable(
        (By.XPATH, f"//div[contains(@class,'lm-MenuBar-itemLabel') and text()='{top}']"))).click()
    wait.until(ec.element_to_be_clickable(
        (By.XPATH, f"//div[contains(@class,'lm-Menu-itemLabel') and text()='{item}']"))).click()


def kernel_idle(url: str, token: str, name: str) -> bool:
    """Whether the notebook's kernel has started and is idle (JupyterLab's REST API)."""
    import json

    with urllib.request.urlopen(f"{url}/api/sessions?token={token}", timeout=5) as reply:
        sessions = json.load(reply)
    return any(s["path"].endswith(name) and s["kernel"]["execution_state"] == "idle"
               for s in sessions)


def run_all(driver, url: str, token: str, name: str, timeout: float = 300) -> None:
    """Open notebook `name`, run all cells, wait until every code cell has a number."""
    driver.get(f"{url}/lab/tree/{name}?reset&token={token}")  # reset: only this notebook open
    wait = WebDriverWait(driver, 120)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell")))
    wait.until(lambda _: kernel_idle(url, token, name))
    menu(driver, "Run", "Run All Cells")

    def finished(d) -> bool:
        prompts = [p.text for p in d.find_elements(
            By.CSS_SELECTOR, ".jp-CodeCell .jp-InputArea-prompt")]
        return bool(prompts) and all(p.strip("[]: ").isdigit() for p in prompts)

    try:
        WebDriverWait(driver, timeout, poll_frequency=1).until(finished)
    except TimeoutException:
        driver.save_screenshot(str(SHOTS / f"{name}-timeout.png"))
        prompts = [p.text for p in driver.find_elements(
            By.CSS_SELECTOR, ".jp-CodeCell .jp-InputArea-prompt")]
        pytest.fail(f"{name}: not every cell ran within {timeout:.0f} s; prompts {prompts}; "
                    f"problems {problems_on_page(driver)}")
    time.sleep(2)  # the last outputs and widget views render


def problems_on_page(driver) -> list[str]:
    """What a person would see as broken: widget errors, Python errors, JS console errors."""
    found = []
    outputs = "\n".join(o.text for o in driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea"))
    for phrase in ("Error displaying widget", "model not found", "Traceback"):
        if phrase in outputs:
            found.append(f"an output shows {phrase!r}")
    for err in driver.find_elements(By.CSS_SELECTOR, "[data-mime-type*='stderr']"):
        if "Error" in err.text or "Traceback" in err.text:
            found.append(f"stderr output: {err.text[:200]}")
    for entry in driver.get_log("browser"):
        message = entry["message"]
        # Offline, the Colab badge (an external image in the first cell) cannot load; a
        # resource of the local server that fails is still a problem.
        offline = "Failed to load resource: net::ERR_" in message and "127.0.0.1" not in message
        if entry["level"] == "SEVERE" and not offline:
            found.append(f"console: {message[:200]}")
    return found


def output_images(driver) -> list[str]:
    """The sources of every output image (read in one go: a redraw replaces the elements)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('.jp-OutputArea-output img')].map(i => i.src)")


def test_notebook_02_slider_is_a_live_widget(lab, browser) -> None:
    url, token = lab
    run_all(browser, url, token, "02_forward_noising.ipynb")
    problems = problems_on_page(browser)
    sliders = browser.find_elements(By.CSS_SELECTOR, ".jupyter-widgets .widget-slider")
    assert sliders, "the noising slider did not render as a widget"
    slider = sliders[-1]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", slider)
    before = output_images(browser)
    browser.save_screenshot(str(SHOTS / "02-slider-before.png"))
    handle = slider.find_element(By.CSS_SELECTOR, ".noUi-handle")
    ActionChains(browser).click_and_hold(handle).move_by_offset(40, 0).release().perform()
    WebDriverWait(browser, 60).until(lambda d: output_images(d) != before)
    browser.save_screenshot(str(SHOTS / "02-slider-after.png"))
    assert problems == [], problems


def test_notebook_04_runs_with_its_controls(lab, browser) -> None:
    url, token = lab
    run_all(browser, url, token, "04_seeds_steps_guidance.ipynb", timeout=600)
    widgets = browser.find_elements(By.CSS_SELECTOR, ".jupyter-widgets.widget-dropdown, "
                                                     ".jupyter-widgets .widget-dropdown")
    assert widgets, "the knob controls did not render as widgets"
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", widgets[0])
    browser.save_screenshot(str(SHOTS / "04-controls.png"))
    assert problems_on_page(browser) == []


def blind_box(driver):
    """Notebook 05's blind-judgement widget on the page (pddlib.blind_widget.CSS_CLASS)."""
    return driver.find_element(By.CSS_SELECTOR, ".pdd-blind")


def click_button(driver, text: str) -> None:
    """Click the blind-judgement widget's button labelled `text`."""
    button = blind_box(driver).find_element(By.XPATH, f".//button[normalize-space()=\"{text}\"]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()


def test_notebook_05_blind_judgement_clicks_through_and_records(lab, browser) -> None:
    url, token = lab
    run_all(browser, url, token, "05_measuring_quality_fid.ipynb", timeout=600)
    problems = problems_on_page(browser)
    box = blind_box(browser)
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", box)
    browser.save_screenshot(str(SHOTS / "05-blind-start.png"))
    n = int(re.search(r"Image 1 of (\d+)", box.text)[1])
    fixed = {"real", "generated", "back", "can't tell"}
    classes = [b.text.strip() for b in box.find_elements(By.TAG_NAME, "button")
               if b.text.strip() not in fixed]
    assert len(classes) == 16, classes
    for i in range(n):  # a class in turn, then "real" and "generated" by turns
        click_button(browser, classes[i % len(classes)])
        click_button(browser, "real" if i % 2 == 0 else "generated")
        after = f"Image {i + 2} of {n}" if i + 1 < n else "Done"
        WebDriverWait(browser, 30).until(lambda d, after=after: after in blind_box(d).text)
    WebDriverWait(browser, 60).until(lambda d: "Recorded in" in blind_box(d).text)
    browser.save_screenshot(str(SHOTS / "05-blind-verdict.png"))
    text = blind_box(browser).text
    assert "Recognisable" in text, text
    path = re.search(r"Recorded in (\S+metrics\.json)", text)[1]
    verdict = json.loads(Path(path).read_text())["blind_judgement"]
    assert verdict["n_generated"] + verdict["n_real"] == n
    called_real = (verdict["passed_as_real"] * verdict["n_generated"]
                   + verdict["real_called_real"] * verdict["n_real"])
    assert round(called_real) == (n + 1) // 2  # every other image was called real
    assert problems_on_page(browser) == [] and problems == [], problems
