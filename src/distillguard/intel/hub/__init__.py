"""The sharing group's TAXII 2.1 hub: config, persistence (SQLite, or PostgreSQL) and the ASGI app."""

from distillguard.intel.hub.app import create_app
from distillguard.intel.hub.config import HubConfig, load_config
from distillguard.intel.hub.db import HubStore, open_db

__all__ = ["HubConfig", "HubStore", "create_app", "load_config", "open_db"]
