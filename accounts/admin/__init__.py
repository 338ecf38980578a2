"""Admin for users, credits, API tokens, vouchers and the audit trail.

Declarative: balances, ledger entries, tokens and the audit trail are read-only for
everybody (superusers included); every change goes through a service (`accounts.staff`,
`accounts.vouchers`, `accounts.ledger`) from an action or a form that asks for a reason.
Importing the modules registers their admins.
"""

from __future__ import annotations

from accounts.admin import credits, log_entries, payments, tokens, users, vouchers

__all__ = ["credits", "log_entries", "payments", "tokens", "users", "vouchers"]
