#!/usr/bin/env python3
"""Drives the dashboard in a real headless Chromium (Selenium + chromedriver).

    dashboard.py URL REVIEWER_TOKEN READER_TOKEN MIGRATION SCREENSHOT_DIR

Logs in with the reviewer's token; waits until the overview lists both worker
nodes; opens the migration (its phases and the link to the review queue);
approves every waiting mapping entry in the review page; then watches the
migration page until the migration completes. A reader's token is refused a
decision (HTTP 403). Saves overview.png, review.png and migration.png and
prints a JSON summary of what the browser saw.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


def decided(driver, entry):
    """True once a loaded review page no longer offers `entry` for approval."""
    if driver.execute_script("return document.readyState") != "complete":
        return False
    if not driver.find_elements(By.ID, "waiting-count"):
        return False
    selector = f'button.approve[data-entry="{entry}"]'
    return not driver.find_elements(By.CSS_SELECTOR, selector)


def main():
    url, reviewer, reader, migration, shots = sys.argv[1:6]
    os.makedirs(shots, exist_ok=True)
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    seen = {"nodes": [], "phases": [], "approved": [], "states": []}
    try:
        driver.get(url + "/")
        assert "/login" in driver.current_url, driver.current_url
        driver.find_element(By.ID, "token").send_keys(reviewer)
        driver.find_element(By.ID, "login").click()
        deadline = time.time() + 60
        while True:
            driver.get(url + "/")
            nodes = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#nodes td.node")]
            if {"worker-1", "worker-2"} <= set(nodes) or time.time() > deadline:
                break
            time.sleep(0.5)
        seen["nodes"] = nodes
        driver.save_screenshot(os.path.join(shots, "overview.png"))

        driver.get(f"{url}/m/{migration}")
        seen["phases"].append(driver.find_element(By.ID, "phases").text)
        driver.find_element(By.ID, "review-link").click()
        driver.save_screenshot(os.path.join(shots, "review.png"))

        # A reader may look, not decide.
        req = urllib.request.Request(
            f"{url}/m/{migration}/review",
            data=urllib.parse.urlencode({"entry": "x.y", "action": "approve"}).encode(),
            headers={"Authorization": f"Bearer {reader}"},
        )
        try:
            urllib.request.urlopen(req)
            seen["reader_decision"] = 200
        except urllib.error.HTTPError as e:
            seen["reader_decision"] = e.code

        while True:
            WebDriverWait(driver, 30).until(EC.presence_of_element_located((By.ID, "waiting-count")))
            buttons = driver.find_elements(By.CSS_SELECTOR, "button.approve")
            if not buttons or len(seen["approved"]) > 50:
                break
            entry = buttons[0].get_attribute("data-entry")
            buttons[0].click()
            # The decision posts the form and the page loads again: wait for a
            # fully loaded page without this entry's button. (Asking the old
            # button whether it went stale races the navigation: chromedriver
            # may answer with a generic error while the node is detached.)
            WebDriverWait(driver, 30, ignored_exceptions=[WebDriverException]).until(
                lambda d, entry=entry: decided(d, entry)
            )
            seen["approved"].append(entry)
        seen["waiting_after"] = driver.find_element(By.ID, "waiting-count").text

        deadline = time.time() + 180
        while time.time() < deadline:
            driver.get(f"{url}/m/{migration}")
            state = driver.find_element(By.ID, "state").text
            if not seen["states"] or seen["states"][-1] != state:
                seen["states"].append(state)
            phases = driver.find_element(By.ID, "phases").text
            if seen["phases"][-1] != phases:
                seen["phases"].append(phases)
            if state in ("completed", "failed", "halted"):
                break
            time.sleep(0.5)
        # The live events arrive over server-sent events from the topic backend.
        deadline = time.time() + 10
        while time.time() < deadline and not driver.find_elements(By.CSS_SELECTOR, "#events li"):
            time.sleep(0.2)
        seen["events"] = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#events li")]
        verdicts = driver.find_elements(By.ID, "verdict")
        seen["verdict"] = verdicts[0].text if verdicts else None
        seen["receipt_rows"] = len(driver.find_elements(By.CSS_SELECTOR, "#receipt tr")) - 1
        seen["throughput"] = {
            line.get_attribute("class"): int(line.get_attribute("data-points"))
            for line in driver.find_elements(By.CSS_SELECTOR, "#throughput polyline")
        }
        driver.save_screenshot(os.path.join(shots, "migration.png"))
    finally:
        driver.quit()
    print(json.dumps(seen, indent=1))


if __name__ == "__main__":
    main()
