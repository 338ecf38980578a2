"""Fields built once per serializer class: each instance still gets its own fields, bound
to it, with what DRF gives a fresh instance."""

from __future__ import annotations

from rest_framework import serializers

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
