"""The chat page (`GET /`, src/server/web/chat.html) in a real browser: Debian's headless
Chromium driven by python3-selenium through chromium-driver, against `llama-triton serve` with
the CPU fixture model on a free loopback port. Checked: the page and its Content-Security-Policy
(the inline script's hash computed here with hashlib must be the one the server allows, and the
script must run); a streamed reply equal to the CLI's greedy output for the prompt rendered by
Jinja2 (python3-jinja2) from the same fixture chat template; Stop mid-reply frees the sequence
(/metrics); the conversation survives a reload; model output and stored conversations shown
as text (an <img onerror> creates no element and runs nothing); Unicode and right-to-left;
the API key prompt on 401; readable errors. Screenshots (desktop, phone) go to
build/chat_page/."""

import base64
import hashlib
import json
import re
import time
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from conftest import chat_templates
from serve_util import CLI, REPO, Server, cli_chat, metrics, wait_for

PAGE = REPO / "src" / "server" / "web" / "chat.html"
ART = Path(CLI).resolve().parent / "chat_page"  # screenshots: artifacts beside the binary


def template_path():
    return chat_templates() / "Qwen-Qwen2.5-7B-Instruct.jinja"  # ChatML; plain text for stories260K's vocab


def greedy(messages, n):
    """The reference reply: the CLI's greedy continuation of the Jinja2-rendered chat."""
    return cli_chat(template_path(), messages, n)


@pytest.fixture(scope="module")
def browser():
    o = Options()
    o.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,800", "--lang=en-US", "--no-first-run"]:
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    d.set_page_load_timeout(20)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def server():
    with Server("--parallel", "2", "--chat-template", template_path()) as s:
        yield s


@pytest.fixture(scope="module")
def chat(server):
    """The chat tests need /v1/chat/completions, i.e. the chat template engine (issue 11) wired
    into the server; until then that endpoint answers 501 and they are skipped, saying so."""
    r = httpx.post(server.url + "/v1/chat/completions", timeout=30,
                   json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
    if r.status_code == 501:
        pytest.skip("this build's /v1/chat/completions answers 501 (no chat template engine yet)")
    assert r.status_code == 200, r.text


def open_page(d, url, clear=True):
    d.get(url + "/")
    if clear:
        d.execute_script("localStorage.clear()")
        d.get(url + "/")
    WebDriverWait(d, 10).until(lambda d: d.execute_script("return document.documentElement.dataset.ready"))
    return d


def console_problems(d):
    return [e["message"] for e in d.get_log("browser")
            if e["level"] == "SEVERE" and "favicon" not in e["message"]]


def texts(d, role):
    return [e.text for e in d.find_elements(By.CSS_SELECTOR, f".msg.{role} .text")]


def send(d, text):
    box = d.find_element(By.ID, "input")
    box.clear()
    lines = text.split("\n")
    for i, line in enumerate(lines):  # Shift+Enter is a new line, Enter sends
        box.send_keys(line)
        box.send_keys(Keys.SHIFT, Keys.ENTER) if i + 1 < len(lines) else box.send_keys(Keys.ENTER)


def wait_reply(d, timeout=20):
    WebDriverWait(d, timeout).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.assistant")
        and not d.find_elements(By.CSS_SELECTOR, ".msg.pending")
        and d.find_element(By.ID, "stop").get_attribute("disabled"))


def set_settings(d, **kv):
    d.execute_script("localStorage.setItem('llt-chat-settings', arguments[0])", json.dumps(kv))


def record_requests(d):
    """From now on, keep the body of every request the page makes (window.__sent)."""
    d.execute_script("""window.__sent = []; const f = window.fetch;
        window.fetch = (u, o) => { if (o && o.body) window.__sent.push(JSON.parse(o.body)); return f(u, o); };""")


def sent(d):
    return d.execute_script("return window.__sent")


# ---- the page itself --------------------------------------------------------------------------

def test_page_bytes_headers_and_csp(server):
    r = httpx.get(server.url + "/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    src = PAGE.read_bytes()
    assert r.content == src, "the binary serves a stale or altered page"
    assert len(src) < 100_000
    csp = r.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    for tag in ("script", "style"):
        body = re.findall(rb"<%s>(.*?)</%s>" % (tag.encode(), tag.encode()), src, re.S)
        assert len(body) == 1
        h = base64.b64encode(hashlib.sha256(body[0]).digest()).decode()
        assert f"{tag}-src 'sha256-{h}'" in csp
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert wait_for(lambda: "GET / 200" in server.log(), 5)  # the access line follows the response


def test_info_from_health_and_models(server, browser):
    d = open_page(browser, server.url)
    h = httpx.get(server.url + "/health").json()
    WebDriverWait(d, 5).until(lambda d: "ready" in d.find_element(By.ID, "info").text)
    info = d.find_element(By.ID, "info").text
    assert "stories260K.gguf" in info and f"context {h['context_length']}" in info
    assert f"device {h['device']}" in info
    assert console_problems(d) == []  # the CSP let the script run and blocked nothing


def test_stored_conversation_is_text_not_html(server, browser):
    """A conversation in localStorage (a pasted one, or a model's reply) with markup in it."""
    evil = '<img src=x onerror="document.title=\'pwned\';window.__pwned=1">'
    msgs = [
        {"role": "user", "content": "<script>window.__pwned=2</script> 你好 👋🏽 שלום"},
        {"role": "assistant", "content": f"Here: {evil}\n```\ncode  line\n\tindented\n```\nend"},
        {"role": "user", "content": "مرحبا بالعالم"},
        {"role": "assistant", "content": "😀 <b>not bold</b>"},
    ]
    d = open_page(browser, server.url)
    d.execute_script("localStorage.setItem('llt-chat-v1', arguments[0])",
                     json.dumps({"current": "c1", "convs": [{"id": "c1", "title": "<i>t</i>", "messages": msgs}]}))
    d.refresh()
    WebDriverWait(d, 10).until(lambda d: d.execute_script("return document.documentElement.dataset.ready"))
    shown = [e.get_attribute("textContent") for e in d.find_elements(By.CSS_SELECTOR, ".msg .text")]
    assert shown == [m["content"] for m in msgs]
    assert d.find_elements(By.TAG_NAME, "img") == [] and d.find_elements(By.CSS_SELECTOR, "main script, main b") == []
    time.sleep(0.2)
    assert d.execute_script("return window.__pwned") is None and d.title == "llama-triton chat"
    rtl = d.find_elements(By.CSS_SELECTOR, ".msg.user .text")[1]
    assert d.execute_script("return getComputedStyle(arguments[0]).direction", rtl) == "rtl"
    ltr = d.find_elements(By.CSS_SELECTOR, ".msg.assistant .text")[0]
    assert d.execute_script("return getComputedStyle(arguments[0]).direction", ltr) == "ltr"
    assert d.execute_script("return getComputedStyle(arguments[0]).whiteSpace", ltr) == "pre-wrap"
    assert "\n\tindented\n" in ltr.get_attribute("innerText").replace("    ", "\t")
    assert d.find_element(By.CSS_SELECTOR, "#convs .open").text == "<i>t</i>"


# ---- chatting -----------------------------------------------------------------------------------

def test_streamed_reply_equals_greedy_cli_then_reload_keeps_it(server, browser, chat):
    d = open_page(browser, server.url)
    set_settings(d, temperature=0, max_tokens=48, system="")
    d.refresh()
    WebDriverWait(d, 10).until(lambda d: d.execute_script("return document.documentElement.dataset.ready"))
    record_requests(d)
    question = "Tell me a story\nabout a cat."
    send(d, question)
    wait_reply(d)
    assert texts(d, "user") == [question]
    got = texts(d, "assistant")[0]
    # the request is the conversation so far and nothing else (no empty assistant turn for the
    # pending reply: the template would render it as a turn of its own)
    asked = [{"role": "user", "content": question}]
    assert [r["messages"] for r in sent(d)] == [asked]
    assert {k: sent(d)[0][k] for k in ("temperature", "max_tokens", "stream")} == {
        "temperature": 0, "max_tokens": 48, "stream": True}
    want = greedy(asked, 48)
    assert d.find_element(By.CSS_SELECTOR, ".msg.assistant .text").get_attribute("textContent") == want
    assert got.strip() and d.find_element(By.ID, "error").is_displayed() is False
    stats = d.find_element(By.CSS_SELECTOR, ".msg.assistant .stats").text
    assert re.search(r"\d+ tokens · [\d.]+ tokens/s · first token \d+ ms", stats), stats
    # Regenerate: greedy again, the same reply, still one assistant message
    d.find_element(By.CSS_SELECTOR, ".msg.assistant .regen").click()
    wait_reply(d)
    assert [e.get_attribute("textContent") for e in d.find_elements(By.CSS_SELECTOR, ".msg.assistant .text")] == [want]
    assert sent(d)[1]["messages"] == asked
    # a second turn: the history goes with it, the reply is the greedy continuation of all of it
    send(d, "And then?")
    wait_reply(d)
    asked2 = asked + [{"role": "assistant", "content": want}, {"role": "user", "content": "And then?"}]
    assert sent(d)[2]["messages"] == asked2
    want2 = greedy(asked2, 48)
    assert [e.get_attribute("textContent") for e in d.find_elements(By.CSS_SELECTOR, ".msg.assistant .text")] == [want, want2]
    # reload: the conversation is kept (localStorage)
    d.refresh()
    WebDriverWait(d, 10).until(lambda d: d.execute_script("return document.documentElement.dataset.ready"))
    assert texts(d, "user") == [question, "And then?"]
    assert [e.get_attribute("textContent") for e in d.find_elements(By.CSS_SELECTOR, ".msg.assistant .text")] == [want, want2]
    # screenshots, desktop and phone width
    ART.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(ART / "desktop.png"))
    d.set_window_size(390, 844)
    try:
        d.refresh()
        WebDriverWait(d, 10).until(lambda d: d.execute_script("return document.documentElement.dataset.ready"))
        assert d.execute_script("return document.documentElement.scrollWidth") <= 390  # no sideways scroll
        assert d.find_element(By.ID, "send").is_displayed() and d.find_element(By.ID, "input").is_displayed()
        # the header stays a header (the info line once broke after every letter and filled the
        # screen), the conversation gets most of the height and nearly all of the width
        box = lambda css: d.execute_script("return arguments[0].getBoundingClientRect().toJSON()",
                                           d.find_element(By.CSS_SELECTOR, css))
        inner = d.execute_script("return innerHeight")
        assert box("header")["height"] < 110, box("header")
        assert box("#messages")["height"] > inner / 2, (box("#messages"), inner)
        assert box(".msg.assistant .text")["width"] > 300, box(".msg.assistant .text")
        d.save_screenshot(str(ART / "phone.png"))
    finally:
        d.set_window_size(1280, 800)
    # a new conversation: empty page, the old one still listed
    d.find_element(By.ID, "new").click()
    assert d.find_elements(By.CSS_SELECTOR, ".msg") == []
    assert len(d.find_elements(By.CSS_SELECTOR, "#convs li")) == 2


def test_stop_mid_reply_frees_the_sequence(server, browser, chat):
    d = open_page(browser, server.url)
    set_settings(d, temperature=0, max_tokens=400)
    d.refresh()
    WebDriverWait(d, 10).until(lambda d: d.execute_script("return document.documentElement.dataset.ready"))
    # press Stop as soon as the first piece of the reply shows
    d.execute_script("""
        new MutationObserver((ms, ob) => {
          const t = document.querySelector('.msg.pending .text');
          if (t && t.textContent.length) { ob.disconnect(); document.getElementById('stop').click(); }
        }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});""")
    question = "Once upon a time"
    send(d, question)
    wait_reply(d)
    got = d.find_element(By.CSS_SELECTOR, ".msg.assistant .text").get_attribute("textContent")
    full = greedy([{"role": "user", "content": question}], 400)
    assert got and full.startswith(got) and len(got) < len(full), (got, full)
    assert "stopped by you" in d.find_element(By.CSS_SELECTOR, ".msg.assistant .stats").text
    with httpx.Client(base_url=server.url) as c:
        assert wait_for(lambda: metrics(c)["llt_sequences_running"] == 0, 5)
    assert d.find_element(By.ID, "error").is_displayed() is False


def test_readable_error_for_a_bad_request(server, browser, chat):
    d = open_page(browser, server.url)
    set_settings(d, max_tokens=100000)
    d.refresh()
    WebDriverWait(d, 10).until(lambda d: d.execute_script("return document.documentElement.dataset.ready"))
    send(d, "hello")
    WebDriverWait(d, 10).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    msg = d.find_element(By.ID, "error").text
    assert msg.startswith("Request failed (400): ") and "100000" in msg, msg
    assert texts(d, "user") == ["hello"] and texts(d, "assistant") == []


def test_api_key_prompt_on_401(browser, chat):
    with Server("--api-key", "sekrit", "--chat-template", template_path()) as s:
        d = open_page(browser, s.url)
        set_settings(d, temperature=0, max_tokens=8)
        d.refresh()
        WebDriverWait(d, 10).until(lambda d: d.execute_script("return document.documentElement.dataset.ready"))
        WebDriverWait(d, 5).until(lambda d: "API key needed" in d.find_element(By.ID, "info").text)  # /health is fetched after ready
        send(d, "hi")
        WebDriverWait(d, 10).until(lambda d: d.find_element(By.ID, "keybox").is_displayed())
        assert "401" in d.find_element(By.ID, "keymsg").text
        d.find_element(By.ID, "key").send_keys("wrong", Keys.ENTER)
        WebDriverWait(d, 10).until(lambda d: d.find_element(By.ID, "keybox").is_displayed())
        d.find_element(By.ID, "key").send_keys("sekrit", Keys.ENTER)
        wait_reply(d)
        want = greedy([{"role": "user", "content": "hi"}], 8)
        assert d.find_element(By.CSS_SELECTOR, ".msg.assistant .text").get_attribute("textContent") == want
        assert d.execute_script("return localStorage.getItem('llt-chat-key')") == '"sekrit"'
        assert wait_for(lambda: "POST /v1/chat/completions 200" in s.log(), 5)
        assert s.log().count("POST /v1/chat/completions 401") == 2
