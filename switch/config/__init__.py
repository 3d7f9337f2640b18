"""The settings: their shapes (settings), the loader (load, from_mapping) and one
parser per engine table (fees, routing, keys), over the shared checks (checks).

Only the composition root and the command line import this package; the engines
receive the values it builds and never import it.
"""

from switch.config.checks import ConfigError
from switch.config.loader import ENVIRONMENT, from_mapping, load
from switch.config.settings import (
    DEFAULT_ROUTES,
    AdapterSettings,
    IdempotencySettings,
    RouteSettings,
    SecuritySettings,
    ServerSettings,
    Settings,
    StoreSettings,
)
from switch.domain.errors import StartupError
from switch.domain.limits import Limit, LimitScope
from switch.flow.batcher import BatcherSettings

__all__ = [
    "DEFAULT_ROUTES",
    "ENVIRONMENT",
    "AdapterSettings",
    "BatcherSettings",
    "ConfigError",
    "IdempotencySettings",
    "Limit",
    "LimitScope",
    "RouteSettings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "StartupError",
    "StoreSettings",
    "from_mapping",
    "load",
]
