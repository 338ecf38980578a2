"""/api/v1/vouchers/ (included from accounts/api_urls.py)."""

from django.urls import path

from accounts import voucher_api

urlpatterns = [
    path("redeem/", voucher_api.VoucherRedeemView.as_view(), name="api-voucher-redeem"),
]
