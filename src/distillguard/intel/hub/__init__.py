"""The sharing group's TAXII 2.1 hub: config, SQLite persistence and the ASGI app."""

from distillguard.intel.hub.app import create_app
from distillguard.intel.hub.config import HubConfig, load_config

__all__ = ["HubConfig", "create_app", "load_config"]
