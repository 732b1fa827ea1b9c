"""Installed probes: the ``gridalarm.producers`` entry-point group, by name.

A package makes a probe available by declaring it in its ``pyproject.toml``::

    [project.entry-points."gridalarm.producers"]
    condor-q = "mypackage.probe:CondorQTotals"

``gridalarm produce plugins`` lists what is installed and ``gridalarm produce run NAME`` runs
one. Loading is lazy: a broken plug-in only fails when it is asked for, with one line that
names its package, and never stops the others from being listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from gridalarm.producers.probe import Probe, ProbeError

ENTRY_POINT_GROUP = "gridalarm.producers"


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One installed probe: its name, where it comes from, and what it says of itself."""

    name: str
    target: str  # module:Class
    package: str  # distribution name and version, or "?" when unknown
    summary: str
    options: tuple[tuple[str, str, str], ...]  # (name, type, default) per option
    error: str | None = None  # why it cannot be loaded


def installed() -> dict[str, EntryPoint]:
    """Entry points of the group by name (the first one wins when two share a name)."""
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, point)
    return dict(sorted(found.items()))


def load(name: str) -> type[Probe]:
    """The probe class registered as ``name``; :class:`ProbeError` with one line otherwise."""
    points = installed()
    point = points.get(name)
    if point is None:
        known = ", ".join(points) or "none installed"
        raise ProbeError(
            f"no probe named {name!r} (installed: {known}); see `gridalarm produce plugins`"
        )
    return _load(point)


def describe() -> list[PluginInfo]:
    """Every installed probe, loaded to read its summary and options (failures recorded)."""
    infos = []
    for name, point in installed().items():
        package = _package(point)
        try:
            cls = _load(point)
        except ProbeError as err:
            infos.append(PluginInfo(name, point.value, package, "", (), error=str(err)))
            continue
        options = tuple(
            (
                field,
                _type_name(info.annotation),
                "required" if info.is_required() else repr(info.default),
            )
            for field, info in cls.Options.model_fields.items()
        )
        infos.append(PluginInfo(name, point.value, package, cls.summary, options))
    return infos


def _load(point: EntryPoint) -> type[Probe]:
    try:
        cls = point.load()
    except Exception as err:  # a plug-in's import can fail in any way; say which and why
        raise ProbeError(
            f"probe {point.name!r} ({point.value}, from {_package(point)}) cannot be loaded: "
            f"{type(err).__name__}: {err}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Probe)):
        raise ProbeError(
            f"probe {point.name!r} ({point.value}) is not a gridalarm.producers.probe.Probe "
            "subclass"
        )
    return cls


def _package(point: EntryPoint) -> str:
    dist = point.dist
    return f"{dist.name} {dist.version}" if dist is not None else "?"


def _type_name(annotation: object) -> str:
    name = getattr(annotation, "__name__", None)
    return name if isinstance(name, str) else str(annotation).replace("typing.", "")


__all__ = ["ENTRY_POINT_GROUP", "PluginInfo", "describe", "installed", "load"]
