from django.apps import AppConfig
from django.db.backends.signals import connection_created


class RunnerConfig(AppConfig):
    """./run's machinery: the runservice command and the processes it runs; and, in
    every process of the service, its SQLite database kept private."""

    name = "runner"

    def ready(self) -> None:
        from core.private_files import protect_sqlite_database

        connection_created.connect(
            protect_sqlite_database, dispatch_uid="private-sqlite-database"
        )
