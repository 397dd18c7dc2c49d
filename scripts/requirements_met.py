"""Exit 0 if every requirement pinned in the given files is installed at its version.

Run by scripts/bootstrap.sh with the virtualenv's Python, before it would call pip:
a virtualenv that already holds the pinned set is left alone. Standard library only
(nothing else may be installed yet). A line that is not `name==version` (or `-r
file`) cannot be checked, so it counts as not met.
"""

import importlib.metadata
import sys
from pathlib import Path


def pins(path: Path) -> list[tuple[str, str | None]]:
    """The (name, version) pins of a requirements file and the files it includes."""
    found: list[tuple[str, str | None]] = []
    for raw in path.read_text().splitlines():
        line = raw.partition("#")[0].strip()
        if not line:
            continue
        if line.startswith("-r"):
            found += pins(path.parent / line[2:].strip())
            continue
        name, pinned, version = line.partition("==")
        found.append((name.strip(), version.strip() if pinned else None))
    return found


def unmet(path: Path) -> list[str]:
    """The requirements of a file that are not installed as pinned."""
    missing = []
    for name, version in pins(path):
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if version is None or installed != version:
            missing.append(f"{name}=={version}" if version else name)
    return missing


if __name__ == "__main__":
    sys.exit(1 if any(unmet(Path(name)) for name in sys.argv[1:]) else 0)
