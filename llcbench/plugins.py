"""Plugins: estimators and case families from outside llcbench.

Two ways in, for both kinds:

- **in process** (``llcbench.registration``): ``@llcbench.register_estimator("name", config=Config)`` on an
  ``estimate`` function (or on an ``EstimatorSpec``), ``@llcbench.register_family("name")``
  on a :class:`~llcbench.families.base.Family` subclass;
- **installed packages**: entry points in the groups ``llcbench.estimators``
  (each loads to an ``EstimatorSpec``, or a zero-argument callable returning
  one) and ``llcbench.families`` (a ``Family`` subclass or instance, or a
  zero-argument callable returning one).

A name is taken once: registering a name that a built-in or another plugin
already has is an error unless ``replace=True`` is passed; an entry point
whose name is taken is not loaded and is reported. Entry points are loaded
lazily, the first time a registry is listed or asked for a name it does not
have (a lookup of a built-in imports no plugin), never at ``import
llcbench``. A plugin that fails to load is reported by name with its error —
one warning line on stderr, and a ``not loaded`` row in ``llcbench
estimators`` / ``llcbench families`` — and breaks nothing else; a plugin that raises
``MissingDependency`` (an optional extra not installed) gets the row but no warning. Setting the
environment variable ``LLCBENCH_NO_PLUGINS=1`` turns off the loading of
entry points (in-process registration still works).
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from .errors import UserError

NO_PLUGINS_ENV = "LLCBENCH_NO_PLUGINS"
BUILTIN = "built-in"
IN_PROCESS = "registered in-process"


class MissingDependency(ImportError):
    """Raised by a plugin whose optional dependency is not installed (message: what to install). It is
    listed as ``not loaded`` and reported when asked for by name, but not announced on stderr: an
    extra left uninstalled is not a fault."""


class RegistrationError(UserError):
    """A registration that cannot be made (a taken name without ``replace=True``, a wrong object)."""


def plugins_disabled() -> bool:
    """Whether ``LLCBENCH_NO_PLUGINS`` turns off the loading of entry points ("", "0", "false" do not)."""
    return os.environ.get(NO_PLUGINS_ENV, "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class Failure:
    """An entry point that did not load: where it came from and why."""

    origin: str  # "plugin <distribution>"
    source: str  # the entry point's "module:attr"
    error: str  # "ErrorType: message"


def _entry_points(group: str) -> list:
    from importlib import metadata

    return list(metadata.entry_points(group=group))


def _origin_of(ep) -> str:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    return f"plugin {name or ep.value.partition(':')[0]}"


class Registry(MutableMapping):
    """Name -> entry (an ``EstimatorSpec``, a ``Family``) with the built-ins first and the plugins
    loaded on demand; iterates like the dict it replaces, built-ins in their order, then plugins.

    kind: "estimator" or "family" (for messages). group: the entry-point group.
    coerce(obj, name): the entry for a loaded object, or TypeError/ValueError saying what is wrong.
    """

    def __init__(self, kind: str, group: str, builtins: dict[str, Any], coerce: Callable[[Any, str], Any]):
        self.kind, self.group, self._coerce = kind, group, coerce
        self._builtin = dict(builtins)
        self._entries: dict[str, Any] = dict(builtins)
        self._origins: dict[str, str] = {}  # name -> origin, for entries that are not the built-in one
        self._failures: dict[str, Failure] = {}
        self._loaded = False
        self._loading_origin: Optional[str] = None  # set while an entry point's module is imported

    # ------------------------------------------------------------------ the mapping
    def __getitem__(self, name: str) -> Any:
        if name not in self._entries:
            self.load(quiet=name)
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        if name not in self._entries and isinstance(name, str):
            self.load(quiet=name)
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self.load()
        return iter(list(self._entries))

    def __len__(self) -> int:
        self.load()
        return len(self._entries)

    def __setitem__(self, name: str, entry: Any) -> None:
        """Plain assignment replaces, as a dict's would (``monkeypatch.setitem`` relies on it)."""
        self._entries[name] = entry
        self._origins[name] = IN_PROCESS

    def __delitem__(self, name: str) -> None:
        del self._entries[name]
        self._origins.pop(name, None)

    def __repr__(self) -> str:
        return f"Registry({self.kind}: {', '.join(self._entries)})"

    # ------------------------------------------------------------------ registration
    def register(self, name: str, obj: Any, replace: bool = False) -> Any:
        """Add ``obj`` (coerced to an entry) under ``name``; the entry. RegistrationError if the
        name is taken (by a built-in, a plugin or an earlier registration) and not ``replace``."""
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise RegistrationError(f"{self.kind} name must be a non-empty string without surrounding spaces, "
                                    f"got {name!r}")
        self.load()  # so that a clash with an installed plugin is found whichever comes first
        if name in self._entries and not replace:
            raise RegistrationError(f"{self.kind} {name!r} is already registered ({self.origin(name)}); pass "
                                    "replace=True to replace it")
        try:
            entry = self._coerce(obj, name)
        except (TypeError, ValueError) as exc:
            raise RegistrationError(f"{self.kind} {name!r}: {exc}") from None
        self._entries[name] = entry
        self._origins[name] = self._loading_origin or IN_PROCESS
        self._failures.pop(name, None)
        return entry

    def origin(self, name: str) -> str:
        """"built-in", "plugin <distribution>" or "registered in-process"."""
        if name in self._builtin and self._entries.get(name) is self._builtin[name]:
            return BUILTIN
        return self._origins.get(name, IN_PROCESS)

    @property
    def builtins(self) -> tuple[str, ...]:
        """The built-in names, in their order."""
        return tuple(self._builtin)

    def is_builtin(self, name: str) -> bool:
        return self.origin(name) == BUILTIN

    def failures(self) -> dict[str, Failure]:
        """Entry points that did not load, by name."""
        self.load()
        return dict(self._failures)

    def unknown(self, name: Any) -> str:
        """Why ``name`` is not here, in one line: its plugin's error, or the names that are."""
        if isinstance(name, str) and name in self._failures:
            f = self._failures[name]
            return f"{self.kind} {name!r} ({f.origin}, {f.source}) failed to load: {f.error}"
        note = f" (entry points not loaded: {NO_PLUGINS_ENV} is set)" if plugins_disabled() else ""
        return f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self))}{note}"

    # ------------------------------------------------------------------ entry points
    def load(self, quiet: Optional[str] = None) -> None:
        """Load the entry points of the group, once per process; a failure is kept, and announced on
        stderr unless it is the one called ``quiet`` (whose lookup reports it as its own error)."""
        if self._loaded:
            return
        self._loaded = True
        if plugins_disabled():
            return
        try:
            eps = _entry_points(self.group)
        except Exception as exc:  # broken metadata must not break the built-ins
            self._fail("?", Failure("plugin ?", self.group, f"{type(exc).__name__}: {exc}"), quiet)
            return
        for ep in eps:
            origin = _origin_of(ep)
            if ep.name in self._entries:
                taken = (f"a built-in {self.kind}'s" if self.is_builtin(ep.name)
                         else f"already registered ({self.origin(ep.name)})")
                self._fail(ep.name, Failure(origin, ep.value, f"the name {ep.name!r} is {taken}"), quiet)
                continue
            self._loading_origin = origin
            try:
                obj = ep.load()
                if ep.name not in self._entries:  # the module may have registered it itself on import
                    self._entries[ep.name] = self._coerce(obj, ep.name)
                    self._origins[ep.name] = origin
            except Exception as exc:  # any error in a plugin's import is the plugin's, not ours
                self._fail(ep.name, Failure(origin, ep.value, f"{type(exc).__name__}: {exc}"),
                           ep.name if isinstance(exc, MissingDependency) else quiet)
            finally:
                self._loading_origin = None

    def _fail(self, name: str, failure: Failure, quiet: Optional[str]) -> None:
        self._failures[name] = failure
        if name != quiet:
            print(f"llcbench: warning: {self.kind} plugin {name!r} ({failure.origin}, {failure.source}) not "
                  f"loaded: {' '.join(failure.error.split())}", file=sys.stderr)

    def reset(self) -> None:
        """Back to the built-ins with entry points not yet loaded (for tests)."""
        self._entries = dict(self._builtin)
        self._origins.clear()
        self._failures.clear()
        self._loaded = False
