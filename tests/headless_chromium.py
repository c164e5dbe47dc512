"""A page in Debian's headless Chromium, driven over the DevTools protocol (websocket-client), for the browser tests.

Only the system browser is used (`chromium` on PATH, or CHROMIUM); nothing is downloaded. The browser gets a fresh
profile in a temporary folder and the flags that keep it off the network (no background networking, no component
updates), so it talks only to the local ComfyUI server.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time

BROWSER_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--remote-debugging-port=0",
]


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


class BrowserError(RuntimeError):
    pass


class Page:
    """One tab: evaluate JavaScript, read console errors, dispatch input, take screenshots."""

    def __init__(self, width: int = 1600, height: int = 1000):
        import websocket  # websocket-client; imported here so collecting the tests never needs it

        self._profile = tempfile.mkdtemp(prefix="unavglip-chromium-")
        self._process = subprocess.Popen(
            [chromium_path(), *BROWSER_FLAGS, f"--user-data-dir={self._profile}", f"--window-size={width},{height}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port_file = os.path.join(self._profile, "DevToolsActivePort")
        deadline = time.time() + 60
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            if self._process.poll() is not None or time.time() > deadline:
                self.close()
                raise BrowserError("chromium did not start (no DevToolsActivePort)")
            time.sleep(0.1)
        port = open(port_file).read().split()[0]
        target = self._page_target(int(port))
        self._socket = websocket.create_connection(target, timeout=120, suppress_origin=True)
        self._next_id = 0
        self.console_errors: list[str] = []
        self.console_messages: list[str] = []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)

    @staticmethod
    def _page_target(port: int) -> str:
        import urllib.request

        deadline = time.time() + 30
        while time.time() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
                pages = [t for t in json.loads(answer.read()) if t["type"] == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.2)
        raise BrowserError("chromium shows no page")

    def _record(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", []))
            self.console_messages.append(f"{params['type']}: {text}")
            if params["type"] in ("error", "assert"):
                self.console_errors.append(text)
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.console_errors.append(details.get("exception", {}).get("description", details.get("text", "")))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.console_errors.append(f"{entry.get('text', '')} {entry.get('url', '')}".strip())

    def call(self, method: str, **params) -> dict:
        self._next_id += 1
        call_id = self._next_id
        self._socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._record(message)

    def pump(self, seconds: float) -> None:
        """Let the page run for a while, recording what it logs."""
        deadline = time.time() + seconds
        self._socket.settimeout(0.2)
        try:
            while time.time() < deadline:
                try:
                    self._record(json.loads(self._socket.recv()))
                except Exception as error:  # websocket timeout: nothing arrived in 0.2 s
                    if type(error).__name__ != "WebSocketTimeoutException":
                        raise
        finally:
            self._socket.settimeout(120)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (awaited when it is a promise), as JSON."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(details.get("exception", {}).get("description", details.get("text")))
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            self.pump(0.3)
        raise BrowserError(f"timed out waiting for {expression}")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def close(self) -> None:
        try:
            self._socket.close()
        except Exception:  # never connected, or already gone
            pass
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        shutil.rmtree(self._profile, ignore_errors=True)
