"""A headless Chromium page driven over the DevTools protocol (a pipe, no extra package), for the report tests.

``with Browser(width=1400) as page: page.goto(uri); page.js("document.title")`` runs JavaScript in a
real browser; promises are awaited and results come back by value.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

__all__ = ["Browser", "chromium"]


def chromium() -> str | None:
    """The Chromium binary, or None when none is installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def _high_pipe() -> tuple[int, int]:
    """A pipe on fds >= 10 (close-on-exec), so moving its ends to fds 3 and 4 never overwrites one of them."""
    import fcntl

    ends = []
    for fd in os.pipe():
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(fd)
    return ends[0], ends[1]


def _on_fds_3_and_4(read_fd: int, write_fd: int) -> None:
    """In the child before exec: the command pipe on fd 3, the reply pipe on fd 4 (``--remote-debugging-pipe``)."""
    os.dup2(read_fd, 3)  # dup2 leaves the copies inheritable
    os.dup2(write_fd, 4)


class Browser:
    """One headless Chromium with one page of ``width`` x ``height`` CSS pixels.

    Parameters
    ----------
    profile : Path
        An empty folder for the browser profile.
    width, height : int
        The viewport.
    """

    def __init__(self, profile: Path, *, width: int = 1400, height: int = 1000) -> None:
        self.profile, self.width, self.height = profile, width, height
        self._id = 0

    def __enter__(self) -> Browser:
        binary = chromium()
        if binary is None:
            raise RuntimeError("no Chromium installed")
        to_browser_r, to_browser_w = _high_pipe()
        from_browser_r, from_browser_w = _high_pipe()
        args = [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--mute-audio",
            "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={self.profile}",
            f"--window-size={self.width},{self.height}", "about:blank",
        ]
        self._proc = subprocess.Popen(
            args,
            preexec_fn=lambda: _on_fds_3_and_4(to_browser_r, from_browser_w),
            close_fds=False,  # (closing would run after preexec_fn and close fds 3 and 4)
            stdout=subprocess.DEVNULL,
            stderr=None if os.environ.get("CHROMIUM_LOG") else subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._write = os.fdopen(to_browser_w, "wb", buffering=0)
        self._read = os.fdopen(from_browser_r, "rb", buffering=0)
        self._buffer = b""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call("Browser.close")
        except (OSError, RuntimeError):
            pass
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._write.close()
        self._read.close()

    def call(self, method: str, *, session: bool = False, timeout_s: float = 60.0, **params: Any) -> dict:
        """Send one DevTools command and return its result (events are skipped)."""
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        self._write.write(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            while b"\0" not in self._buffer:
                chunk = self._read.read(1 << 16)
                if not chunk:
                    raise RuntimeError("Chromium closed the pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
        raise RuntimeError(f"{method}: no reply in {timeout_s} s")

    def js(self, expression: str, *, timeout_s: float = 60.0) -> Any:
        """Evaluate JavaScript in the page (a promise is awaited) and return the value."""
        result = self.call("Runtime.evaluate", session=True, timeout_s=timeout_s, expression=expression,
                           awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, uri: str) -> None:
        """Open ``uri`` and wait until it has loaded."""
        self.call("Page.navigate", session=True, url=uri)
        for _ in range(600):
            if self.js("document.readyState") == "complete" and self.js("location.href") == uri:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{uri} did not load")

    def screenshot(self, path: Path) -> None:
        """Save a PNG of the viewport."""
        import base64

        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))
