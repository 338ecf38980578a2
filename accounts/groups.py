"""The `Moderators` group and the custom permissions staff actions are checked against.

Kept in sync after every `migrate` (a post_migrate handler wired in AccountsConfig.ready),
so a fresh database has the group and an existing one picks up new permissions.

Moderators may review and moderate generations (hide, unhide, flag, cancel, re-check with
fal), maintain blocked terms, see users and suspend or reactivate them. They may not
change credits (no corrections, refunds, vouchers, ledger) nor pricing; superusers may do
everything.
"""

from __future__ import annotations

from django.apps import AppConfig, apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.management import create_contenttypes
from django.contrib.contenttypes.models import ContentType
from django.db import DEFAULT_DB_ALIAS

MODERATORS = "Moderators"

# (app_label, model, codename, name): permissions no model Meta declares.
CUSTOM_PERMISSIONS = [
    ("generations", "generation", "moderate_generation", "Can moderate generations"),
    ("generations", "generation", "refund_generation", "Can refund generations"),
    ("accounts", "user", "suspend_user", "Can suspend and reactivate users"),
    ("accounts", "creditaccount", "correct_credits", "Can grant or deduct credits"),
]

MODERATOR_PERMISSIONS = [
    "generations.view_generation",
    "generations.moderate_generation",
    "generations.view_blockedterm",
    "generations.add_blockedterm",
    "generations.change_blockedterm",
    "generations.delete_blockedterm",
    "accounts.view_user",
    "accounts.suspend_user",
]


def _permission(dotted: str, using: str) -> Permission:
    app_label, codename = dotted.split(".")
    return Permission.objects.using(using).get(content_type__app_label=app_label, codename=codename)


def ensure_permissions_and_groups(*, using: str = DEFAULT_DB_ALIAS, **kwargs) -> None:
    """Create the custom permissions and the Moderators group with exactly its
    permissions (idempotent; the post_migrate receiver)."""
    for label in ("accounts", "generations"):
        config: AppConfig = apps.get_app_config(label)
        create_contenttypes(config, verbosity=0, using=using)
        create_permissions(config, verbosity=0, using=using)
    for app_label, model, codename, name in CUSTOM_PERMISSIONS:
        content_type = ContentType.objects.db_manager(using).get_by_natural_key(app_label, model)
        Permission.objects.using(using).update_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
    group, _ = Group.objects.using(using).get_or_create(name=MODERATORS)
    group.permissions.set([_permission(dotted, using) for dotted in MODERATOR_PERMISSIONS])
