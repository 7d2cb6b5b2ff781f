"""`unio demo` in a real browser: headless Chromium (Debian's chromium + chromium-driver, via Selenium)
uploads an image, reads the model and its trained tasks on the page, asks a caption, a VQA, a refexp and a
depth prompt and sees each answer and a drawn image, draws a region with two clicks and asks a region
caption about it. Skipped where Gradio, Selenium or the browser is missing (`pip install ".[demo]" selenium`,
`apt-get install chromium chromium-driver`)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from importlib.util import find_spec

import numpy as np
import pytest
from conftest import ROOT, free_port
from PIL import Image

from unio.infer.demo import REGION

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
MISSING = [name for name, found in (("gradio", find_spec("gradio")), ("selenium", find_spec("selenium")),
                                    ("chromium", CHROMIUM), ("chromium-driver", DRIVER)) if not found]
in_browser = pytest.mark.skipif(bool(MISSING), reason=f"the browser test needs {', '.join(MISSING)}")

TRAINED = ["caption", "depth", "refexp", "region_caption", "region_class", "vqa"]   # what the page's model says it trained on
SIZE = (400, 300)   # the upload's width and height: taller than the page shows it, so it is shown scaled down
PROMPTS = {"caption": "What does the image describe?", "vqa": "What color is the cube?",
           "refexp": 'Which region does the text "the cube" describe?', "depth": "What is the depth map of the image?"}


@pytest.fixture(scope="module")
def page(tiny_model_path, tmp_path_factory):
    """`unio demo MODEL --port P` on a copy of the saved tiny model that records TRAINED as its trained
    tasks, until the module's tests are done."""
    model = tmp_path_factory.mktemp("demo") / "tiny"
    shutil.copytree(tiny_model_path, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "trained_tasks": TRAINED}))
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    log = (model.parent / "server.log").open("w")   # a file, not a pipe nobody reads, which would fill and block
    server = subprocess.Popen([sys.executable, "-m", "unio.cli", "demo", str(model), "--port", str(port)], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(120):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None, (model.parent / "server.log").read_text()[-3000:]
            time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def field(driver, name: str) -> str:
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, f"#{name} textarea, #{name} input").get_attribute("value")


def ask(driver, prompt: str | None, region: str | None = "") -> str:
    """Type the prompt and the region (None: keep the one picked or drawn), press Ask, and return the answer
    text once it changes (so two questions in a row must differ in their answer's task or text)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    for name, value in (("prompt", prompt), ("region", region)):
        if value is None:   # keep what the page holds
            continue
        box = driver.find_element(By.CSS_SELECTOR, f"#{name} textarea, #{name} input")
        box.clear()
        box.send_keys(value)
    before = field(driver, "answer")
    driver.find_element(By.CSS_SELECTOR, "#ask").click()
    WebDriverWait(driver, 60).until(lambda d: field(d, "answer") not in ("", before))
    return field(driver, "answer")


def drawn_width(driver) -> int:
    """Pixel width of the drawn answer image once the browser has decoded it, else 0."""
    from selenium.webdriver.common.by import By
    drawn = driver.find_elements(By.CSS_SELECTOR, "#drawn img")
    return int(drawn[0].get_attribute("naturalWidth") or 0) if drawn else 0


def pick(driver, task: str) -> list:
    """Open the example prompts, pick the task's, wait for it in the prompt box; -> the tasks offered."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def label(li) -> str:   # textContent, not .text (an option out of the list's view has no visible text),
        return li.get_attribute("textContent").strip().lstrip("✓").strip()   # less the selected one's mark

    def labels(d) -> list:
        return [label(li) for li in d.find_elements(By.CSS_SELECTOR, "#pick li")]

    def settled(d) -> list | None:   # the open list fills in over a few frames: read it until it holds still
        first = labels(d)
        time.sleep(0.3)
        return first if first and all(first) and labels(d) == first else None

    def choose(d) -> bool:
        for li in d.find_elements(By.CSS_SELECTOR, "#pick li"):
            if label(li) == offered[task]:
                li.click()
                return True
        return False
    driver.find_element(By.CSS_SELECTOR, "#pick input").click()
    wait = WebDriverWait(driver, 30, ignored_exceptions=(StaleElementReferenceException,))
    offered = {label.split(": ", 1)[0]: label for label in wait.until(settled)}
    wait.until(choose)
    WebDriverWait(driver, 30).until(lambda d: field(d, "prompt") == offered[task].split(": ", 1)[1])
    return sorted(offered)


def shown(driver) -> tuple:
    """(src, natural width) of the image shown on the question side, once the browser has decoded it."""
    img = driver.execute_script("return document.querySelector('#image img')")
    return (img.get_attribute("src"), int(img.get_attribute("naturalWidth") or 0)) if img else (None, 0)


def click_pixel(driver, x: int, y: int) -> None:
    """Click pixel (x, y) of the image (its own pixels, however the page scales it: object-fit scale-down,
    centred; Gradio rounds the click's position to the nearest pixel), then wait for the image shown with
    the click drawn on it."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import WebDriverWait
    before = shown(driver)
    img = driver.execute_script("return document.querySelector('#image img')")
    width, height, natural_w, natural_h = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); "
        "return [r.width, r.height, arguments[0].naturalWidth, arguments[0].naturalHeight]", img)
    scale = min(width / natural_w, height / natural_h, 1)
    left, top = (width - natural_w * scale) / 2, (height - natural_h * scale) / 2
    # Selenium's offsets are from the element's centre
    ActionChains(driver).move_to_element_with_offset(img, left + x * scale - width / 2,
                                                     top + y * scale - height / 2).click().perform()
    WebDriverWait(driver, 30).until(lambda d: shown(d)[0] != before[0] and shown(d)[1] > 0)


def pixel(driver, x: int, y: int) -> list:
    """The RGB of pixel (x, y) of the image shown, read back through a canvas."""
    return driver.execute_script(
        "const img = document.querySelector('#image img'), c = document.createElement('canvas'); "
        "c.width = img.naturalWidth; c.height = img.naturalHeight; const g = c.getContext('2d'); "
        "g.drawImage(img, 0, 0); return Array.from(g.getImageData(arguments[0], arguments[1], 1, 1).data.slice(0, 3))",
        x, y)


@in_browser
def test_the_demo_page_answers_each_task_and_draws_it(page, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from unio.data.world import World
    started = time.time()
    browser.get(page)
    upload = WebDriverWait(browser, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "#image input[type=file]"))
    about = browser.find_element(By.CSS_SELECTOR, "#model").text
    assert "tiny" in about and "Trained tasks" in about and all(task in about for task in TRAINED), about
    Image.fromarray(World("test")[1].image).resize(SIZE).save(tmp_path / "scene.png")
    upload.send_keys(str(tmp_path / "scene.png"))
    WebDriverWait(browser, 30).until(lambda d: shown(d)[1] == SIZE[0])
    for task, prompt in PROMPTS.items():
        text = ask(browser, prompt)
        assert text.startswith(f"[{task}]") and "Error" not in text, text
        # the answer text lands before the browser has decoded the drawn image: wait for its pixels
        WebDriverWait(browser, 30).until(lambda d: drawn_width(d) > 0)
        WebDriverWait(browser, 30).until(lambda d: f'"{task}"' in d.find_element(By.CSS_SELECTOR, "#json").text)
    assert "depth" in text and f"[{SIZE[1]}, {SIZE[0]}]" in text   # the depth map is the upload's size
    # a region drawn with two clicks: its box in the upload's pixels, drawn on the image shown
    assert not np.allclose(pixel(browser, 40, 150), REGION, atol=8)
    click_pixel(browser, 40, 30)
    assert field(browser, "region") == ""                            # one corner: no region yet
    click_pixel(browser, 300, 220)
    WebDriverWait(browser, 30).until(lambda d: field(d, "region"))
    box = [float(v) for v in field(browser, "region").split(",")]
    assert np.allclose(box, [40, 30, 300, 220], atol=2), box
    assert np.allclose(pixel(browser, round(box[0]), 150), REGION, atol=8)   # the box's left edge, drawn
    assert pick(browser, "region_caption") == TRAINED                 # the trained tasks' prompts, no others
    assert ask(browser, None, None).startswith("[region_caption]")
    WebDriverWait(browser, 30).until(lambda d: '"region"' in d.find_element(By.CSS_SELECTOR, "#json").text)
    WebDriverWait(browser, 30).until(lambda d: drawn_width(d) > 0)
    # a typed region still works
    assert ask(browser, "What kind of object is in the region?", "10, 5, 60, 40").startswith("[region_class]")
    WebDriverWait(browser, 30).until(lambda d: np.allclose(pixel(d, 10, 20), REGION, atol=8))   # drawn when typed
    browser.save_screenshot(str(os.environ.get("UNIO_DEMO_SCREENSHOT", tmp_path / "demo.png")))
    # a pair typed with ';' between its boxes: both drawn; a prompt about one region names the form it takes
    text = ask(browser, "What kind of object is in the region?", "10, 5, 60, 40; 100, 50, 200, 120")
    assert text == ("Error: task 'region_class' asks about 1 region, got 2: type x1, y1, x2, y2 in the image's "
                    "pixels (or click two corners)"), text
    WebDriverWait(browser, 30).until(lambda d: np.allclose(pixel(d, 100, 80), REGION, atol=8))   # the second box
    assert np.allclose(pixel(browser, 10, 20), REGION, atol=8) and not np.allclose(pixel(browser, 150, 80), REGION, atol=8)
    browser.find_element(By.CSS_SELECTOR, "#clear-region").click()
    WebDriverWait(browser, 30).until(lambda d: field(d, "region") == "" and not np.allclose(pixel(d, 10, 20), REGION, atol=8))
    # a sample image replaces the upload: the next answer is about it (256 x 256), not the upload
    browser.find_elements(By.CSS_SELECTOR, "#samples img")[0].click()
    WebDriverWait(browser, 30).until(lambda d: shown(d)[1] == 256)
    assert ask(browser, PROMPTS["depth"]).startswith("[depth]")
    WebDriverWait(browser, 30).until(lambda d: "[256, 256]" in field(d, "answer"))
    assert time.time() - started < 120


@in_browser
def test_the_demo_page_shows_a_bad_input_as_a_message(page, browser):
    from selenium.webdriver.common.by import By
    browser.get(page)
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#ask"))
    text = ask(browser, "What color is the cube?")                  # no image yet
    assert text.startswith("Error:") and "Traceback" not in browser.page_source


def test_answer_never_raises():
    from unio.infer.demo import answer

    class Broken:
        def __call__(self, prompts, images, regions):
            raise ValueError("image has zero size: (0, 0, 3)")
    assert answer(Broken(), np.zeros((4, 4, 3), np.uint8), "What color is the cube?")[1] == \
        "Error: image has zero size: (0, 0, 3)"
    assert answer(Broken(), np.zeros((4, 4, 3), np.uint8), "  ")[1].startswith("Error: type a prompt")
    assert answer(Broken(), np.zeros((4, 4, 3), np.uint8), "Describe the region.", "1, 2, 3")[1] == \
        "Error: a region is four numbers x1, y1, x2, y2 in the image's pixels, got '1, 2, 3'"


def test_two_clicks_draw_a_region_and_a_third_starts_anew():
    from unio.infer.demo import click, typed
    image = np.zeros((30, 40, 3), np.uint8)
    shown, corners, region = click(image, [], (30, 20))
    assert (corners, region) == ([[30, 20]], "") and tuple(shown[20, 30]) == REGION   # a cross at the corner
    shown, corners, region = click(image, corners, (5, 25))
    assert region == "5, 20, 30, 25"                                 # corners in any order
    assert tuple(shown[22, 5]) == REGION and not shown[22, 15].any() and not image.any()
    assert click(image, corners, (1, 1))[1:] == ([[1, 1]], "")       # a third click starts a new box
    assert click(image, [[3, 4]], (3, 9))[2] == "3, 4, 4, 9"         # no zero width
    shown, corners = typed(image, "2, 3, 12, 13", [])
    assert corners == [[2, 3], [12, 13]] and tuple(shown[8, 2]) == REGION
    assert typed(image, "2, 3, 12, 13", corners) is None             # the box drawn: the drawing stays
    assert typed(image, "2, 3, 12, 13", [[12, 13], [2, 3]]) is None   # clicked in either order
    assert typed(image, "", []) is None and typed(image, "2, 3", []) is None
    shown, corners = typed(image, "2, 3", [[2, 3], [12, 13]])      # unreadable: the drawn box goes
    assert corners == [] and not shown.any()


def test_a_pair_of_regions_is_typed_split_by_a_semicolon_and_both_are_drawn():
    from unio.infer.demo import click, parse_region, typed
    image = np.zeros((30, 40, 3), np.uint8)
    assert parse_region("2, 3, 12, 13") == [2, 3, 12, 13]                       # one box as before
    assert parse_region("2, 3, 12, 13; 20,5,30,25") == [[2, 3, 12, 13], [20, 5, 30, 25]]
    assert parse_region("2, 3, 12, 13;") == [2, 3, 12, 13]                      # a trailing ';' is no second box
    with pytest.raises(ValueError, match=r"four numbers x1, y1, x2, y2 in the image's pixels \(a pair: x1, y1, x2, "
                                         r"y2; x1, y1, x2, y2\), got '2, 3, 12, 13; 20, 5'"):
        parse_region("2, 3, 12, 13; 20, 5")
    with pytest.raises(ValueError, match=r"four numbers x1, y1, x2, y2 in the image's pixels, got 'a, b, c, d'"):
        parse_region("a, b, c, d")
    shown, corners = typed(image, "2, 3, 12, 13; 20, 5, 30, 25", [])
    assert corners == [[2, 3], [12, 13], [20, 5], [30, 25]]
    assert tuple(shown[8, 2]) == REGION and tuple(shown[15, 30]) == REGION       # both boxes' left and right edges
    assert not shown[15, 25].any() and not shown[8, 7].any()                    # their insides stay clean
    assert typed(image, "2, 3, 12, 13; 20, 5, 30, 25", corners) is None          # drawn: the drawing stays
    shown, corners = typed(image, "2, 3, 12, 13", corners)                      # back to one box
    assert corners == [[2, 3], [12, 13]] and not shown[15, 30].any()
    assert click(image, [[2, 3], [12, 13], [20, 5], [30, 25]], (1, 1))[1:] == ([[1, 1]], "")   # a click starts anew
    assert typed(image, "", [[4, 4]]) is None                                    # a single click's cross stays


def test_answer_asks_about_both_regions_and_names_the_form_typed():
    from unio.infer.demo import answer
    from unio.infer.runner import Result
    asked = []

    def runner(prompts, images, regions):
        asked.extend(regions)
        return [Result("relation", prompts[0], images[0], text="left of")]
    drawn, text, info = answer(runner, np.zeros((30, 40, 3), np.uint8), "What is the relation between the two regions?",
                               "5, 20, 30, 25; 1, 2, 3, 4")
    assert asked == [[[5, 20, 30, 25], [1, 2, 3, 4]]] and info["region"] == asked[0] and text == "[relation] left of"


def test_the_demo_names_a_missing_region_as_typed(runner):
    from unio.infer.demo import answer
    image = np.zeros((30, 40, 3), np.uint8)
    text = answer(runner, image, "What is the relation between the two regions?", "5, 20, 30, 25")[1]
    assert text == ("Error: task 'relation' asks about 2 regions, got 1: type x1, y1, x2, y2; x1, y1, x2, y2 "
                    "(the subject's box, then the object's) in the image's pixels")
    assert answer(runner, image, "Describe the region.")[1] == ("Error: task 'region_caption' asks about a region: "
                                                                "type x1, y1, x2, y2 in the image's pixels (or click "
                                                                "two corners)")


def test_answer_asks_about_the_region_given():
    from unio.infer.demo import answer
    from unio.infer.runner import Result
    asked = []

    def runner(prompts, images, regions):
        asked.extend(regions)
        return [Result("region_caption", prompts[0], images[0], text="a red cube")]
    drawn, text, info = answer(runner, np.zeros((30, 40, 3), np.uint8), "Describe the region.", "5, 20, 30, 25")
    assert asked == [[5, 20, 30, 25]] and info["region"] == [5, 20, 30, 25]
    assert text == "[region_caption] a red cube" and drawn.shape[1] == 40
