from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and credits"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from accounts import groups, signals  # noqa: F401

        post_migrate.connect(
            groups.ensure_permissions_and_groups,
            sender=self,
            dispatch_uid="accounts.groups.ensure_permissions_and_groups",
        )
