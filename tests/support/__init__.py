"""Harness code the tests share: servers, databases, clients, documents. No tests here."""
