"""Configuration as data: thresholds.toml and the model/task/prompt registry.

Everything is validated once, at start, and every problem is reported together in one
ConfigError, so a long GPU run never dies late on a typo.
"""

from harness.config.registry import (
    DEFAULT_MODELS,
    DEFAULT_TASKS,
    FIXTURES_DIR,
    Registry,
    load_registry,
    render_text,
    select,
)
from harness.config.thresholds import SCHEMA as THRESHOLDS_SCHEMA
from harness.config.thresholds import default_thresholds, load_thresholds

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_TASKS",
    "FIXTURES_DIR",
    "Registry",
    "THRESHOLDS_SCHEMA",
    "default_thresholds",
    "load_registry",
    "load_thresholds",
    "render_text",
    "select",
]
