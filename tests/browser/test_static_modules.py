"""The dashboard's ES modules under the hashed static files storage (no browser).

test_dashboard.py loads them through collectstatic and daphne; this shows why a
browser can never run an old module beside a new one.
"""

import shutil
from pathlib import Path

from django.core.files.storage import FileSystemStorage

from core.staticfiles import JSModuleManifestStorage
from tests.support import processes

STATIC = processes.ROOT / "metrics" / "static"
MODULES = "metrics/dashboard"


def collect(source: Path, target: Path) -> dict[str, str]:
    """Hash the dashboard's modules from `source` into `target` as collectstatic does.

    Returns the manifest: source name -> hashed name.
    """
    origin = FileSystemStorage(location=source)
    storage = JSModuleManifestStorage(location=target, base_url="/static/")
    found = {}
    for name in origin.listdir(MODULES)[1]:
        path = f"{MODULES}/{name}"
        with origin.open(path) as content:
            storage.save(path, content)
        found[path] = (origin, path)
    errors = [
        result
        for _, _, result in storage.post_process(found)
        if isinstance(result, Exception)
    ]
    assert errors == []
    return dict(storage.hashed_files)


def test_imports_name_the_hashed_files(tmp_path):
    manifest = collect(STATIC, tmp_path)
    main = (tmp_path / manifest[f"{MODULES}/main.js"]).read_text()
    for name in ("auth", "charts", "snapshots", "socket", "view"):
        hashed = Path(manifest[f"{MODULES}/{name}.js"]).name
        assert f'from "./{hashed}";' in main


def test_a_changed_module_renames_every_module_that_loads_it(tmp_path):
    before = collect(STATIC, tmp_path / "before")
    source = tmp_path / "source"
    shutil.copytree(STATIC / MODULES, source / MODULES)
    formatting = source / MODULES / "formatting.js"
    formatting.write_text(formatting.read_text() + "// a new version\n")
    after = collect(source, tmp_path / "after")
    renamed = {Path(name).stem for name in before if before[name] != after[name]}
    # formatting.js is loaded by view.js and charts.js, and they by main.js; and by
    # cards.js, and it by overview.js: each page names a new entry module, which
    # loads the new modules down to formatting. The modules that do not load
    # formatting.js keep their names (and cache).
    assert renamed == {"formatting", "view", "charts", "main", "cards", "overview"}
