"""The files the service keeps are its owner's alone.

The SQLite database holds password hashes, session keys and the token blacklist; the
secret key signs every token; the embedded Redis's directory holds its socket and
log. Whichever command creates them (./run, `manage.py migrate`, any process that
opens the database first), they get no permissions for group or others, and one
found with looser permissions at start is tightened, with a log line. SQLite gives
its journals (-journal, -wal, -shm) the database file's permissions.
"""

import logging
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

# Permissions for anyone but the owner.
OTHERS = stat.S_IRWXG | stat.S_IRWXO
JOURNAL_SUFFIXES = ("-journal", "-wal", "-shm")


def write_private(path: Path, text: str) -> None:
    """Write a file that only its owner may read (made so before anything is in it)."""
    path.touch(mode=0o600, exist_ok=True)
    make_private(path)
    path.write_text(text)


def make_private(path: Path) -> bool:
    """Take group and other permissions off an existing file or directory; log it
    unless the file was just created (empty). Return whether anything changed."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return False
    mode = stat.S_IMODE(status.st_mode)
    if not mode & OTHERS:
        return False
    path.chmod(mode & ~OTHERS)
    if status.st_size or stat.S_ISDIR(status.st_mode):
        logger.warning(
            "Tightened %s from mode %03o to %03o: only its owner may read it",
            path,
            mode,
            mode & ~OTHERS,
        )
    return True


def sqlite_files(name: object) -> list[Path]:
    """The files of a SQLite database named `name`, none for an in-memory one."""
    name = str(name)
    if not name or name == ":memory:" or "mode=memory" in name:
        return []
    database = Path(name.removeprefix("file:").partition("?")[0])
    return [
        database,
        *(database.with_name(database.name + s) for s in JOURNAL_SUFFIXES),
    ]


def protect_sqlite_database(sender, connection, **kwargs) -> None:
    """connection_created: a SQLite database and its journals, owner-only, before
    anything is written to a new one."""
    if connection.vendor != "sqlite":
        return
    for path in sqlite_files(connection.settings_dict["NAME"]):
        make_private(path)
