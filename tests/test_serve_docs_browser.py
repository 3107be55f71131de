"""The API docs in a real browser without internet: headless Chromium, which can resolve nothing but loopback, renders
/docs (Swagger UI) and /redoc (ReDoc) of a live `wine_serve` with every operation, requests nothing from anywhere
else, and gets a prediction from the service through Swagger UI's "Try it out"."""
import html
import itertools
import json
import re
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from wine_nb.serve.inputs import TYPICAL_WINES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
# How each page shows an operation once its script has fetched /openapi.json and rendered it
SHOWN = {"/docs": 'data-path="{path}"', "/redoc": '>{method}</span><span[^>]*>{path}</span>'}


def chromium(profile: Path, *args) -> list:
    "Headless Chromium's command line: a fresh profile, no background traffic, no host resolves except loopback."
    return [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
            f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", *args]


def render(url: str, origin: str, folder: Path) -> tuple:
    "(the page's DOM after 10 s of virtual time for its scripts, every URL the page itself asked for)."
    net_log = folder/"net.json"
    dom = subprocess.run(chromium(folder/"profile", f"--log-net-log={net_log}", "--virtual-time-budget=10000",
                                  "--dump-dom", url), capture_output=True, text=True, timeout=120).stdout
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    started = [e["params"] for e in log["events"] if e["type"] == start and "url" in e.get("params", {})]
    return dom, [p["url"] for p in started if p.get("initiator") == origin]  # not the browser's own traffic


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_page_renders_every_operation_from_the_service_alone(server, tmp_path, page):
    dom, requested = render(server + page, server, tmp_path)
    elsewhere = [url for url in requested if not url.startswith(f"{server}/")]
    assert not elsewhere, f"{page} asked for {elsewhere}: it does not work without internet"
    schema = httpx.get(f"{server}/openapi.json").json()
    operations = [(method, path, op["summary"]) for path, ops in schema["paths"].items() for method, op in ops.items()]
    assert {"/predict", "/predict/batch", "/predict/batch/csv", "/model"} <= {path for _, path, _ in operations}
    missing = [f"{method.upper()} {path}: {summary}" for method, path, summary in operations
               if not re.search(SHOWN[page].format(method=method, path=re.escape(path)), dom)
               or html.escape(summary, quote=False) not in dom]
    assert not missing, f"{page} does not show {missing}"
    assert "<title>wine_nb — API docs</title>" in dom, dom[:2000]
    assert f"{server}/openapi.json" in requested and any(url.startswith(f"{server}/docs/") for url in requested)


@contextmanager
def devtools(profile: Path):
    "A headless Chromium driven over the DevTools protocol: yields `call(method, until, **params)` on its one page."
    browser = subprocess.Popen(chromium(profile, "--remote-debugging-port=0", "about:blank"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file, deadline = profile/"DevToolsActivePort", time.monotonic() + 60
        while not (port_file.exists() and len(port_file.read_text().split()) == 2):
            assert time.monotonic() < deadline and browser.poll() is None, "Chromium did not open its DevTools port"
            time.sleep(0.1)
        pages = httpx.get(f"http://127.0.0.1:{port_file.read_text().split()[0]}/json/list").json()
        with connect(next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"], max_size=None) as socket:
            numbers = itertools.count(1)
            def call(method: str, until: str = "", **params) -> dict:
                "Send a command; its result once answered and, if `until` names an event, once that event came."
                number, events = next(numbers), []
                socket.send(json.dumps({"id": number, "method": method, "params": params}))
                while (answer := json.loads(socket.recv(timeout=90))).get("id") != number:
                    events.append(answer.get("method"))
                while until and until not in events: events.append(json.loads(socket.recv(timeout=90)).get("method"))
                assert "result" in answer and "exceptionDetails" not in answer["result"], answer
                return answer["result"]
            yield call
    finally:
        browser.terminate()
        try: browser.wait(10)
        except subprocess.TimeoutExpired: browser.kill(); browser.wait()


# What a reader does in Swagger UI: open an operation, "Try it out", type the body, "Execute", read the response
TRY_IT_OUT = """(async (path, body) => {
  const until = async (find, what) => {
    for (let i = 0; i < 600; i++) {
      const found = find();
      if (found) return found;
      await new Promise(resolve => setTimeout(resolve, 50));
    }
    throw new Error('the docs page never showed ' + what);
  };
  const operation = (await until(() => document.querySelector(`.opblock-summary-path[data-path="${path}"]`), path))
    .closest('.opblock');
  operation.querySelector('.opblock-summary-control').click();
  (await until(() => operation.querySelector('.try-out__btn'), '"Try it out"')).click();
  const text = await until(() => operation.querySelector('textarea.body-param__text'), 'the request body');
  Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value').set.call(text, body);
  text.dispatchEvent(new Event('input', {bubbles: true}));
  (await until(() => operation.querySelector('.execute'), '"Execute"')).click();
  const response = await until(() => operation.querySelector('.live-responses-table .response'), 'the response');
  return [response.querySelector('.response-col_status').textContent.trim(),
          response.querySelector('.microlight').textContent];
})"""


def test_try_it_out_gets_a_prediction_from_the_service(server, tmp_path):
    wine = TYPICAL_WINES["white"]
    with devtools(tmp_path/"profile") as call:
        call("Page.enable")
        call("Page.navigate", until="Page.loadEventFired", url=f"{server}/docs")
        status, body = call("Runtime.evaluate", expression=f"{TRY_IT_OUT}('/predict', {json.dumps(json.dumps(wine))})",
                            awaitPromise=True, returnByValue=True)["result"]["value"]
    assert status.startswith("200"), (status, body)
    shown, answer = json.loads(body), httpx.post(f"{server}/predict", json=wine).json()
    assert (shown["quality"], shown["model_id"]) == (answer["quality"], answer["model_id"])
    assert shown["probabilities"] == pytest.approx(answer["probabilities"], abs=1e-6)
