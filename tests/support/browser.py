"""Real-browser test harness: Debian's Chromium via Selenium, inside a loopback-only netns.

Three pieces (shared/reference/webrtc-loopback.md):

- :func:`run_in_loopback_netns` runs a module-level function in a child Python process under
  ``ip netns exec`` in a fresh network namespace that has only ``lo``: the server and the
  browser it starts can reach nothing but 127.0.0.1. The function returns JSON-able data that
  the parent test then asserts on. Needs root; :func:`browser_skip_reason` says why not.
- :func:`chromium` launches ``/usr/bin/chromium`` through ``/usr/bin/chromedriver`` with
  ``SE_OFFLINE=true`` (Selenium never downloads anything) and the flags that work headless on
  loopback, optionally with a fake microphone playing a WAV file.
- :func:`write_fake_audio` / :func:`envelope` / :func:`best_envelope_correlation`: a tone
  with a random loudness envelope, and the check that received audio follows it.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMEDRIVER: Final = Path("/usr/bin/chromedriver")
RATE: Final = 48000
REPO_ROOT: Final = Path(__file__).resolve().parents[2]

#: Flags that work for headless Chromium ↔ aiortc on loopback (webrtc-loopback.md).
CHROMIUM_FLAGS: Final = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1100,900",
)


def browser_skip_reason() -> str | None:
    """One line saying why browser tests cannot run here, or None when they can."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return "Debian's chromium and chromium-driver are not installed (/usr/bin/chromium)"
    if os.geteuid() != 0:
        return "needs root to create a loopback-only network namespace (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (needed for ip netns)"
    return None


# -- network namespace -------------------------------------------------------------------------


@contextlib.contextmanager
def loopback_netns(prefix: str = "rc-web") -> Iterator[str]:
    """A fresh network namespace whose only interface is ``lo`` (up); deleted afterwards."""
    name = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(
            ["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True
        )
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def run_in_loopback_netns(
    target: Callable[..., Any], *, timeout: float = 180.0, **kwargs: Any
) -> Any:
    """Call ``target(**kwargs)`` in a child process inside a loopback-only namespace.

    ``target`` must be a module-level function; ``kwargs`` and its return value must be
    JSON-able. A failing child raises ``AssertionError`` with the tail of its output.
    """
    module, qualname = target.__module__, target.__qualname__
    if "<" in qualname:
        raise TypeError(f"{qualname} is not a module-level function")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    env["SE_OFFLINE"] = "true"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with loopback_netns() as namespace, tempfile.TemporaryDirectory() as scratch:
        result = Path(scratch) / "result.json"
        command = [
            "ip", "netns", "exec", namespace,
            sys.executable, "-m", "tests.support.browser",
            f"{module}:{qualname}", str(result), json.dumps(kwargs),
        ]  # fmt: skip
        try:
            done = subprocess.run(
                command,
                check=False,
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"{qualname} timed out after {timeout} s") from exc
        if done.returncode != 0 or not result.exists():
            output = (done.stdout + done.stderr)[-6000:]
            raise AssertionError(f"{qualname} failed in netns (exit {done.returncode}):\n{output}")
        return json.loads(result.read_text())


def _child_main(argv: list[str]) -> int:
    spec, result_path, raw_kwargs = argv
    module_name, _, qualname = spec.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    value = target(**json.loads(raw_kwargs))
    Path(result_path).write_text(json.dumps(value))
    return 0


# -- an ASGI app on a port, in a thread ------------------------------------------------------------


@contextlib.contextmanager
def serve(app: Any, port: int, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` with uvicorn on ``host:port`` in a thread; yields the base URL."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


# -- Chromium ------------------------------------------------------------------------------------


@contextlib.contextmanager
def chromium(profile_dir: Path, *, fake_audio: Path | None = None) -> Iterator[Any]:
    """A headless Chromium WebDriver with a fresh profile; the console log is kept
    (:func:`console_errors`). With ``fake_audio`` the fake microphone plays that WAV (looped)."""
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile_dir.mkdir(parents=True, exist_ok=True)
    options.add_argument(f"--user-data-dir={profile_dir}")
    if fake_audio is not None:
        options.add_argument(f"--use-file-for-fake-audio-capture={fake_audio}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """Console messages of level SEVERE since the last call (JS errors, failed loads)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# -- fake microphone audio and the envelope check ------------------------------------------------


def fake_audio_samples(seconds: float = 6.0, seed: int = 7) -> NDArray[np.float32]:
    """A 300 Hz tone (plus a soft harmonic) whose loudness jumps between random levels every
    100–400 ms: an envelope distinctive enough that correlating it cannot succeed by chance."""
    rng = np.random.default_rng(seed)
    total = int(seconds * RATE)
    gains = np.zeros(total, dtype=np.float64)
    position = 0
    levels = (0.0, 0.08, 0.25, 0.5, 0.8)
    previous = -1
    while position < total:
        length = int(rng.uniform(0.1, 0.4) * RATE)
        choice = int(rng.integers(len(levels)))
        if choice == previous:
            choice = (choice + 2) % len(levels)
        previous = choice
        gains[position : position + length] = levels[choice]
        position += length
    ramp = int(0.005 * RATE)  # 5 ms edges: no clicks, envelope intact
    gains = np.convolve(gains, np.ones(ramp) / ramp, mode="same")
    t = np.arange(total) / RATE
    tone = 0.8 * np.sin(2 * np.pi * 300 * t) + 0.2 * np.sin(2 * np.pi * 600 * t)
    return (0.6 * gains * tone).astype(np.float32)


def write_fake_audio(path: Path, seconds: float = 6.0, seed: int = 7) -> NDArray[np.float32]:
    """Write :func:`fake_audio_samples` as a 48 kHz mono 16-bit WAV; returns the samples."""
    samples = fake_audio_samples(seconds, seed)
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return samples


def envelope(samples: NDArray[np.float32], frame_ms: float = 20.0) -> NDArray[np.float64]:
    """RMS per ``frame_ms`` frame."""
    frame = int(RATE * frame_ms / 1000)
    usable = samples[: samples.size // frame * frame].astype(np.float64)
    rms: NDArray[np.float64] = np.sqrt(np.mean(usable.reshape(-1, frame) ** 2, axis=1))
    return rms


def best_envelope_correlation(
    received: NDArray[np.float32], source: NDArray[np.float32]
) -> tuple[float, int]:
    """The best Pearson correlation between the received envelope and the (looped) source
    envelope over every alignment, and the lag in frames. The browser loops the file, so the
    source is treated as periodic."""
    got = envelope(received)
    period = envelope(source)
    if got.size < 10 or float(np.std(got)) == 0.0:
        return 0.0, 0
    reps = int(np.ceil(got.size / period.size)) + 1
    looped = np.tile(period, reps)
    best, best_lag = -1.0, 0
    for lag in range(period.size):
        window = looped[lag : lag + got.size]
        r = float(np.corrcoef(got, window)[0, 1])
        if r > best:
            best, best_lag = r, lag
    return best, best_lag


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
