#!/usr/bin/env python3
"""The console in a real browser (headless Chromium driven through chromedriver), against a
running `coldchain dev` after `coldchain demo`: raise an excursion at la-vientiane (a sensor of
its own, through grpcio and the servers' reflection, as interop_check.py does), log in through
the form, open every page, acknowledge the alarm with a note, and fail on any page that is
not the page asked for, on any error the browser's console logged, and on an acknowledgement
that did not stick. Saves a screenshot of every page into SHOTS_DIR.

Usage: console_check.py NETWORK_FILE DATA_DIR CONSOLE_URL SHOTS_DIR
"""

import pathlib
import sys
import time
import tomllib
import uuid

import grpc
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import interop_check as interop  # noqa: E402  (message types from reflection, keys)

SITE = "la-vientiane"
SENSOR = f"browser-check-{uuid.uuid4().hex[:8]}"


def wait_until_gone(element, seconds):
    """Waits until `element` no longer belongs to the page (the browser loaded the next one)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return
        time.sleep(0.1)


def call(channel, method, Request, Response, request, key):
    stub = channel.unary_unary(
        method,
        request_serializer=Request.SerializeToString,
        response_deserializer=Response.FromString,
    )
    return stub(request, metadata=[("authorization", f"Bearer {key}")], timeout=10)


def raise_excursion(network, keyring):
    """A chilled-zone sensor of SITE that reads 11 °C then 4 °C: an excursion alarm,
    raised, cleared, not acknowledged."""
    site = next(s for s in network["site"] if s["id"] == SITE)
    zone = next(z["id"] for z in site["zone"] if z["class"] == "CHILLED")
    service = interop.SERVICES["telemetry"]
    names = [
        "coldchain.telemetry.v1.RegisterSensorRequest",
        "coldchain.telemetry.v1.Sensor",
        "coldchain.telemetry.v1.PushReadingsRequest",
        "coldchain.telemetry.v1.IngestSummary",
    ]
    with grpc.insecure_channel(f"127.0.0.1:{site['ports']['telemetry']}") as channel:
        _, (Register, Sensor, Push, Pushed) = interop.message_types(channel, service, names)
        call(
            channel,
            f"/{service}/RegisterSensor",
            Register,
            Sensor,
            Register(
                request_id=f"register-{SENSOR}",
                sensor_id=SENSOR,
                zone_id=zone,
                profile=dict(min_excursion_duration=dict(seconds=0)),
                description="the browser check's sensor",
            ),
            interop.read_key(keyring, "operations"),
        )
        # Six hours every five minutes around 2.5 °C, warm for 40 minutes in the middle.
        now = int(time.time())
        readings = []
        for i in range(72):
            at = now - 6 * 3600 + 300 * i
            celsius = 7.5 + (i % 3) * 0.4 if 30 <= i < 38 else 2.5 + ((i * 7) % 10) / 10
            readings.append(dict(sensor_id=SENSOR, time=dict(seconds=at), celsius=celsius))
        answer = call(
            channel,
            f"/{service}/PushReadings",
            Push,
            Pushed,
            Push(request_id=f"push-{SENSOR}", readings=readings),
            interop.read_key(keyring, f"{SITE}-sensors"),
        )
        if answer.accepted != len(readings):
            raise RuntimeError(f"readings not accepted: {answer}")
    print(f"console: raised an excursion on {SENSOR} at {SITE} ({zone})")


def browser(shots):
    options = Options()
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The Debian package's driver: nothing is downloaded.
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def main():
    network_file, data_dir, url, shots = sys.argv[1:5]
    shots = pathlib.Path(shots)
    shots.mkdir(parents=True, exist_ok=True)
    network = tomllib.loads(pathlib.Path(network_file).read_text())
    keyring = pathlib.Path(data_dir) / "dev-credentials"
    raise_excursion(network, keyring)
    failures = []
    driver = browser(shots)
    try:
        def errors_logged(where):
            for entry in driver.get_log("browser"):
                if entry["level"] == "SEVERE":
                    failures.append(f"{where}: the browser logged {entry['message']}")

        def open_page(path, heading, shot):
            driver.get(url + path)
            text = driver.find_element(By.TAG_NAME, "body").text
            if heading not in text:
                failures.append(f"{path}: no {heading!r} on the page:\n{text[:600]}")
            driver.save_screenshot(str(shots / f"{shot}.png"))
            errors_logged(path)
            print(f"console: {path} shows {heading!r}")
            return text

        driver.get(url + "/login")
        driver.find_element(By.NAME, "key").send_keys(interop.read_key(keyring, "operations"))
        driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]").click()
        # The click starts the form's POST and its redirect; the URL changes when the next
        # page has loaded, which a loaded machine may take a moment to do.
        deadline = time.time() + 10
        while "/login" in driver.current_url and time.time() < deadline:
            time.sleep(0.1)
        if "/login" in driver.current_url:
            failures.append(f"login did not leave the login page: {driver.find_element(By.TAG_NAME, 'body').text[:300]}")
        errors_logged("login")

        open_page("/", SITE, "network")
        open_page(f"/sites/{SITE}", SENSOR, "site")
        open_page(f"/sites/{SITE}/sensors/{SENSOR}?window=24h", "Mean Kinetic Temperature", "sensor")
        open_page("/transfers", "Transfers", "transfers")
        open_page("/booking", "Booking", "booking")
        open_page("/alarms", SENSOR, "alarms")

        # Acknowledge the check's alarm: the row of its sensor, its form, a note.
        note = f"checked by the browser test {uuid.uuid4().hex[:6]}"
        rows = [r for r in driver.find_elements(By.CSS_SELECTOR, "tr") if SENSOR in r.text]
        forms = [f for r in rows for f in r.find_elements(By.CSS_SELECTOR, "form")]
        if not forms:
            failures.append(f"no acknowledgement form for {SENSOR}'s alarm")
        else:
            forms[0].find_element(By.NAME, "note").send_keys(note)
            form = forms[0]
            form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            # Wait (bounded) until the POST's answer has replaced the page: opening the next
            # page at once could cancel the acknowledgement in flight.
            wait_until_gone(form, 10)
            text = open_page("/alarms", SENSOR, "alarms-acknowledged")
            if note not in text:
                failures.append(f"the acknowledgement's note is not shown on /alarms:\n{text[:800]}")
    finally:
        driver.quit()
    for failure in failures:
        print(f"console: FAILED: {failure}", file=sys.stderr)
    if failures:
        sys.exit(1)
    print(f"console: every page opened in Chromium without errors; screenshots in {shots}")


if __name__ == "__main__":
    main()
