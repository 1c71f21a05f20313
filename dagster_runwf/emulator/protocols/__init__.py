"""The emulator's three HTTP protocols, one module each: the AI Tutor API, the Runchat API
and the emulator's own admin API, plus what their handlers share (:mod:`.exchange`)."""

from dagster_runwf.emulator.protocols.admin import AdminAPI
from dagster_runwf.emulator.protocols.aitutor import AITutorAPI
from dagster_runwf.emulator.protocols.exchange import Exchange
from dagster_runwf.emulator.protocols.runchat import RunchatAPI

__all__ = ["AITutorAPI", "AdminAPI", "Exchange", "RunchatAPI"]
