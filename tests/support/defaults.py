"""What conftest's affix is made with, for tests that make one of their own alike."""
import datetime

# the app's clock: every timestamp affix writes in a test is this moment
FROZEN_NOW = datetime.datetime(2014, 5, 21, 8, 51, 20)
# the size limit of conftest's settings: small, so that over-limit bodies stay small too
SMALL_LIMIT = 64 * 1024
