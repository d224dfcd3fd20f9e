"""croft.utils.cli: the one ``error:`` line every front end and tool ends with."""
import pytest

from croft.config import ConfigError
from croft.utils.cli import TRACEBACK_HINT, one_line, print_error, report_error, run_tool


@pytest.fixture(autouse=True)
def no_traceback_env(monkeypatch):
    monkeypatch.delenv("CROFT_TRACEBACK", raising=False)


def failing(exc):
    def main(argv):
        raise exc
    return main


def test_usage_plain_and_expected_errors_get_their_status_and_hint():
    assert one_line(ConfigError("bad key"), usage=ConfigError) == ("error: bad key", 2)
    # a usage class is looked for before the expected ones (ConfigError is a ValueError)
    assert one_line(ConfigError("bad key")) == (f"error: bad key {TRACEBACK_HINT}", 1)
    assert one_line(RuntimeError("stop"), plain=RuntimeError) == ("error: stop", 1)
    assert one_line(OSError("disk")) == (f"error: disk {TRACEBACK_HINT}", 1)
    assert one_line(KeyError("no key 'x'")) == (f"error: no key 'x' {TRACEBACK_HINT}", 1)  # not repr-quoted


def test_unexpected_errors_and_croft_traceback_keep_the_traceback(monkeypatch):
    assert one_line(TypeError("bug")) is None
    assert one_line(OSError("disk"), expected=(ValueError,)) is None
    assert one_line(KeyboardInterrupt()) is None
    monkeypatch.setenv("CROFT_TRACEBACK", "1")
    assert one_line(ConfigError("bad key"), usage=ConfigError) is None


def test_run_tool_prints_one_line_and_returns_the_status(capsys):
    assert run_tool(failing(ConfigError("bad key")), usage=ConfigError) == 2
    assert capsys.readouterr().err == "error: bad key\n"
    assert run_tool(failing(ValueError("bad value"))) == 1
    assert capsys.readouterr().err == f"error: bad value {TRACEBACK_HINT}\n"
    assert run_tool(lambda argv: 0) == 0


def test_run_tool_raises_what_it_does_not_report(monkeypatch):
    with pytest.raises(TypeError, match="bug"):
        run_tool(failing(TypeError("bug")))
    monkeypatch.setenv("CROFT_TRACEBACK", "1")
    with pytest.raises(ValueError, match="bad value"):
        run_tool(failing(ValueError("bad value")))


def test_report_error_writes_through_the_given_function():
    lines = []
    try:
        raise ConfigError("bad key")
    except ConfigError as exc:
        assert report_error(exc, usage=ConfigError, write=lines.append) == 2
    assert lines == ["error: bad key"]


def test_print_error(capsys):
    assert print_error("no folder") == 1
    assert print_error(ValueError("bad"), 2) == 2
    assert capsys.readouterr().err == "error: no folder\nerror: bad\n"
