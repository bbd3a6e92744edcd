"""Listing an image folder within bounds: files, depth, time, kernel file systems, links, errors."""
import os
import shutil

import pytest

from distill_core.data import folder_scan
from distill_core.data.folder_scan import scan_folder
from distill_core.errors import DataUnavailableError


def images(root, classes=("cats", "dogs"), per_class=3):
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / name / f"{i}.png").write_bytes(b"not decoded here")


def test_classes_empty_folders_and_nested_images(tmp_path):
    images(tmp_path)
    (tmp_path / "dogs" / "puppies").mkdir()
    (tmp_path / "dogs" / "puppies" / "p.jpg").write_bytes(b"x")
    (tmp_path / "birds").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "notes.txt").write_text("a file beside the classes")
    scan = scan_folder(tmp_path)
    assert {k: len(v) for k, v in scan.classes.items()} == {"cats": 3, "dogs": 4}
    assert scan.empty == ["birds"] and scan.left_out == []
    assert scan.classes["dogs"] == sorted(scan.classes["dogs"])  # the teacher cache's key depends on the order


def test_a_folder_too_large_or_too_slow_is_refused_naming_the_bound(tmp_path):
    images(tmp_path, per_class=30)
    with pytest.raises(DataUnavailableError, match="holds more than 50 files and folders"):
        scan_folder(tmp_path, max_files=50)
    images(tmp_path / "more", classes=[f"c{i}" for i in range(20)], per_class=30)  # the clock is read every 500
    with pytest.raises(DataUnavailableError, match="took more than 0 s to list"):
        scan_folder(tmp_path / "more", max_seconds=0)


def test_folders_too_deep_are_left_out_and_said(tmp_path):
    images(tmp_path)
    deep = tmp_path / "cats" / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "x.png").write_bytes(b"x")
    scan = scan_folder(tmp_path, max_depth=2)
    assert len(scan.classes["cats"]) == 3
    assert scan.left_out == [(str(tmp_path / "cats" / "a" / "b"), "more than 2 folders deep in its class")]


def test_kernel_file_systems_are_never_entered(tmp_path):
    for special in ("/proc", "/sys/class", "/dev"):
        if os.path.isdir(special):
            with pytest.raises(DataUnavailableError, match="kernel file system"):
                scan_folder(special)
    images(tmp_path)
    (tmp_path / "proc").symlink_to("/proc")  # a class folder that is a link to the kernel's
    scan = scan_folder(tmp_path)
    assert "proc" not in scan.classes and (str(tmp_path / "proc"), "a link out of the image folder") in scan.left_out


def test_links_out_of_the_folder_are_left_out_links_inside_followed_loops_ended(tmp_path):
    outside = tmp_path / "outside"
    images(outside, classes=("secret",))
    root = tmp_path / "root"
    images(root)
    (root / "stolen").symlink_to(outside / "secret")  # a class folder out of the root
    (root / "cats" / "passwd.png").symlink_to("/etc/passwd")  # a file out of the root
    (root / "cats" / "again.png").symlink_to(root / "dogs" / "0.png")  # inside: followed
    (root / "dogs" / "loop").symlink_to(root / "dogs")  # a loop: listed once
    scan = scan_folder(root)
    assert set(scan.classes) == {"cats", "dogs"}
    assert [p.name for p in scan.classes["cats"]] == ["0.png", "1.png", "2.png", "again.png"]
    assert len(scan.classes["dogs"]) == 3
    left = dict(scan.left_out)
    assert left[str(root / "stolen")] == left[str(root / "cats" / "passwd.png")] == "a link out of the image folder"


def test_a_folder_that_vanishes_mid_walk_is_a_note_naming_it(tmp_path, monkeypatch):
    images(tmp_path, classes=("cats", "dogs", "eels"))
    real = os.scandir

    class Listed(list):  # os.scandir's context manager, over entries read before the folder goes
        def __enter__(self):
            return self

        def __exit__(self, *_):
            return False

    def vanishing(path):  # the root is listed, then "dogs" goes, as a /proc entry did
        with real(path) as it:
            entries = Listed(it)
        if str(path) == str(tmp_path):
            shutil.rmtree(tmp_path / "dogs")
        return entries

    monkeypatch.setattr(folder_scan.os, "scandir", vanishing)
    scan = scan_folder(tmp_path)
    assert set(scan.classes) == {"cats", "eels"}
    assert any(path == str(tmp_path / "dogs") for path, _ in scan.left_out), scan.left_out


def test_an_unreadable_root_and_a_name_too_long_are_one_message(tmp_path):
    with pytest.raises(DataUnavailableError, match="does not exist or is not a folder|cannot be read"):
        scan_folder("/" + "x" * 20_000)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataUnavailableError, match="does not exist or is not a folder"):
        scan_folder(tmp_path / "file")
