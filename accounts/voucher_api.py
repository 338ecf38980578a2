"""POST /api/v1/vouchers/redeem/: redeem a credit voucher (accounts.vouchers.redeem)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import vouchers
from accounts.serializers import LedgerEntrySerializer
from veoproject.api_errors import error_responses
from veoproject.request_types import AuthenticatedRequest
from veoproject.throttles import VoucherRedeemThrottle


class VoucherRedeemSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=64, trim_whitespace=True)


class VoucherRedemptionSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="The code, as it is written on vouchers.")
    credits = serializers.IntegerField(help_text="Credits the voucher added.")
    entry = LedgerEntrySerializer(help_text="The ledger entry of the grant.")
    balance = serializers.IntegerField()
    reserved = serializers.IntegerField()
    available = serializers.IntegerField()


class VoucherRedeemView(APIView):
    throttle_classes = [VoucherRedeemThrottle]

    @extend_schema(
        tags=["account"],
        summary="Redeem a credit voucher",
        description="Adds the voucher's credits to your account, once per user. Codes are "
        "case-insensitive; spaces and dashes are ignored. Attempts are rate-limited.",
        request=VoucherRedeemSerializer,
        responses={200: VoucherRedemptionSerializer, **error_responses(400, 401, 409, 429)},
        examples=[
            OpenApiExample("request", value={"code": "7KQP-M2XD-HV9R"}, request_only=True),
        ],
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        serializer = VoucherRedeemSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        redemption = vouchers.redeem(user=request.user, code=serializer.validated_data["code"])
        return Response(
            VoucherRedemptionSerializer(
                {
                    "code": vouchers.format_code(redemption.voucher.code),
                    "credits": redemption.entry.amount,
                    "entry": redemption.entry,
                    "balance": redemption.credits.balance,
                    "reserved": redemption.credits.reserved,
                    "available": redemption.credits.available,
                }
            ).data
        )
