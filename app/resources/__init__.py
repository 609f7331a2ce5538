"""Falcon resources: one class per URI template."""
