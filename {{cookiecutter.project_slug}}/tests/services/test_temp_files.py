"""The temp-file cleanup deletes only what is old, never follows links out, and cannot be
raced out of its folder."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.services.temp_files import cleanup_temp_files

DAY = 86400


def make_file(path: Path, size: int, age_seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    moment = time.time() - age_seconds
    os.utime(path, (moment, moment))
    return path


def test_removes_old_files_and_keeps_new_ones(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    old = make_file(temp / "old.bin", 100, 2 * DAY)
    nested_old = make_file(temp / "nested" / "deep" / "old.txt", 50, 2 * DAY)
    new = make_file(temp / "new.bin", 10, 60)
    result = cleanup_temp_files(temp, max_age=timedelta(days=1))
    assert not old.exists()
    assert not nested_old.exists()
    assert new.exists()
    assert (result.files_removed, result.bytes_freed, result.errors) == (2, 150, [])


def test_empty_folders_left_behind_are_removed_once_old(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    make_file(temp / "stale" / "a.txt", 1, 2 * DAY)
    os.utime(temp / "stale", (time.time() - 2 * DAY,) * 2)
    cleanup_temp_files(temp, max_age=timedelta(days=1))
    # Removing a.txt touches the folder; the next run, a day later, removes it.
    assert (temp / "stale").exists()
    os.utime(temp / "stale", (time.time() - 2 * DAY,) * 2)
    cleanup_temp_files(temp, max_age=timedelta(days=1))
    assert not (temp / "stale").exists()
    assert temp.exists()


def test_links_are_removed_but_never_followed(tmp_path: Path) -> None:
    outside = make_file(tmp_path / "precious" / "keep.txt", 5, 3 * DAY)
    temp = tmp_path / "tmp"
    temp.mkdir()
    (temp / "link-to-file").symlink_to(outside)
    (temp / "link-to-dir").symlink_to(outside.parent, target_is_directory=True)
    for link in ("link-to-file", "link-to-dir"):
        os.utime(temp / link, (time.time() - 2 * DAY,) * 2, follow_symlinks=False)
    result = cleanup_temp_files(temp, max_age=timedelta(days=1))
    assert outside.exists()
    assert not (temp / "link-to-file").is_symlink()
    assert not (temp / "link-to-dir").is_symlink()
    assert result.files_removed == 2


def test_missing_directory_is_reported_not_created(tmp_path: Path) -> None:
    result = cleanup_temp_files(tmp_path / "absent", max_age=timedelta(hours=1))
    assert result.files_removed == 0
    assert not (tmp_path / "absent").exists()


def test_a_folder_swapped_for_a_link_mid_walk_leads_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    inside = make_file(temp / "sub" / "old.txt", 5, 2 * DAY)
    outside = make_file(tmp_path / "precious" / "old.txt", 5, 2 * DAY)
    real_stat = os.stat
    swapped = False

    def stat_then_swap(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        # Between listing sub/ and removing sub/old.txt, sub becomes a link to precious/.
        nonlocal swapped
        if not swapped and isinstance(path, str | Path) and str(path).endswith("old.txt"):
            swapped = True
            (temp / "sub").rename(temp / "moved")
            (temp / "sub").symlink_to(outside.parent, target_is_directory=True)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat_then_swap)
    cleanup_temp_files(temp, max_age=timedelta(days=1))
    assert swapped
    assert outside.exists()
    # The file that was in the folder the walk held open is the one removed.
    assert not (temp / "moved" / inside.name).exists()
