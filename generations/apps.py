from django.apps import AppConfig


class GenerationsConfig(AppConfig):
    name = "generations"
    verbose_name = "Generations"

    def ready(self) -> None:
        from generations import leases, schedules  # noqa: F401

        leases.connect_sweep_watchdog()  # every qcluster worker restarts a dead sweep chain
        from veoproject import checks  # noqa: F401
