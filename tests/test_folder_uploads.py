"""Image folders uploaded as a .zip: checked before anything is written, unpacked by content,
refused ones leave nothing, and the uploads folder keeps to its cap."""
import io
import os
import stat
import time
import zipfile
from types import SimpleNamespace

import pytest
from PIL import Image

import studio.uploads
from distill_core import RunConfig, paths
from distill_core.runs import teacher_cache
from studio import folder_uploads
from studio.folder_uploads import ZipRefused, check, unpack
from test_app_pages import engine, navigation_mode, page, start_button  # noqa: F401 - fixtures and helpers


def png(color=0) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8), color).save(buf, format="PNG")
    return buf.getvalue()


def archive(entries: dict, top: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(top + name, date_time=(2026, 1, 2, 3, 4, 6)), data)
    return buf.getvalue()


def classes_zip(top: str = "flowers/", per_class: int = 4) -> bytes:
    data = archive({f"{c}/{i}.png": png(10 * i) for c in ("daisy", "rose") for i in range(per_class)}
                   | {"README.txt": b"not an image"}, top)
    with zipfile.ZipFile(buf := io.BytesIO(data), "a") as zf:  # as macOS's Compress adds beside the folder
        zf.writestr(zipfile.ZipInfo(f"__MACOSX/{top}daisy/._0.png", date_time=(2026, 1, 2, 3, 4, 6)), b"fork")
    return buf.getvalue()


def uploads_left() -> list[str]:
    root = paths.uploads_dir()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_a_zip_of_class_folders_unpacks_its_images_keyed_by_content(studio_home):
    data = classes_zip()
    folder = unpack(data)
    assert folder.parent.parent == paths.uploads_dir() / "folders" and folder.name == "flowers"
    assert sorted(p.name for p in folder.iterdir()) == ["daisy", "rose"]
    assert not (folder / "README.txt").exists() and not (folder.parent / "__MACOSX").exists()  # images only
    assert sorted(p.name for p in (folder / "daisy").iterdir()) == [f"{i}.png" for i in range(4)]
    assert unpack(data) == folder  # the same archive: the same folder, not a second copy
    assert len(list((paths.uploads_dir() / "folders").iterdir())) == 1


def test_the_teacher_cache_knows_an_unpacked_folder_again(studio_home):
    import shutil

    data = classes_zip()
    config = RunConfig(dataset="imagefolder", data_dir=str(unpack(data)))
    key = teacher_cache.cached_path(config)
    shutil.rmtree(paths.uploads_dir() / "folders")  # removed by the cap, and uploaded again later
    assert RunConfig(dataset="imagefolder", data_dir=str(unpack(data))) == config
    assert teacher_cache.cached_path(config) == key  # same path, names, sizes and times: the same teacher


def link_entry(name: str, target: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo(name)
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, target)
        zf.writestr("b/0.png", png())
    return buf.getvalue()


def bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/0.png", png())
        zf.writestr("b/huge.png", b"\0" * (64 * 2**20))  # 64 MB of zeros pack into about 64 kB
    return buf.getvalue()


@pytest.mark.parametrize("data,said", [
    (b"PK\x03\x04 not really a zip", "not a readable .zip archive"),
    (archive({"../../etc/cron.d/x.png": png(), "b/0.png": png()}), "would be written outside the folder"),
    (archive({"/abs/a/0.png": png(), "b/0.png": png()}), "would be written outside the folder"),
    (archive({"a\\..\\..\\x.png": png()}), "would be written outside the folder"),
    (link_entry("a/0.png", "/etc/passwd"), "is a link"),
    (bomb(), "a zip bomb"),
    (archive({"a/0.png": png(), "A/0.PNG": png()}), "in the archive twice"),
    (archive({"notes.txt": b"x"}), "holds no images"),
])
def test_unsafe_archives_are_refused_before_anything_is_written(studio_home, data, said):
    with pytest.raises(ZipRefused, match=said):
        unpack(data)
    assert uploads_left() in ([], ["folders"])


def test_limits_on_size_entries_and_unpacked_bytes(studio_home, monkeypatch):
    data = classes_zip()
    monkeypatch.setattr(folder_uploads, "MAX_ZIP_BYTES", len(data) - 1)
    with pytest.raises(ZipRefused, match="at most"):
        check(data)
    monkeypatch.setattr(folder_uploads, "MAX_ZIP_BYTES", 2**30)
    monkeypatch.setattr(folder_uploads, "MAX_ENTRIES", 5)
    with pytest.raises(ZipRefused, match="holds 10 entries; at most 5"):
        check(data)
    monkeypatch.setattr(folder_uploads, "MAX_ENTRIES", 100)
    monkeypatch.setattr(folder_uploads, "MAX_UNPACKED", 100)
    with pytest.raises(ZipRefused, match="unpack to"):
        check(data)


def test_an_archive_that_holds_more_than_it_declares_is_stopped_and_removed(studio_home, monkeypatch):
    data = classes_zip()
    archive_, images = check(data)
    images[-1][0].file_size = 10  # a header that lies: the data is longer (the last entry: after others were written)
    monkeypatch.setattr(folder_uploads, "check", lambda _: (archive_, images))
    with pytest.raises(ZipRefused, match="could not be unpacked: Bad CRC-32"):
        unpack(data)
    assert uploads_left() in ([], ["folders"])  # what was written before it went with it


def test_the_cap_removes_the_uploads_used_least_recently_never_one_in_use(studio_home):
    old, mid, new = (unpack(classes_zip(top=f"{n}/")) for n in ("old", "mid", "new"))
    checkpoint = paths.uploads_dir() / "0123-teacher.pt"
    checkpoint.write_bytes(b"x" * 100)
    for i, path in enumerate((old.parent, checkpoint, mid.parent, new.parent)):
        os.utime(path, (time.time() - 1000 + i, time.time() - 1000 + i))
    size = folder_uploads._size(new.parent)
    assert size > 200
    removed = folder_uploads.prune(in_use=[str(old / "daisy")], cap=2 * size + 50)
    assert removed == [checkpoint, mid.parent]  # the oldest, "old", is in use: the next oldest go, until under the cap
    assert old.exists() and new.exists()


# ---- on the Distill page ------------------------------------------------------------------------
class Session(dict):
    """st.session_state outside a script run: items and attributes alike."""
    __getattr__ = dict.get

    def __setattr__(self, key, value):
        self[key] = value


def upload(monkeypatch, kind: str, name: str, data: bytes) -> Session:
    """Run the uploader's callback as Streamlit would, with the file in its session state."""
    ss = Session()
    with monkeypatch.context() as patch:
        patch.setattr(studio.uploads, "st", SimpleNamespace(session_state=ss))
        patch.setattr(studio.uploads, "in_use", lambda *more: list(more))
        ss[studio.uploads.uploader_key(kind)] = SimpleNamespace(name=name, getvalue=lambda: data)
        (studio.uploads.take_zip if kind == "zip" else studio.uploads.take_teacher)()
    return ss


def test_the_distill_page_takes_a_zip_as_an_image_folder(engine, monkeypatch):
    ss = upload(monkeypatch, "zip", "flowers.zip", classes_zip())
    folder = ss["cfg_data_dir"]
    assert ss["zip_note"][0] == "success" and folder.endswith("/flowers")
    at = page("pages/distill.py", dataset="imagefolder")
    at.text_input(key="cfg_data_dir").input(folder).run()  # what the uploader's callback sets
    assert any("2 classes, 8 images: daisy (4), rose (4)." in c.value for c in at.caption)
    assert not start_button(at).disabled


def test_a_refused_zip_or_checkpoint_is_said_and_deleted_at_once(engine, monkeypatch, studio_home):
    ss = upload(monkeypatch, "zip", "evil [x](http://evil.example).zip",
                archive({"../../x.png": png(), "b/0.png": png()}))
    kind, said = ss["zip_note"]
    assert kind == "error" and "was refused" in said and "would be written outside the folder" in said
    assert "`evil [x](http://evil.example).zip`" in said  # its name shown as text
    assert ss["zip_round"] == 1 and "cfg_data_dir" not in ss  # a fresh uploader: Streamlit drops the file too
    ss = upload(monkeypatch, "teacher", "model.pt", b"#!/bin/sh\nnot a checkpoint")
    assert ss["teacher_note"][0] == "error" and "`model.pt` is not a PyTorch file" in ss["teacher_note"][1]
    assert ss.get("uploaded_path") is None and uploads_left() in ([], ["folders"])
