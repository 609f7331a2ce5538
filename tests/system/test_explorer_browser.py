"""The API explorer in a real browser: headless Chromium opens /api/v3/docs of a real server,
Swagger UI renders every operation of affix's OpenAPI document from assets affix serves itself,
and an operation tried out with the admin's key is answered by the API."""
import pytest
import requests
from selenium.webdriver.common.by import By

from support.browser import headless_chromium
from support.servers import HIGH_LIMIT, running_server
from support.waiting import wait_for

pytestmark = pytest.mark.system

# Swagger UI's deep link to an operation without an operationId: tag, method, path's words
CONFIGURATION = "#/default/get_api_v3_configuration"
# what Swagger UI shows of a call's answer
STATUS_SHOWN = ".live-responses-table .response .response-col_status"
# a browser renders; a slow machine shared with other tests' servers takes its time
RENDER_TIMEOUT = 30


def _texts(browser, selector) -> list:
    return [element.text for element in browser.find_elements(By.CSS_SELECTOR, selector)]


def _click(browser, element):
    """A click on ``element`` itself, as its own script would click it: a click at its place on
    the screen can land on whatever Swagger UI's layout, still moving, puts there first."""
    browser.execute_script("arguments[0].click()", element)


@pytest.mark.one_database("the browser's rendering of the API; nothing is stored")
def test_the_explorer_renders_the_api_and_tries_an_operation_with_a_key(tmp_path, databases):
    with running_server(tmp_path, databases, HIGH_LIMIT) as server, \
            headless_chromium(tmp_path / "chromium") as browser:
        document = requests.get(server.url("/api/v3/spec.json"), timeout=10).json()
        operations = sum(len(methods) for methods in document["paths"].values())

        browser.get(server.url("/api/v3/docs") + CONFIGURATION)
        wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".opblock")) == operations,
                 "Swagger UI to render every operation", RENDER_TIMEOUT)
        loaded = browser.execute_script(
            "return performance.getEntriesByType('resource').map(entry => entry.name)")
        assert loaded and all(url.startswith(server.url("/api/v3/")) for url in loaded), loaded

        browser.execute_script("window.ui.preauthorizeBasic('apiKey', 'apikey', arguments[0])",
                               server.api_key)
        operation = browser.find_element(By.ID, "operations-default-get_api_v3_configuration")
        _click(browser, operation.find_element(By.CSS_SELECTOR, ".try-out__btn"))
        # Swagger UI shows the button once it has rendered the click: not at once
        wait_for(lambda: operation.find_elements(By.CSS_SELECTOR, ".execute"),
                 "the Execute button", RENDER_TIMEOUT)
        _click(browser, operation.find_element(By.CSS_SELECTOR, ".execute"))
        wait_for(lambda: _texts(operation, STATUS_SHOWN), "the call's answer", RENDER_TIMEOUT)
        assert _texts(operation, STATUS_SHOWN) == ["200"]
        # the body as the API answered it, among the answer's details
        assert f'"maximumAttachmentFileSize": {HIGH_LIMIT}' in "\n".join(
            _texts(operation, ".live-responses-table .response-col_description pre"))
