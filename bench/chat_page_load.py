#!/usr/bin/python3
"""The chat page's size and first paint on loopback (issue 16): starts `llama-triton serve` with
the fixture model, loads `GET /` in Debian's headless Chromium (python3-selenium,
chromium-driver) with the browser cache off, N times, and reports the median of
  transferred  bytes over the wire for the page (Navigation Timing transferSize: headers + body)
  api          bytes of the page's own start-up requests (/health, /v1/models)
  fcp          first contentful paint, ms after navigation start
  usable       the page's 'llt-usable' mark (script done: handlers attached, input focused), ms
  info         the start-up requests (/health, /v1/models) answered, ms
usage: bench/chat_page_load.py [BUILD_DIR] [-n N]"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

N = int(sys.argv[sys.argv.index("-n") + 1]) if "-n" in sys.argv else 20

JS = """
const nav = performance.getEntriesByType('navigation')[0];
const fcp = performance.getEntriesByName('first-contentful-paint')[0];
const u = performance.getEntriesByName('llt-usable')[0];
const api = performance.getEntriesByType('resource').filter(r => /\\/(health|v1\\/models)$/.test(r.name));
return {transferred: nav.transferSize, body: nav.encodedBodySize, fcp: fcp ? fcp.startTime : null,
        usable: u ? u.startTime : null, api: api.reduce((a, r) => a + r.transferSize, 0),
        apiEnd: api.length == 2 ? Math.max(...api.map(r => r.responseEnd)) : null};
"""


def main():
    import os
    build = next((a for a in sys.argv[1:] if not a.startswith("-") and not a.isdigit()), None)
    if build:
        os.environ["LLT_CLI"] = str(Path(build).resolve() / "llama-triton")
    from serve_util import Server
    o = Options()
    o.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"]:
        o.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    rows = []
    try:
        d.execute_cdp_cmd("Network.enable", {})
        d.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
        with Server("--parallel", "1") as s:
            for _ in range(N + 1):
                d.get("about:blank")
                d.get(s.url + "/")
                end = time.time() + 10
                r = d.execute_script(JS)
                while None in (r["usable"], r["apiEnd"], r["fcp"]) and time.time() < end:
                    time.sleep(0.01)
                    r = d.execute_script(JS)
                rows.append(r)
    finally:
        d.quit()
    rows = rows[1:]  # the first load warms the browser process
    if "-v" in sys.argv:
        print(rows)
    med = lambda k: statistics.median(r[k] for r in rows if r[k] is not None)  # noqa: E731
    print(f"chat page over loopback, {N} loads, cache off, medians: transferred {med('transferred')} B "
          f"(body {med('body')} B), start-up API {med('api')} B, first contentful paint {med('fcp'):.0f} ms, "
          f"usable {med('usable'):.0f} ms, start-up requests answered by {med('apiEnd'):.0f} ms")


if __name__ == "__main__":
    main()
