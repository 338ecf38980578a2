"""Portal URL for redeeming vouchers (included from accounts/urls.py)."""

from django.urls import path

from accounts import voucher_views

urlpatterns = [
    path("credits/redeem/", voucher_views.voucher_redeem, name="voucher-redeem"),
]
