"""The static files storage: WhiteNoise's hashed, compressed files, ES modules too;
and the start-up check that they were collected."""

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import ManifestFilesMixin, staticfiles_storage
from django.core.exceptions import ImproperlyConfigured
from whitenoise.storage import CompressedManifestStaticFilesStorage

# What collectstatic leaves out by default.
IGNORED = ["CVS", ".*", "*~"]
COLLECT = "python manage.py collectstatic --noinput"


class JSModuleManifestStorage(CompressedManifestStaticFilesStorage):
    """Hashed, compressed static files whose JavaScript imports name hashed files too.

    The dashboard is ES modules served without a bundler. collectstatic names each
    file by its content hash and WhiteNoise serves those names with far-future
    caching. With this flag Django also rewrites each relative
    `import ... from "./x.js";` to the hashed name, before hashing the importing
    file, so a module's name covers every module it loads: a page always gets one
    consistent set, never an old module cached beside a new one.
    """

    support_js_module_import_aggregation = True


def check_collected() -> None:
    """Raise ImproperlyConfigured unless every static file is collected as the
    manifest says.

    A page that names a file the manifest lacks is a 500 (ValueError: Missing
    staticfiles manifest entry), so a web process whose files were not collected,
    or were collected by an older release, refuses to start instead.
    """
    if not isinstance(staticfiles_storage, ManifestFilesMixin):
        return  # a storage without a manifest serves any name
    root = settings.STATIC_ROOT
    try:
        manifest = staticfiles_storage.load_manifest()[0]
    except ValueError as error:
        raise ImproperlyConfigured(
            f"The static files manifest in STATIC_ROOT ({root}) cannot be read "
            f"({error}): run `{COLLECT}` again."
        ) from None
    if not manifest:
        raise ImproperlyConfigured(
            f"The static files are not collected in STATIC_ROOT ({root}): run "
            f"`{COLLECT}` before starting the web server (./run does it for you)."
        )
    wanted = sorted(
        path.replace("\\", "/")
        for finder in finders.get_finders()
        for path, _ in finder.list(IGNORED)
    )
    missing = [
        name
        for name in wanted
        if name not in manifest or not staticfiles_storage.exists(manifest[name])
    ]
    if missing:
        raise ImproperlyConfigured(
            f"The static files in STATIC_ROOT ({root}) are not up to date: "
            f"{len(missing)} missing, such as {missing[0]}. Run `{COLLECT}` again."
        )
