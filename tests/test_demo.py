"""`unio demo` in a real browser: headless Chromium (Debian's chromium + chromium-driver, via Selenium)
uploads an image, asks a caption, a VQA, a refexp and a depth prompt, and sees each answer and a drawn
image. Skipped where Gradio, Selenium or the browser is missing (`pip install ".[demo]" selenium`,
`apt-get install chromium chromium-driver`)."""
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

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
MISSING = [name for name, found in (("gradio", find_spec("gradio")), ("selenium", find_spec("selenium")),
                                    ("chromium", CHROMIUM), ("chromium-driver", DRIVER)) if not found]
in_browser = pytest.mark.skipif(bool(MISSING), reason=f"the browser test needs {', '.join(MISSING)}")

PROMPTS = {"caption": "What does the image describe?", "vqa": "What color is the cube?",
           "refexp": 'Which region does the text "the cube" describe?', "depth": "What is the depth map of the image?"}


@pytest.fixture(scope="module")
def page(tiny_model_path):
    """`unio demo MODEL --port P` on the saved tiny model, until the module's tests are done."""
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "unio.cli", "demo", str(tiny_model_path), "--port", str(port)], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(120):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None, server.stderr.read()[-3000:]
            time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(timeout=30)


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


def ask(driver, prompt: str, region: str = "") -> str:
    """Type the prompt (and region), press Ask, and return the answer text once it changes."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    answer = lambda: driver.find_element(By.CSS_SELECTOR, "#answer textarea, #answer input").get_attribute("value")
    for name, value in (("prompt", prompt), ("region", region)):
        box = driver.find_element(By.CSS_SELECTOR, f"#{name} textarea, #{name} input")
        box.clear()
        box.send_keys(value)
    before = answer()
    driver.find_element(By.CSS_SELECTOR, "#ask").click()
    WebDriverWait(driver, 60).until(lambda d: answer() not in ("", before))
    return answer()


def drawn_width(driver) -> int:
    """Pixel width of the drawn answer image once the browser has decoded it, else 0."""
    from selenium.webdriver.common.by import By
    drawn = driver.find_elements(By.CSS_SELECTOR, "#drawn img")
    return int(drawn[0].get_attribute("naturalWidth") or 0) if drawn else 0


@in_browser
def test_the_demo_page_answers_each_task_and_draws_it(page, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from unio.data.world import World
    started = time.time()
    browser.get(page)
    upload = WebDriverWait(browser, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "#image input[type=file]"))
    Image.fromarray(World("test")[1].image).resize((90, 60)).save(tmp_path / "scene.png")
    upload.send_keys(str(tmp_path / "scene.png"))
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#image img"))
    for task, prompt in PROMPTS.items():
        text = ask(browser, prompt)
        assert text.startswith(f"[{task}]") and "Error" not in text, text
        # the answer text lands before the browser has decoded the drawn image: wait for its pixels
        WebDriverWait(browser, 30).until(lambda d: drawn_width(d) > 0)
        assert f'"{task}"' in browser.find_element(By.CSS_SELECTOR, "#json").text.replace("\n", "")
    assert "depth" in text and "[60, 90]" in text             # the depth map is the upload's size
    assert ask(browser, "What does the region describe?", "10, 5, 60, 40").startswith("[region_caption]")
    browser.save_screenshot(str(os.environ.get("UNIO_DEMO_SCREENSHOT", tmp_path / "demo.png")))
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
