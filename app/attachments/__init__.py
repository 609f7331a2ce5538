"""Attachments: the service, their routes, their status, scanning."""
