"""The replay report: `replay --report` over a real clip makes a page that a real headless Chromium (Debian's
chromium + chromium-driver, started here) opens without console errors, whose H.264 video plays with the run's
duration and seeks when a timeline is clicked; a screenshot is saved with the test output."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from conftest import REPO, cli

FRAMES = 100
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory, detector_model) -> Path:
    from conftest import shared

    clip = shared("data", "videos", "video01.mp4")
    out = tmp_path_factory.mktemp("report") / "report"
    result = cli("replay", "--spec", str(REPO / "deploy/specs/dev-cpu.yaml"), str(clip), "--max-frames",
                 str(FRAMES), "--report", str(out), "--no-progress")
    assert f"report: {out / 'index.html'}" in result.stderr
    assert result.returncode == 0, result.stderr
    return out


def _episodes(jsonl: Path) -> set[tuple[str, int]]:
    """Alert episodes straight from the raw lines: one per (type, since_ns)."""
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    return {(a["type"], a["since_ns"]) for m in lines for a in (m["alerts"] or [])}


def test_the_report_folder_is_self_contained_and_matches_the_run(report_dir):
    page = (report_dir / "index.html").read_text()
    summary = json.loads((report_dir / "summary.json").read_text())
    assert summary["frames"] == FRAMES and summary["video_frames"] == FRAMES
    assert summary["video_codec"] == "libx264"  # the PyAV wheel's H.264 encoder, not a fallback
    # nothing loads from the network; every local resource the page names is beside it
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    for ref in re.findall(r"""(?:src|href)="([^"#:]+)\"""", page):
        assert (report_dir / ref).is_file(), ref
    # one alert row per alert episode in the JSONL
    assert len(summary["alerts"]) == len(_episodes(report_dir / "driver_state.jsonl"))
    assert page.count('<tr class="seek"') == len(summary["alerts"])


def test_a_report_without_video_and_bad_inputs(tmp_path, report_dir):
    result = cli("report", str(report_dir / "driver_state.jsonl"), "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert "give the recording" in (tmp_path / "r" / "index.html").read_text()
    bad = tmp_path / "bad.jsonl"
    bad.write_text((report_dir / "driver_state.jsonl").read_text().splitlines()[0] + "\n{not json\n")
    for run_file, code in ((tmp_path / "missing.jsonl", "SOURCE_NOT_FOUND"), (bad, "SOURCE_UNREADABLE")):
        result = cli("report", str(run_file), "--out", str(tmp_path / "x"))
        assert result.returncode == 5 and result.stderr.strip().startswith(f"error[{code}]"), result.stderr
        assert "Traceback" not in result.stderr
    assert "line 2" in cli("report", str(bad), "--out", str(tmp_path / "x")).stderr


def test_vp9_webm_when_there_is_no_h264_encoder(tmp_path, report_dir, monkeypatch):
    av = pytest.importorskip("av")
    from ims_runtime.report import video
    from ims_runtime.report.run_data import load_run

    monkeypatch.setattr(video, "ENCODERS", tuple(e for e in video.ENCODERS if e[0] != "libx264"))
    series = load_run(report_dir / "driver_state.jsonl")
    from conftest import shared

    result = video.write_annotated_video(series, shared("data", "videos", "video01.mp4"), tmp_path, 320)
    assert result.file == "annotated.webm" and result.codec == "libvpx-vp9"
    with av.open(str(tmp_path / result.file)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == FRAMES == result.frames


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver "
                    "(scripts/setup.sh installs them)")
def test_chromium_opens_the_page_plays_the_video_and_seeks_on_a_timeline_click(report_dir, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}", "--window-size=1400,1100",
                "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.get((report_dir / "index.html").as_uri())
        state_js = ("const v = document.getElementById('video'); "
                    "return [v.readyState, v.duration, v.error && v.error.code];")
        deadline = time.monotonic() + 20
        while (state := driver.execute_script(state_js))[0] < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        ready_state, duration_s, error = state
        assert error is None and ready_state >= 3, state  # HAVE_FUTURE_DATA: it can play
        summary = json.loads((report_dir / "summary.json").read_text())
        assert duration_s == pytest.approx(FRAMES / summary["fps"], abs=1.5 / summary["fps"])
        # it really plays: time advances
        driver.execute_script("document.getElementById('video').play();")
        time.sleep(1.0)
        assert driver.execute_script("return document.getElementById('video').currentTime;") > 0.1
        driver.execute_script("document.getElementById('video').pause();")
        # clicking the timeline at 3/4 of its time axis seeks the video there
        img = driver.find_element("id", "timelines")
        geometry = driver.execute_script(
            "const i = arguments[0]; i.scrollIntoView(); return [i.clientWidth, "
            "+i.dataset.left, +i.dataset.right, +i.dataset.tmin, +i.dataset.tmax];", img)
        width_px, left, right, t_min, t_max = geometry
        frac = left + 0.75 * (right - left)
        # the offset is from the element's centre
        ActionChains(driver).move_to_element_with_offset(img, int(frac * width_px - width_px / 2), 0).click() \
            .perform()
        time.sleep(0.5)
        seeked_s = driver.execute_script("return document.getElementById('video').currentTime;")
        assert seeked_s == pytest.approx(t_min + 0.75 * (t_max - t_min), abs=0.05 * (t_max - t_min))
        driver.execute_script("window.scrollTo(0, 0);")
        screenshot = tmp_path / "report.png"
        assert driver.save_screenshot(str(screenshot))
        assert screenshot.stat().st_size > 50_000  # a rendered page, not a blank one
        print(f"screenshot: {screenshot}")
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()


def test_a_missing_extra_is_a_coded_error_naming_it():
    from ims_runtime import errors
    from ims_runtime.commands._extras import import_extra

    with pytest.raises(errors.IMSError) as caught:
        import_extra("ims_runtime.report.not_installed_here", "report", "ims-runtime report")
    assert caught.value.code is errors.EXTRA_NOT_INSTALLED and caught.value.code.exit_code == 8
    assert "'report'" in caught.value.message and caught.value.hint == "pip install -e '.[report]'"
