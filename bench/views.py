"""The stack's ceiling: Bearer token auth, DRF, one INSERT, a JSON answer."""

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.models import BenchRow


class InsertOneRowView(APIView):
    """POST inserts one row; same authentication and permission classes as the API."""

    def post(self, request: Request) -> Response:
        row = BenchRow.objects.create(owner=request.user)
        return Response({"id": row.pk}, status=status.HTTP_201_CREATED)
