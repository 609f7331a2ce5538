"""What ``affix migrate`` prints on a fresh database, and on one it already migrated."""
from affix.storage.migrations import LATEST_VERSION, MIGRATIONS

APPLIED_ALL = "".join(f"applied migration {each.version}: {each.description}\n"
                      for each in MIGRATIONS) + (
    f"the database schema is now at version {LATEST_VERSION}\n")
UP_TO_DATE = f"the database schema is already at version {LATEST_VERSION}\n"
