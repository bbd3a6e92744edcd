"""Hostile links and a server in trouble, in a real browser (Debian's chromium, as in
test_e2e_browser.py, whose server and browser fixtures this file shares).

* Markdown and HTML in every key of a link: the page shows them as text; no link to the
  attacker's site and no image from it is in the page, and nothing is fetched from it.
* A folder in a link: shown, read only once the person at the page confirms it. A .zip of class
  folders from the person's own computer becomes the image folder.
* A home folder the server cannot write: every page opens and says so once; no run can start.
"""
import io
import time
import zipfile
from urllib.parse import urlparse

from PIL import Image

from distill_core import RunStore
from test_e2e_browser import (DEMO_BUTTON, Server, browser, button, server, visit,  # noqa: F401 - fixtures
                              wait_for_text, wait_until)
from tiny_runs import fake_run

EVIL = "evil.example"
PAYLOAD = (f"[continue here](http://{EVIL}/x) ![pic](http://{EVIL}/p.png) <img src=http://{EVIL}/i.png> "
           f"www.{EVIL} :material/home:")
RUN = "20260101-090000-aaaa"
APP_ERROR = "This app has encountered an error"


def quote(text: str) -> str:
    from urllib.parse import quote as q

    return q(text, safe="")


def evil_in_page(page) -> list[str]:
    """Links to, and images from, the attacker's site, in the page and its frames."""
    found = []
    for frame in page.frames:
        try:
            found += frame.evaluate(f"""() => [...document.querySelectorAll('a[href*="{EVIL}"], img[src*="{EVIL}"],
                                               [style*="{EVIL}"], source[srcset*="{EVIL}"]')].map(e => e.outerHTML)""")
        except Exception:  # noqa: BLE001 - a frame being replaced
            pass
    return found


def settled(page, text: str) -> None:
    wait_for_text(page, text, 60)
    time.sleep(1.0)  # the rest of the script run reaches the browser
    assert APP_ERROR not in page.content()


def test_links_show_their_text_read_no_folder_unconfirmed_and_take_a_zip(studio_home, server, browser, tmp_path):
    fake_run(RunStore(), RUN, studio_home / "runs")  # so Compare and Learn have a run beside the link's
    folder = tmp_path / "pictures"
    for name in ("ants", "bees"):
        (folder / name).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (8, 8), 30 * i).save(folder / name / f"{i}.png")
    with visit(browser, tmp_path, "links", (1400, 1000), server.log_path) as v:
        page, fetched = v.page, []
        v.context.on("request", lambda r: fetched.append(r.url) if (urlparse(r.url).hostname or "").endswith(EVIL) else None)
        v.step = "links with markdown and HTML in every key"
        q = quote(PAYLOAD)
        for path, shown in ((f"/distill?{q}=1&epochs={q}&dataset=imagefolder&data_dir=%2Fsrv%2F{q}",
                             "is not a setting and was ignored"),
                            (f"/compare?run={q}", "has no results on this server"),
                            (f"/live?job={q}", "is not in this server's run history"),
                            (f"/learn?run={q}", "There is no finished run")):
            page.goto(server + path)
            settled(page, shown)
            assert f"www.{EVIL}" in page.inner_text("body"), path  # the link's text is on the page...
            assert evil_in_page(page) == [], path  # ...as text: no link, no image
        assert fetched == []

        v.step = "a folder named in a link: shown, not read, Start off, until confirmed here"
        page.goto(server + f"/distill?dataset=imagefolder&data_dir={quote(str(folder))}")
        settled(page, "It is not read until you confirm it")
        assert "ants (4)" not in page.inner_text("body")
        assert button(page, "Start").is_disabled()
        button(page, "Read this folder").click()
        wait_for_text(page, "2 classes, 8 images: ants (4), bees (4).", 30)
        wait_until(lambda: button(page, "Start").is_enabled(), 30, "Start once the folder is confirmed")

        v.step = "the same folder from this computer, as a .zip: it becomes the image folder"
        page.goto(server + "/distill?dataset=imagefolder")
        settled(page, "Or upload a .zip of the class folders (at most 512 MB)")  # Streamlit's own line says 1GB
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for png in sorted(folder.rglob("*.png")):
                zf.write(png, f"pictures/{png.relative_to(folder)}")
        page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
            files=[{"name": "pictures.zip", "mimeType": "application/zip", "buffer": buf.getvalue()}])
        wait_for_text(page, "2 classes, 8 images: ants (4), bees (4).", 60)
        assert str(studio_home / "uploads" / "folders") in page.get_by_label("Image folder on this server").input_value()


def test_every_page_opens_on_a_home_that_cannot_be_written(browser, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("a home cannot be made inside a file, not even by root")
    srv = Server(blocker / "home", tmp_path / "streamlit.log")
    srv.start()
    try:
        with visit(browser, tmp_path, "home", (1400, 1000), srv.log_path) as v:
            page = v.page
            v.step = "every page says once that the home cannot be written"
            for path in ("/", "/distill", "/compare", "/runs", "/live", "/learn"):
                page.goto(srv + path)
                settled(page, "This server cannot write its home folder")
                assert page.get_by_text("This server cannot write its home folder").count() == 1, path
                assert str(blocker / "home") in page.inner_text("body")
            page.goto(srv + "/")
            settled(page, "This server cannot write its home folder")
            assert button(page, DEMO_BUTTON).is_disabled()
            page.goto(srv + "/distill")
            settled(page, "This server cannot write its home folder")
            assert button(page, "Start").is_disabled()
            assert "Start is disabled. The home folder cannot be written" in page.inner_text("body")
    finally:
        srv.stop()
