"""The pydantic models that validate an inventory file, built from fleet.inventory's classes.

fleet.inventory defines the inventory's shape once, as msgspec structs with their checks
as markers; a file that must be parsed is validated by pydantic models made from those
definitions here (each field's type, default, `from`/`global` key, checks and the class's
rules), and what they validated is converted to the structs. Only parsing imports this
module (and pydantic): an inventory read from the cache of validated inventories needs
neither. The JSON schema (`fleet schema`) is these models' schema.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Union

import msgspec
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    model_validator,
)

from fleet import inventory
from fleet.inventory import Check, Strict


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)


class Models:
    """The models of every inventory class, by class, and the classes of the models."""

    def __init__(self) -> None:
        self.model: dict[type[Strict], type[Model]] = {}
        self.struct: dict[type[Model], type[Strict]] = {}
        # each model's fields, and whether a field's value can hold a model (to convert)
        self.fields: dict[type[Model], tuple[tuple[str, bool], ...]] = {}

    def of(self, struct: type[Strict]) -> type[Model]:
        made = self.model.get(struct)
        if made is None:
            made = self.model[struct] = self._build(struct)
            self.struct[made] = struct
        return made

    def _build(self, struct: type[Strict]) -> type[Model]:
        hints = typing.get_type_hints(struct, include_extras=True)
        fields: dict[str, Any] = {}
        nested: list[tuple[str, bool]] = []
        for info in msgspec.structs.fields(struct):
            given: dict[str, Any] = {}
            if info.encode_name != info.name:
                given["alias"] = info.encode_name
            if info.default_factory is not msgspec.NODEFAULT:
                given["default_factory"] = info.default_factory
            elif info.default is not msgspec.NODEFAULT:
                given["default"] = info.default
            fields[info.name] = (self.pydantic_type(hints[info.name]), Field(**given))
            nested.append((info.name, _holds_struct(hints[info.name])))
        properties: dict[str, property] = {}
        validators: dict[str, Any] = {}
        for klass in reversed(struct.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, property):  # the rules read them (`self.kind`, ...)
                    properties[name] = value
                elif getattr(value, "__fleet_rule__", False):
                    validators[name] = model_validator(mode="after")(_returning_self(value))
        model = create_model(
            struct.__name__,
            __base__=Model,
            __module__=__name__,
            __doc__=struct.__doc__,
            __validators__=validators,
            **fields,
        )
        for name, value in properties.items():
            setattr(model, name, value)
        self.fields[model] = tuple(nested)
        return typing.cast(type[Model], model)

    def pydantic_type(self, kind: Any) -> Any:
        """The type pydantic validates a field of this type with."""
        if isinstance(kind, type) and issubclass(kind, Strict):
            return self.of(kind)
        origin = typing.get_origin(kind)
        args = typing.get_args(kind)
        if origin is Annotated:
            return Annotated[(self.pydantic_type(args[0]), *map(_pydantic_marker, args[1:]))]
        if origin is list:
            return list[self.pydantic_type(args[0])]  # type: ignore[misc]
        if origin is dict:
            return dict[self.pydantic_type(args[0]), self.pydantic_type(args[1])]  # type: ignore[misc]
        if origin in (Union, types.UnionType):
            return Union[tuple(self.pydantic_type(arg) for arg in args)]  # noqa: UP007
        return kind  # str, int, float, bool, None, an enum, a Literal


def _holds_struct(kind: Any) -> bool:
    if isinstance(kind, type):
        return issubclass(kind, Strict)
    return any(_holds_struct(arg) for arg in typing.get_args(kind))


def _pydantic_marker(marker: Any) -> Any:
    if isinstance(marker, Check):
        return (BeforeValidator if marker.before else AfterValidator)(marker.function)
    # A text's or list's least length: msgspec checks it when the cache's entry is decoded
    if isinstance(marker, msgspec.Meta) and marker == msgspec.Meta(min_length=marker.min_length):
        return Field(min_length=marker.min_length)
    # pydantic would ignore a marker it does not know: a check the parse would not make
    raise TypeError(f"an inventory field's {marker!r} has no pydantic equivalent here")


def _returning_self(check: Callable[[Any], None]) -> Callable[[Any], Any]:
    def run(self: Any) -> Any:
        check(self)
        return self

    run.__name__ = check.__name__
    return run


@functools.cache
def models() -> Models:
    """The models, built once per process (when the first file is parsed)."""
    built = Models()
    built.of(inventory.Inventory)
    return built


def to_struct(value: Any, models: Models, shared: dict[int, Any]) -> Any:
    """The validated value as fleet.inventory's classes. `shared` maps the id of a validated
    object that several places hold (and that lives as long as the mapping is used) to its
    struct, so that they hold one struct too."""
    if isinstance(value, BaseModel):
        found = shared.get(id(value))
        if found is not None:
            return found
        kind = typing.cast(type[Model], type(value))
        held = value.__dict__
        return models.struct[kind](
            **{
                name: to_struct(held[name], models, shared) if nested else held[name]
                for name, nested in models.fields[kind]
            }
        )
    if type(value) is list:
        return [to_struct(item, models, shared) for item in value]
    if type(value) is dict:
        return {key: to_struct(item, models, shared) for key, item in value.items()}
    return value  # None, or a default that is a struct already


def schema() -> dict[str, Any]:
    """The inventory's JSON Schema, for editors that autocomplete YAML."""
    found = models().of(inventory.Inventory).model_json_schema(by_alias=True, mode="validation")
    found["title"] = "fleet inventory"
    return found


StructT = typing.TypeVar("StructT", bound=Strict)


def validate(struct: type[StructT], data: Any) -> StructT:
    """One inventory class's value from data as YAML would give it, validated as a file's
    would be (raising pydantic's ValidationError)."""
    built = models()
    return typing.cast(StructT, to_struct(built.of(struct).model_validate(data), built, {}))
