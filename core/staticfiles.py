"""The static files storage: WhiteNoise's hashed, compressed files, ES modules too."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


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
