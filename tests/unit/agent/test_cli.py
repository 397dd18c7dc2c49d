import logging
import os

import pytest

from agent.cli import parse_options

SERVER = ["--server", "https://monitor.example.com"]
TOKEN = "Ab3_-xYz0123456789abcdefghijklmnopqrstuvwxyz"


def refused(capsys, argv, environ=None) -> str:
    """Parse a command line that must fail; return the error line printed."""
    with pytest.raises(SystemExit) as exited:
        parse_options(argv, environ or {})
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_flags_make_the_options():
    options = parse_options([*SERVER, "--token", TOKEN, "--interval", "2"], {})
    assert options.url == "wss://monitor.example.com/api/ws/agent?interval=2"
    assert options.token == TOKEN
    assert options.interval == 2.0
    assert options.buffer == 900.0
    assert TOKEN not in repr(options)


def test_without_interval_the_server_chooses():
    options = parse_options([*SERVER, "--token", TOKEN], {})
    assert options.interval is None
    assert options.url == "wss://monitor.example.com/api/ws/agent"


def test_token_from_a_file_loses_its_newline(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    assert parse_options([*SERVER, "--token-file", str(path)], {}).token == TOKEN


def test_token_from_the_environment():
    options = parse_options(SERVER, {"MONITOR_AGENT_TOKEN": TOKEN})
    assert options.token == TOKEN


def test_a_flag_wins_over_the_environment():
    options = parse_options([*SERVER, "--token", TOKEN], {"MONITOR_AGENT_TOKEN": "x"})
    assert options.token == TOKEN


def test_a_token_file_others_can_read_is_warned_about(tmp_path, caplog):
    path = tmp_path / "token"
    path.write_text(TOKEN)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="agent"):
        parse_options([*SERVER, "--token-file", str(path)], {})
    assert "can be read by other users" in caplog.text
    assert TOKEN not in caplog.text


def test_missing_server(capsys):
    assert "required: --server" in refused(capsys, ["--token", TOKEN])


def test_missing_token_says_where_one_comes_from(capsys):
    line = refused(capsys, SERVER)
    assert "--token TOKEN, --token-file PATH or MONITOR_AGENT_TOKEN" in line
    assert "hosts add NAME" in line


def test_empty_token_in_the_environment(capsys):
    assert "MONITOR_AGENT_TOKEN: the token is empty" in refused(
        capsys, SERVER, {"MONITOR_AGENT_TOKEN": ""}
    )


def test_token_and_token_file_together(capsys, tmp_path):
    line = refused(capsys, [*SERVER, "--token", TOKEN, "--token-file", "x"])
    assert "not allowed with argument --token" in line


def test_unreadable_token_file_is_named(capsys, tmp_path):
    missing = tmp_path / "nope"
    line = refused(capsys, [*SERVER, "--token-file", str(missing)])
    assert f"--token-file {missing}: cannot read it (No such file or directory)" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_token_file_without_permission(capsys, tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN)
    path.chmod(0)
    assert "Permission denied" in refused(capsys, [*SERVER, "--token-file", str(path)])


def test_empty_token_file(capsys, tmp_path):
    path = tmp_path / "token"
    path.write_text("\n")
    assert "the token is empty" in refused(capsys, [*SERVER, "--token-file", str(path)])


@pytest.mark.parametrize("token", ["two words", "two\nlines", "caf\u00e9"])
def test_a_token_that_cannot_be_a_header_is_refused_without_echoing_it(capsys, token):
    line = refused(capsys, [*SERVER, "--token", token])
    assert "one word of printable ASCII" in line
    assert token not in line


@pytest.mark.parametrize("value", ["0.4", "3601", "abc", "nan", "inf", "-1", ""])
def test_interval_out_of_bounds(capsys, value):
    line = refused(capsys, [*SERVER, "--token", TOKEN, "--interval", value])
    assert "argument --interval: must be a number of seconds from 0.5 to 3600" in line


@pytest.mark.parametrize("value", ["-1", "86401", "lots"])
def test_buffer_out_of_bounds(capsys, value):
    line = refused(capsys, [*SERVER, "--token", TOKEN, "--buffer", value])
    assert "argument --buffer: must be a number of seconds from 0 to 86400" in line


def test_bad_server_address(capsys):
    line = refused(capsys, ["--server", "monitor.example.com", "--token", TOKEN])
    assert "--server must start with http://, https://, ws:// or wss://" in line
