from allauth.account import views as allauth_views
from django.urls import include, path

from accounts import views
from accounts.payments import views as payment_views

urlpatterns = [
    # Signup, login, logout and passwords are allauth's, at /accounts/ (veoproject/urls.py).
    # The names the portal used before stay: they reverse to allauth's pages (these
    # patterns sit behind allauth's own, so they only name them) ...
    path("accounts/signup/", allauth_views.signup, name="signup"),
    path("accounts/login/", allauth_views.login, name="login"),
    path("accounts/logout/", allauth_views.logout, name="logout"),
    path("accounts/password/change/", allauth_views.password_change, name="password_change"),
    path("accounts/password/reset/", allauth_views.password_reset, name="password_reset"),
    # ... and the old addresses redirect there.
    path("signup/", views.legacy_redirect("account_signup")),
    path("login/", views.legacy_redirect("account_login")),
    path("logout/", views.legacy_redirect("account_logout")),
    path("account/password/", views.legacy_redirect("account_change_password")),
    path("password-reset/", views.legacy_redirect("account_reset_password")),
    path("account/", views.account_settings, name="account-settings"),
    path("credits/", views.credits, name="credits"),
    path("credits/export.csv", views.ledger_csv, name="ledger-csv"),
    path("credits/buy/", payment_views.purchase_start, name="purchase-start"),
    path(
        "credits/purchases/<int:pk>/thanks/",
        payment_views.purchase_success,
        name="purchase-success",
    ),
    path(
        "credits/purchases/<int:pk>/canceled/",
        payment_views.purchase_cancel,
        name="purchase-cancel",
    ),
    # Voucher redemption page (owned by accounts.voucher_views).
    path("", include("accounts.voucher_urls")),
    path("tokens/", views.token_list, name="tokens"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path(
        "tokens/webhook-secret/rotate/",
        views.webhook_secret_rotate,
        name="webhook-secret-rotate",
    ),
]
