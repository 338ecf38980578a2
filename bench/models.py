"""One table for the ceiling view: the smallest write an authenticated API call can do."""

from django.conf import settings
from django.db import models


class BenchRow(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"row {self.pk}"
