from __future__ import annotations

from dataclasses import dataclass

from accounts.models import CreditAccount, User


@dataclass(frozen=True)
class CreditSummary:
    balance: int
    reserved: int

    @property
    def available(self) -> int:
        return self.balance - self.reserved


def credit_summary(*, user: User) -> CreditSummary:
    row = CreditAccount.objects.filter(user_id=user.pk).values("balance", "reserved").first()
    return CreditSummary(**row) if row else CreditSummary(balance=0, reserved=0)
