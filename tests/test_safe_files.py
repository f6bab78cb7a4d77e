"""The data dir's write primitives (embedded/safe_files.py): nothing planted at a name is followed."""

from __future__ import annotations

import os
import stat

import pytest

from stalk.embedded.events.history import connect as open_history
from stalk.embedded.safe_files import UnsafeDataDir
from stalk.embedded.secrets import load_or_create_password, write_private
from stalk.embedded.supervisor.logs import LogRing

VICTIM = "the victim's own content\n"


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim"
    path.write_text(VICTIM)
    path.chmod(0o644)
    return path


def test_write_private_replaces_a_planted_link_instead_of_writing_through_it(tmp_path, victim):
    (tmp_path / "state").mkdir()
    planted = tmp_path / "state" / "redis.conf"
    planted.symlink_to(victim)

    write_private(planted, "requirepass secret\n")

    assert victim.read_text() == VICTIM and stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not planted.is_symlink() and planted.read_text() == "requirepass secret\n"
    assert stat.S_IMODE(planted.stat().st_mode) == 0o600
    assert sorted(p.name for p in planted.parent.iterdir()) == ["redis.conf"]  # no temp file left


def test_a_log_never_appends_through_a_planted_link(tmp_path, victim):
    planted = tmp_path / "beat.log"
    planted.symlink_to(victim)

    with pytest.raises(OSError):
        LogRing("beat", 10, planted).append("a line with the broker's url")

    assert victim.read_text() == VICTIM


def test_a_log_never_appends_to_a_hard_link_of_another_file(tmp_path, victim):
    os.link(victim, tmp_path / "beat.log")

    with pytest.raises(OSError):
        LogRing("beat", 10, tmp_path / "beat.log").append("a line")

    assert victim.read_text() == VICTIM


def test_a_new_log_is_private(tmp_path):
    ring = LogRing("beat", 10, tmp_path / "beat.log")
    ring.append("x")
    ring.close()

    assert stat.S_IMODE((tmp_path / "beat.log").stat().st_mode) == 0o600


def test_the_password_is_never_read_or_chmodded_through_a_link(tmp_path, victim):
    planted = tmp_path / "broker.password"
    planted.symlink_to(victim)

    with pytest.raises(OSError):
        load_or_create_password(planted)

    assert stat.S_IMODE(victim.stat().st_mode) == 0o644 and victim.read_text() == VICTIM


def test_a_file_of_another_user_is_not_read(tmp_path):
    path = tmp_path / "broker.password"
    path.write_text("chosen-by-nobody\n")
    os.chown(path, 65534, 65534)

    with pytest.raises(UnsafeDataDir, match="belongs to user nobody"):
        load_or_create_password(path)


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm"])
def test_sqlite_files_are_checked_before_sqlite_opens_them(tmp_path, victim, suffix):
    (tmp_path / f"history.sqlite3{suffix}").symlink_to(victim)

    with pytest.raises(UnsafeDataDir, match="symbolic link"):
        open_history(tmp_path / "history.sqlite3").close()

    assert victim.read_text() == VICTIM


def test_a_db_a_command_creates_is_private_whatever_the_umask(tmp_path):
    """A command outside a stack (run now records a beat run) has the user's umask."""
    from stalk.embedded.control.beat_runs import BeatRuns

    old = os.umask(0o022)
    try:
        open_history(tmp_path / "history.sqlite3").close()
        BeatRuns(tmp_path / "beat-runs.sqlite3").sent("entry", "demo.add", "task-id")
    finally:
        os.umask(old)
    made = list(tmp_path.iterdir())
    assert {"history.sqlite3", "beat-runs.sqlite3"} <= {p.name for p in made} and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in made), made
