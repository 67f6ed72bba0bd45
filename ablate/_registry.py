"""Component registries: one per kind, name lookup, parameter introspection.

Modelled on timm's ``register_model``/``create_model``/``list_models``: a variant is a
class or factory function registered under a name with one decorator; the harness only ever
creates components by name, so it never imports a specific variant.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ablate.config._schema import did_you_mean, problem, type_text

_MISSING = inspect.Parameter.empty


class RegistryError(KeyError):
    """Raised for unknown names, duplicate registrations and bad parameters."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Param:
    """One user-settable parameter of a registered component."""

    name: str
    default: Any
    annotation: Any

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def describe(self) -> str:
        kind = "" if self.annotation is _MISSING else f": {type_text(self.annotation)}"
        default = "" if self.required else f" = {self.default!r}"
        return f"{self.name}{kind}{default}"


@dataclass(frozen=True)
class Entry:
    """A registered component: its factory, a one-line description, its parameters and metadata.

    Attributes:
        label: how reports write the name (``"CRF"`` for ``crf``); the name itself when not given.
        meta: further registration metadata the harness reads by key (documented with each registry).
    """

    name: str
    factory: Callable[..., Any]
    description: str
    params: tuple[Param, ...]
    module: str
    label: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


class Registry:
    """Name -> factory mapping for one component kind.

    Args:
        kind: Plural name of the kind, e.g. ``"distances"``; used in messages.
        contract: What a factory accepts and what the object it returns must do.
        check: Optional callable that raises ``TypeError`` if a created object breaks the contract.
        injected: Keyword arguments the harness supplies itself (not user parameters).
        harness_keys: Keys of a config spec that the harness reads itself and never passes to the factory
            (e.g. which network a CAM method runs on).
    """

    def __init__(
        self,
        kind: str,
        contract: str,
        check: Callable[[Any], None] | None = None,
        injected: tuple[str, ...] = (),
        harness_keys: tuple[str, ...] = (),
    ) -> None:
        self.kind = kind
        self.contract = contract
        self._check = check
        self._injected = injected
        self.harness_keys = harness_keys
        self._entries: dict[str, Entry] = {}

    def register(
        self, name: str | None = None, *, label: str | None = None, **meta: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a class or factory function under ``name``.

        The first line of its docstring becomes the description shown by ``ablate list``;
        its keyword parameters (with defaults) become the component's config parameters.

        Args:
            name: the config name (default: the factory's ``__name__``).
            label: how reports write it, e.g. ``"CRF"`` (default: ``name``).
            **meta: metadata the harness reads by key, e.g. ``cooccurrence=True`` for a metric.
        """

        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            key = name or factory.__name__
            if key in self._entries:
                other = self._entries[key].module
                raise RegistryError(f"{self.kind}: '{key}' is already registered (by {other}); pick another name")
            doc = inspect.getdoc(factory) or ""
            self._entries[key] = Entry(
                name=key,
                factory=factory,
                description=doc.splitlines()[0] if doc else "",
                params=self._params_of(factory),
                module=getattr(factory, "__module__", "?"),
                label=label or key,
                meta=meta,
            )
            return factory

        return decorator

    def _params_of(self, factory: Callable[..., Any]) -> tuple[Param, ...]:
        target = factory.__init__ if inspect.isclass(factory) else factory
        try:  # real annotations (``from __future__ import annotations`` leaves strings)
            signature = inspect.signature(target, eval_str=True)
        except (NameError, TypeError, SyntaxError):  # a name only imported for type checkers
            signature = inspect.signature(target)
        params = []
        for p in signature.parameters.values():
            if p.name in ("self", *self._injected) or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            params.append(Param(p.name, p.default, p.annotation))
        return tuple(params)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)

    def tagged(self, key: str) -> list[str]:
        """Sorted names of the entries registered with a true ``meta[key]``."""
        return [e.name for e in self if e.meta.get(key)]

    def names(self) -> list[str]:
        """Sorted names of every registered entry."""
        return sorted(self._entries)

    def get(self, name: str) -> Entry:
        """The entry called ``name``; unknown names fail with the available names and the closest match."""
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: object) -> str:
        return (
            f"'{name}' is not in the {self.kind} registry{did_you_mean(name, self.names())}. "
            f"Available: {', '.join(self.names()) or '(none)'}. "
            "Third-party variants must be listed under 'plugins:' or installed with an "
            "'ablate.plugins' entry point."
        )

    def check_params(self, name: str, params: dict[str, Any]) -> list[str]:
        """Problems with ``params`` for entry ``name`` (unknown keys, missing required ones, types)."""
        entry = self.get(name)
        known = {p.name: p for p in entry.params}
        problems = []
        for key, value in params.items():
            param = known.get(key)
            if param is None:
                accepted = [*known, *self.harness_keys]  # the keys the harness reads are valid keys of the spec too
                choices = ", ".join(accepted) or "none"
                problems.append(
                    f"unknown parameter '{key}' for {self.kind} '{name}'{did_you_mean(key, accepted)}; "
                    f"it takes: {choices}"
                )
            elif (err := _type_error(param, value)) is not None:
                problems.append(f"parameter '{key}' of {self.kind} '{name}': {err}")
        problems += [
            f"{self.kind} '{name}' needs parameter '{p.name}'"
            for p in entry.params
            if p.required and p.name not in params
        ]
        return problems

    def spec_params(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The factory parameters of a config spec: everything but ``name`` and the harness keys."""
        return {k: v for k, v in spec.items() if k != "name" and k not in self.harness_keys}

    def build(self, spec: dict[str, Any], /, **injected: Any) -> Any:
        """Build the component a config spec ``{"name": ..., **params}`` describes (as mmengine's ``build``).

        Args:
            spec: the component's mapping from the config.
            **injected: the arguments the harness supplies (see the registry's contract).

        Raises:
            RegistryError: unknown name, unknown or missing parameters, wrong simple types.
            TypeError: the built object breaks the registry's contract.
        """
        return self.create(spec["name"], **self.spec_params(spec), **injected)

    def create(self, name: str, /, **kwargs: Any) -> Any:
        """Build entry ``name`` with ``kwargs`` (user parameters plus injected ones)."""
        user = {k: v for k, v in kwargs.items() if k not in self._injected}
        problems = self.check_params(name, user)
        if problems:
            raise RegistryError("; ".join(problems))
        obj = self._entries[name].factory(**kwargs)
        if self._check is not None:
            try:
                self._check(obj)
            except TypeError as exc:
                raise TypeError(f"{self.kind} '{name}' breaks the registry contract: {exc}") from None
        return obj


def _type_error(param: Param, value: Any) -> str | None:
    """A message if ``value`` breaks the parameter's annotation (type, and bounds given with ``Annotated``)."""
    if value is None or param.annotation is _MISSING:
        return None  # None means "library default"; factories decide whether it is allowed
    return problem(param.annotation, value)
