"""schemathesis's hooks for affix's document (``SCHEMATHESIS_HOOKS`` names this file in
tests/system/test_schemathesis.py): the bytes of a resumable (tus) upload are sent as any binary
body."""
import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
