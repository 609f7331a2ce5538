"""The virus-scanning settings: AFFIX_SCAN_MODE, AFFIX_CLAMD, AFFIX_CLAMD_TIMEOUT and
AFFIX_SCAN_ACCEPT_UNSCANNED, read into ``Settings.scan`` with one-line errors."""
import pytest

from affix.app.settings import Settings, SettingsError
from affix.plugins.clamav import ScanOptions


def test_scanning_is_off_by_default():
    assert Settings.from_environ({}).scan == ScanOptions(
        mode="off", clamd=None, timeout=30, accept_unscanned=False)


@pytest.mark.parametrize("clamd", ["/run/clamav/clamd.ctl", "clamav:3310", "[::1]:3310"])
def test_a_mode_with_clamds_address(clamd):
    settings = Settings.from_environ({
        "AFFIX_SCAN_MODE": "Stream", "AFFIX_CLAMD": clamd, "AFFIX_CLAMD_TIMEOUT": "2.5",
        "AFFIX_SCAN_ACCEPT_UNSCANNED": "yes"})

    assert settings.scan == ScanOptions(mode="stream", clamd=clamd, timeout=2.5,
                                        accept_unscanned=True)
    assert settings.scan.enabled


@pytest.mark.parametrize("environ, message", [
    ({"AFFIX_SCAN_MODE": "later"},
     "AFFIX_SCAN_MODE must be one of off, stream, after, not 'later'"),
    ({"AFFIX_SCAN_MODE": "after"},
     "AFFIX_SCAN_MODE=after needs AFFIX_CLAMD: clamd's unix socket (a path) or host:port"),
    ({"AFFIX_SCAN_MODE": "stream", "AFFIX_CLAMD": "clamav"},
     "AFFIX_CLAMD must be a unix socket's path or host:port, not 'clamav'"),
    ({"AFFIX_SCAN_MODE": "stream", "AFFIX_CLAMD": "clamav:99999"},
     "AFFIX_CLAMD must be a unix socket's path or host:port, not 'clamav:99999'"),
    ({"AFFIX_CLAMD_TIMEOUT": "0"},
     "AFFIX_CLAMD_TIMEOUT must be a number of seconds greater than 0, not '0'"),
    ({"AFFIX_CLAMD_TIMEOUT": "soon"},
     "AFFIX_CLAMD_TIMEOUT must be a number of seconds greater than 0, not 'soon'"),
    ({"AFFIX_SCAN_ACCEPT_UNSCANNED": "maybe"},
     "AFFIX_SCAN_ACCEPT_UNSCANNED must be 1 or 0 (true or false), not 'maybe'"),
])
def test_unusable_scan_settings_are_refused_in_one_line(environ, message):
    with pytest.raises(SettingsError) as refused:
        Settings.from_environ(environ)
    assert str(refused.value) == message
