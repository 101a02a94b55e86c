"""Registers the medvlm-fragility pytest plugin for the behaviour suite in tests/."""

pytest_plugins = ["harness.plugin"]
