from django.apps import AppConfig


class HandoverConfig(AppConfig):
    name = "handover"
    verbose_name = "Handover"

    def ready(self) -> None:
        # The project and team pages show handover sections; importing the views registers them
        # (config.web.register_section), since projects and operations never import handover.
        from . import views  # noqa: F401
