"""Counting the SQL statements a request runs: peewee logs each one it executes on its
``peewee`` logger at DEBUG, so a handler there sees them all without touching affix."""
import contextlib
import logging

PEEWEE_LOGGER = "peewee"


class _Recorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.statements = []

    def emit(self, record):
        # peewee logs (sql, params); its pool logs on a logger of its own below this one
        if record.name == PEEWEE_LOGGER:
            self.statements.append(record.msg[0])


@contextlib.contextmanager
def statements_run():
    """A list that fills with the SQL of every statement run in this process while the block
    runs (through falcon.testing a request runs in this thread, and nothing else does)."""
    logger = logging.getLogger(PEEWEE_LOGGER)
    recorder, level = _Recorder(), logger.level
    logger.addHandler(recorder)
    logger.setLevel(logging.DEBUG)
    try:
        yield recorder.statements
    finally:
        logger.setLevel(level)
        logger.removeHandler(recorder)
