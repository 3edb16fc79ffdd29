# SPDX-License-Identifier: Apache-2.0
"""End-to-end browser tests of the Space: headless Debian Chromium (selenium) uploads a video, or clicks a shipped
example, and reads both models' labels and the heatmaps.

Needs the Debian packages `chromium` and `chromium-driver` (`scripts/install_browser.sh`); no browser is downloaded at
run time. Skipped when they are missing, except under CI (`CI=true`), where a missing browser is a failure.
"""

import os
import shutil

import pytest

from modeling_maxi import load_class_names
from space_app.config import EXAMPLES_DIR, SPACE_EXAMPLES
from tests.helpers.videos import make_moving_square_frames, write_video
from tests.test_space_app import save_tiny_clip, serve_demo, space_config

BROWSER_LABELS = ["juggling balls", "playing guitar", "riding a bike", "archery", "swimming", "cooking"]
WAIT_S = 60


def _find_executable(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def _chromium_paths() -> tuple[str, str]:
    browser = _find_executable("chromium", "chromium-browser")
    driver = _find_executable("chromedriver")
    if browser and driver:
        return browser, driver
    missing = ", ".join(name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path)
    message = f"{missing} not installed (run scripts/install_browser.sh: apt-get install chromium chromium-driver)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {message}")
    pytest.skip(message)


@pytest.fixture
def driver(tmp_path):
    browser_path, driver_path = _chromium_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1300",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield browser
    finally:
        browser.quit()


def test_upload_classify_and_screenshot(driver, tmp_path, tiny_model_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as conditions
    from selenium.webdriver.support.ui import WebDriverWait

    clip_dir = save_tiny_clip(tmp_path / "tiny_clip")
    video = write_video(tmp_path / "juggling.mp4", make_moving_square_frames(16, (96, 128), seed=5), fps=8)
    config = space_config(tiny_model_dir, clip_dir, heatmap_size=160)
    wait = WebDriverWait(driver, WAIT_S)
    with serve_demo(config) as url:
        driver.get(url)
        file_input = wait.until(
            conditions.presence_of_element_located((By.CSS_SELECTOR, "#video-input input[type='file']"))
        )
        file_input.send_keys(str(video))
        # The upload is done once the component plays the file back.
        wait.until(conditions.presence_of_element_located((By.CSS_SELECTOR, "#video-input video")))

        driver.find_element(By.CSS_SELECTOR, "#label-set input[type='radio'][value='Custom']").click()
        custom = wait.until(conditions.visibility_of_element_located((By.CSS_SELECTOR, "#custom-labels textarea")))
        custom.send_keys("\n".join(BROWSER_LABELS))
        driver.find_element(By.CSS_SELECTOR, "#heatmap-label textarea, #heatmap-label input").send_keys("archery")
        driver.find_element(By.CSS_SELECTOR, "#classify-button").click()

        def labels_shown(browser):
            text = browser.find_element(By.CSS_SELECTOR, "#maxi-label").text
            return [label for label in BROWSER_LABELS if label in text] if len(text.strip()) > 0 else False

        wait.until(lambda browser: len(labels_shown(browser) or []) == 5)
        wait.until(lambda browser: len(browser.find_elements(By.CSS_SELECTOR, "#heatmap-gallery img")) == 4)
        clip_text = driver.find_element(By.CSS_SELECTOR, "#clip-label").text
        summary = driver.find_element(By.CSS_SELECTOR, "#summary").text
        screenshot = tmp_path / "space.png"
        assert driver.save_screenshot(str(screenshot))

    assert sum(label in clip_text for label in BROWSER_LABELS) == 5
    assert "Heatmap label: archery" in summary and "6 candidate labels" in summary
    assert screenshot.stat().st_size > 10_000
    copy_to = os.environ.get("MAXI_SPACE_SCREENSHOT")
    if copy_to:
        shutil.copyfile(screenshot, copy_to)


def test_clicking_an_example_classifies_it_with_both_models_and_draws_the_heatmaps(driver, tmp_path, tiny_model_dir):
    """A visitor's one click: the first example (a shipped clip, the Kinetics-400 labels) fills the inputs and runs."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as conditions
    from selenium.webdriver.support.ui import WebDriverWait

    first = SPACE_EXAMPLES[0]
    assert first.label_set == "Kinetics-400" and (EXAMPLES_DIR / first.file).is_file()
    kinetics = set(load_class_names("k400"))
    config = space_config(tiny_model_dir, save_tiny_clip(tmp_path / "tiny_clip"), heatmap_size=160, max_labels=400)
    wait = WebDriverWait(driver, WAIT_S)
    with serve_demo(config) as url:
        driver.get(url)
        wait.until(conditions.element_to_be_clickable((By.CSS_SELECTOR, "#examples [data-testid='dataset-cell-0-0']")))
        driver.find_element(By.CSS_SELECTOR, "#examples [data-testid='dataset-cell-0-0']").click()

        def labels_in(element_id):
            lines = driver.find_element(By.CSS_SELECTOR, f"#{element_id}").text.splitlines()
            return {line.strip() for line in lines} & kinetics

        wait.until(lambda browser: len(labels_in("maxi-label")) >= 5 and len(labels_in("clip-label")) >= 5)
        wait.until(lambda browser: len(browser.find_elements(By.CSS_SELECTOR, "#heatmap-gallery img")) == 4)
        summary = driver.find_element(By.CSS_SELECTOR, "#summary").text
        screenshot = tmp_path / "space_example.png"
        assert driver.save_screenshot(str(screenshot))
    assert f"Heatmap label: {first.heatmap_label}" in summary and "400 candidate labels" in summary
    assert screenshot.stat().st_size > 10_000
