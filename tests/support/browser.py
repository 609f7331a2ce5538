"""A real headless browser: Debian's Chromium, driven through Debian's chromedriver by
Selenium. Both come from the same Debian package version, so they always match; Selenium is
never asked to find or download either."""
import contextlib

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# what one script in a page may take (an upload and a download on loopback)
SCRIPT_TIMEOUT = 60


@contextlib.contextmanager
def headless_chromium(profile_dir):
    """A fresh Chromium with its profile in ``profile_dir``; quit when the block ends."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        # Chromium's sandbox refuses to run as root, which is how CI runs the tests
        "--no-sandbox",
        # a container's /dev/shm is often too small for a renderer
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--user-data-dir={profile_dir}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.set_script_timeout(SCRIPT_TIMEOUT)
        yield driver
    finally:
        driver.quit()
