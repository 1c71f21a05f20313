"""The services the package runs: one line per service module.

Everything that differs between services is read from their
:class:`~dagster_runwf.services.service_info.ServiceInfo` through here: the ``runwf``
command's ``--service`` choices and environment variables, the YAML component's
``service:`` choice, an asset's default resource key. A new service is a new module with its
``SERVICE`` plus one line in :data:`SERVICES` (and its Dagster resource: see the docs page
"Adding a service").
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from ..errors import ConfigError
from . import aitutor, runchat
from .service_info import ServiceInfo

SERVICES: Mapping[str, ServiceInfo] = MappingProxyType(
    {
        info.name: info
        for info in (
            aitutor.SERVICE,
            runchat.SERVICE,
        )
    }
)
"""Every service, by its short name, in the order they are offered."""

SERVICE_NAMES: tuple[str, ...] = tuple(SERVICES)
"""The services' short names (``"aitutor"``, ``"runchat"``)."""

if TYPE_CHECKING:
    ServiceName = str
else:
    # A Literal of the registered names, so Dagster's YAML schema offers (and pydantic
    # checks) exactly these: Literal[("a", "b")] is Literal["a", "b"].
    ServiceName = Literal[SERVICE_NAMES]
"""A service's short name: one of :data:`SERVICE_NAMES` (a ``Literal`` of them at run time)."""


def service_info(name: str) -> ServiceInfo:
    """The service called ``name``.

    Raises:
        ConfigError: there is no such service; the message lists the services.
    """
    info = SERVICES.get(name)
    if info is None:
        raise ConfigError(f"unknown service {name!r}; the services are {', '.join(SERVICE_NAMES)}")
    return info


def offering(setting: str) -> list[ServiceInfo]:
    """The services whose workflows take ``setting``: one of their ``workflow_options``, or
    ``"output_columns"`` (lifting named outputs into columns)."""
    return [info for info in SERVICES.values() if takes(info, setting)]


def offered_by(setting: str) -> str:
    """``"Runchat: "`` before the description of a setting only some services take (their
    display names); empty when every service takes it."""
    owners = offering(setting)
    if len(owners) == len(SERVICES):
        return ""
    return " and ".join(info.display_name for info in owners) + ": "


def takes(info: ServiceInfo, setting: str) -> bool:
    """Whether ``info``'s workflows take ``setting`` (see :func:`offering`)."""
    if setting == "output_columns":
        return info.named_outputs
    return setting in info.workflow_options


def check_settings(info: ServiceInfo, given: Mapping[str, str]) -> None:
    """Refuse settings the service does not take, naming the services that do.

    Args:
        info: the chosen service.
        given: each setting that was set (a workflow option, or ``"output_columns"``) ->
            how the caller names it (a flag such as ``--webhook``, a YAML key).

    Raises:
        ConfigError: some are not the service's; e.g. ``--webhook: only for Runchat flows``.
    """
    refused = [name for setting, name in given.items() if not takes(info, setting)]
    if not refused:
        return
    owners = {
        f"{other.display_name} {other.workflow_term}s"
        for setting, name in given.items()
        if not takes(info, setting)
        for other in offering(setting)
    }
    raise ConfigError(
        f"{', '.join(refused)}: only for {' and '.join(sorted(owners)) or 'no service'}, not "
        f"{info.display_name} {info.workflow_term}s"
    )
