"""Fields built once per serializer class: each instance still gets its own fields, bound
to it, with what DRF gives a fresh instance."""

from __future__ import annotations

import pytest
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import BindingDict

from generations.requests import GenerationCreateRequestSerializer
from generations.serializers import GenerationSerializer
from veoproject.serializer_fields import FieldsBuiltOnce


class Contextual(serializers.CharField):
    """A field that reads its serializer's context, as a URL field reads the request."""

    def to_representation(self, value):
        return f"{self.context['prefix']}{value}"


class Base(FieldsBuiltOnce, serializers.Serializer):
    name = serializers.CharField(max_length=5)
    tags = serializers.ListField(child=Contextual(), required=False)


class Extended(Base):
    extra = serializers.IntegerField(required=False)


def test_each_instance_has_its_own_fields_bound_to_it():
    first, second = Base(context={"prefix": "a:"}), Base(context={"prefix": "b:"})

    assert first.fields["name"] is not second.fields["name"]
    assert first.fields["name"].parent is first and second.fields["name"].parent is second
    assert first.fields["tags"].child is not second.fields["tags"].child
    assert first.fields["tags"].child.parent is first.fields["tags"]


def test_a_list_child_reads_its_own_serializers_context():
    first = Base({"name": "x", "tags": ["t"]}, context={"prefix": "a:"})
    second = Base({"name": "y", "tags": ["t"]}, context={"prefix": "b:"})

    assert (first.data["tags"], second.data["tags"]) == (["a:t"], ["b:t"])


def test_validation_errors_stay_with_their_instance():
    bad, good = Base(data={"name": "toolong"}), Base(data={"name": "ok"})

    assert not bad.is_valid() and good.is_valid()
    assert set(bad.errors) == {"name"} and good.validated_data == {"name": "ok"}


def test_a_subclass_builds_its_own_fields():
    assert "extra" not in Base().fields
    assert "extra" in Extended().fields
    assert "extra" not in Base().fields  # the subclass did not change its parent's


class WithMethod(FieldsBuiltOnce, serializers.Serializer):
    shout = serializers.SerializerMethodField()
    names = serializers.ListField(child=serializers.CharField(), required=False)

    def get_shout(self, value) -> str:
        return f"{self.context['prefix']}{value['word'].upper()}"


def test_a_method_field_calls_its_own_serializer():
    first = WithMethod({"word": "hi"}, context={"prefix": "a:"})
    second = WithMethod({"word": "yo"}, context={"prefix": "b:"})
    assert (first.data["shout"], second.data["shout"]) == ("a:HI", "b:YO")


def test_the_template_keeps_no_serializer_alive():
    Base(context={"prefix": "a:"}).fields  # noqa: B018 - builds the template
    assert all(field.parent is None for _name, field, _deep in Base._field_plan)


@pytest.mark.parametrize(
    "serializer_class", [Base, WithMethod, GenerationSerializer, GenerationCreateRequestSerializer]
)
def test_fields_are_bound_as_drf_binds_them(serializer_class):
    ours = serializer_class()
    drf = BindingDict(ours)
    for name, field in super(FieldsBuiltOnce, ours).get_fields().items():
        drf[name] = field
    assert list(ours.fields) == list(drf)

    def bound(field):
        return (
            type(field),
            field.field_name,
            field.label,
            field.source,
            field.source_attrs,
            getattr(field, "method_name", None),
            field.parent is ours,
            field.required,
        )

    assert {n: bound(f) for n, f in ours.fields.items()} == {n: bound(f) for n, f in drf.items()}


@pytest.mark.parametrize("value", ["a\ud800b", "\udfff", "ok \ud83d"])
def test_a_lone_surrogate_is_refused_as_drf_refuses_it(value):
    class Plain(serializers.Serializer):
        name = serializers.CharField()
        tags = serializers.ListField(child=serializers.CharField())

    class Ours(FieldsBuiltOnce, Plain):
        pass

    data = {"name": value, "tags": ["fine", value]}
    plain, ours = Plain(data=data), Ours(data=data)
    assert not plain.is_valid() and not ours.is_valid()
    assert ours.errors == plain.errors
    assert ours.errors["name"][0].code == "surrogate_characters_not_allowed"
    assert Ours(data={"name": "fine \N{SNOWMAN}", "tags": ["\U0001f600"]}).is_valid()
