from django.apps import AppConfig


class GenerationsConfig(AppConfig):
    name = "generations"
    verbose_name = "Generations"

    def ready(self) -> None:
        from generations import schedules  # noqa: F401
        from veoproject import checks  # noqa: F401
