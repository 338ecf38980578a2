"""Admin actions that ask for a reason before they act (suspend, hide, refund...).

An action built with `reason_action` first renders an intermediate page listing the
selected objects with a required "reason" field; the page posts back to the changelist
with the same action and selection plus ``apply``, and only then the service runs, once
per object. `ObjectActionsMixin` adds ``<pk>/confirm/<action>/`` so a button on an
object's page can open the same intermediate page for that one object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from veoproject.audit import REASON_MAX_LENGTH
from veoproject.exceptions import ApplicationError
from veoproject.request_types import signed_in_user

if TYPE_CHECKING:
    from accounts.models import User

APPLY = "apply"
FROM_OBJECT = "_from_object"

_M = TypeVar("_M", bound=Model)


def required_reason(value: str) -> str:
    """A reason typed into an admin form, stripped; a form error when there is none (the
    form's counterpart of `audit.require_reason`)."""
    reason = (value or "").strip()
    if not reason:
        raise forms.ValidationError("A reason is required.")
    return reason


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Recorded in the audit trail with your name.",
    )

    def clean_reason(self) -> str:
        return required_reason(self.cleaned_data["reason"])


def reason_action(
    *,
    description: str,
    permissions: list[str],
    perform: Callable[[_M, User, str], bool],
    confirm: str = "",
) -> Callable[[admin.ModelAdmin[_M], HttpRequest, QuerySet[_M]], HttpResponse | None]:
    """An admin action asking for a reason; `perform(obj, actor, reason)` returns True if
    it changed something, False if there was nothing to do (an ApplicationError is shown
    and the other objects still go ahead)."""

    def action(
        modeladmin: admin.ModelAdmin[_M], request: HttpRequest, queryset: QuerySet[_M]
    ) -> HttpResponse | None:
        form = ReasonForm(request.POST if APPLY in request.POST else None)
        if APPLY in request.POST and form.is_valid():
            reason = form.cleaned_data["reason"]
            actor = signed_in_user(request)
            done, unchanged = 0, 0
            for obj in queryset:
                try:
                    if perform(obj, actor, reason):
                        done += 1
                    else:
                        unchanged += 1
                except ApplicationError as exc:
                    modeladmin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
            if done:
                modeladmin.message_user(
                    request, f"{description}: done for {done}.", messages.SUCCESS
                )
            if unchanged:
                modeladmin.message_user(
                    request,
                    f"{description}: nothing to do for {unchanged} (already in that state).",
                    messages.WARNING,
                )
            if request.POST.get(FROM_OBJECT) and len(queryset) == 1:
                obj = queryset[0]
                opts = modeladmin.model._meta
                return HttpResponseRedirect(
                    reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
                )
            return None
        return render_reason_page(
            modeladmin,
            request,
            queryset,
            action_name=action.__name__,
            description=description,
            confirm=confirm,
            form=form,
        )

    action.__name__ = perform.__name__
    action.__dict__["confirm"] = confirm  # read back by ObjectActionsMixin
    return admin.action(description=description, permissions=permissions)(action)


def render_reason_page(
    modeladmin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet,
    *,
    action_name: str,
    description: str,
    confirm: str,
    form: ReasonForm,
    from_object: bool = False,
) -> TemplateResponse:
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": description,
        "opts": opts,
        "app_label": opts.app_label,
        "objects": list(queryset),
        "form": form,
        "action_name": action_name,
        "confirm": confirm,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "changelist_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
        "from_object": from_object or bool(request.POST.get(FROM_OBJECT)),
    }
    return TemplateResponse(request, "admin/action_reason.html", context)


if TYPE_CHECKING:
    _AdminBase = admin.ModelAdmin
else:
    # For mypy the mixin is the ModelAdmin it is mixed into; at run time a plain generic
    # class (ModelAdmin itself cannot be subscripted without django-stubs-ext).
    class _AdminBase(Generic[_M]):
        pass


class ObjectActionsMixin(_AdminBase[_M]):
    """`<pk>/confirm/<action>/`: the intermediate page of a reason action for one object,
    opened from a button on the object's page. The page posts to the changelist, where
    the action's own permission check runs again."""

    object_actions: tuple[str, ...] = ()
    change_form_template = "admin/object_actions_change_form.html"  # shows the buttons

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        return [
            path(
                "<path:object_id>/confirm/<str:action_name>/",
                self.admin_site.admin_view(self.object_action_view),
                name=f"{opts.app_label}_{opts.model_name}_object_action",
            ),
            *super().get_urls(),
        ]

    def object_action_view(
        self, request: HttpRequest, object_id: str, action_name: str
    ) -> HttpResponse:
        entry = self.get_actions(request).get(action_name)
        if entry is None or action_name not in self.object_actions:
            raise PermissionDenied
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404
        func, _name, description = entry
        return render_reason_page(
            self,
            request,
            self.get_queryset(request).filter(pk=obj.pk),
            action_name=action_name,
            description=str(description),
            confirm=getattr(func, "confirm", ""),
            form=ReasonForm(),
            from_object=True,
        )

    def object_action_applies(self, obj: _M, action_name: str) -> bool:
        """Whether the button for `action_name` makes sense for `obj` in its state."""
        return True

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """Offers this object's reason actions the user may run as buttons at the top
        (templates/admin/object_actions_change_form.html)."""
        opts = self.model._meta
        available = self.get_actions(request)
        obj = self.get_object(request, object_id)
        buttons = [
            (
                reverse(
                    f"admin:{opts.app_label}_{opts.model_name}_object_action",
                    args=[object_id, name],
                ),
                entry[2],
            )
            for name in self.object_actions
            if (entry := available.get(name)) is not None
            and obj is not None
            and self.object_action_applies(obj, name)
        ]
        extra_context = {**(extra_context or {}), "object_action_buttons": buttons}
        return super().change_view(request, object_id, form_url, extra_context)
