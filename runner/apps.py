from django.apps import AppConfig


class RunnerConfig(AppConfig):
    """./run's machinery: the runservice command and the processes it runs."""

    name = "runner"
