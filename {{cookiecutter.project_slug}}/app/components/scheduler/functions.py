"""The functions jobs may call with arguments from outside: run-now input and runtime jobs.

A job's function is called by its registered name, never by an import path, and only the
parameters its job lists in `inputs` can be set from outside: the rest (an engine, a directory)
stay under the code's control. Arguments arrive as JSON and are validated against the
function's own type hints, so `{"day": "2026-11-23"}` reaches the function as a `date`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model


class ArgumentError(ValueError):
    """Arguments a function does not accept; `problems` maps each argument to what is wrong."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in problems.items()))
        self.problems = problems


@dataclass(frozen=True)
class JobFunction:
    """A function as the API and the CLI may call it: its name and the inputs it accepts."""

    func: Callable[..., Any]
    inputs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The registered name: the function's own."""
        return self.func.__name__

    @property
    def _model(self) -> type[BaseModel]:
        return _inputs_model(self.func, self.inputs)

    def check(self) -> None:
        """Raise ValueError when `inputs` names a parameter the function lacks."""
        _ = self._model

    def parse(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments as the function takes them; ArgumentError names each bad one."""
        if not isinstance(raw, Mapping):
            raise ArgumentError({"(arguments)": "give a JSON object of named arguments"})
        try:
            model = self._model.model_validate(dict(raw))
        except ValidationError as error:
            problems: dict[str, str] = {}
            for issue in error.errors():
                name = ".".join(str(part) for part in issue["loc"]) or "(arguments)"
                if issue["type"] == "extra_forbidden":
                    accepted = ", ".join(self.inputs) or "none"
                    message = f"{self.name}() does not take it (accepted: {accepted})"
                else:
                    message = issue["msg"]
                problems.setdefault(name, message)
            raise ArgumentError(problems) from None
        return {name: getattr(model, name) for name in model.model_fields_set}

    def to_json(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Parsed arguments in their JSON form, for storage."""
        validated = self._model.model_validate(dict(arguments))
        return validated.model_dump(mode="json", include=set(arguments))

    def describe_inputs(self) -> dict[str, str]:
        """Each accepted input and its type, for the API and the CLI to show."""
        return {
            name: getattr(info.annotation, "__name__", None) or str(info.annotation)
            for name, info in self._model.model_fields.items()
        }


@cache
def _inputs_model(func: Callable[..., Any], inputs: tuple[str, ...]) -> type[BaseModel]:
    """The model that validates a function's inputs: built once per function, however many
    jobs call it (building one takes about half a millisecond)."""
    name = func.__name__
    parameters = inspect.signature(func).parameters
    hints = get_type_hints(func)
    fields: dict[str, Any] = {}
    for input_name in inputs:
        parameter = parameters.get(input_name)
        if parameter is None:
            raise ValueError(f"inputs: {name}() has no parameter {input_name!r}")
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[input_name] = (hints.get(input_name, Any), default)
    return create_model(f"{name}_inputs", __config__=ConfigDict(extra="forbid"), **fields)
