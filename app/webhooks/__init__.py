"""Webhooks: events, signed deliveries and the worker that makes them."""
