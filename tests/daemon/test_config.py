"""Configuration loading: valid files parse fully; every mistake names its key."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from behavior.daemon import engine
from behavior.daemon.config import ConfigError, load_config

FULL = """
[daemon]
state_dir = "/srv/rba"
socket = "/srv/rba/control.sock"
probes = "poll"
poll_interval = "500ms"
max_active_runs = 3

[retention]
max_runs = 10
max_megabytes = 20

[findings]
directory = "/var/log/rba"
formats = ["json", "text"]

[[template]]
name = "nightly"
duration = "1h"
rules = ["unused-listening-port", "insecure-client-login"]
schedule = "daily 02:30"

[[template]]
name = "quick"
duration = "20s"
schedule = "every 6h"

[[suppression]]
rule = "unused-listening-port"
port = 22
reason = "reached via the bastion"
expires = 2027-01-31
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "rba.toml"
    path.write_text(text)
    return str(path)


def test_full_config(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, FULL.replace('"500ms"', '"0.5s"')))
    assert cfg.state_dir == "/srv/rba" and cfg.socket == "/srv/rba/control.sock"
    assert cfg.probes == "poll" and cfg.poll_interval_s == 0.5 and cfg.max_active_runs == 3
    assert cfg.retention.max_runs == 10 and cfg.retention.max_bytes == 20 * 1024 * 1024
    assert cfg.findings.directory == "/var/log/rba" and cfg.findings.formats == ("json", "text")
    nightly, quick = cfg.templates
    assert nightly.duration_s == 3600
    assert nightly.rules == frozenset({"unused-listening-port", "insecure-client-login"})
    assert nightly.schedule is not None and nightly.schedule.daily_at == dt.time(2, 30)
    assert quick.duration_s == 20 and quick.rules is None
    assert quick.schedule is not None and quick.schedule.every_s == 6 * 3600
    (sup,) = cfg.suppressions
    assert sup.rule == "unused-listening-port" and sup.match == (("port", 22),)
    assert sup.expires == dt.date(2027, 1, 31)
    assert cfg.template("quick") is quick and cfg.template("nope") is None


def test_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[[template]]\nname = "t"\nduration = "15m"\n'))
    assert cfg.state_dir == "/var/lib/rba" and cfg.socket == "/run/rba/control.sock"
    assert cfg.probes == "auto" and cfg.poll_interval_s == 1.0 and cfg.content is True
    assert cfg.findings.directory is None and cfg.suppressions == ()


def test_content_capture_can_be_turned_off(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[daemon]\ncontent = false\n"))
    assert cfg.content is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[daemon]\nsokcet = '/x'\n", "daemon.sokcet: unknown key"),
        ("[daemon]\nprobes = 'kprobe'\n", "daemon.probes: 'kprobe' is not one of"),
        ("[daemon]\nsocket = 'relative.sock'\n", "daemon.socket: must be an absolute path"),
        ("[daemon]\npoll_interval = '2h'\n", "daemon.poll_interval: duration '2h' is outside"),
        ("[daemon]\nmax_active_runs = 0\n", "daemon.max_active_runs: must be at least 1"),
        ("[daemon]\ncontent = 'no'\n", "daemon.content: must be a bool"),
        ("[daemon]\nmax_active_runs = true\n", "daemon.max_active_runs: must be a int"),
        ("[[template]]\nduration = '1h'\n", "template[0].name: required"),
        ("[[template]]\nname = 'a b'\nduration = '1h'\n", "template[0].name: required, 1-64"),
        ("[[template]]\nname = 'a'\n", "template[0].duration: required"),
        ("[[template]]\nname = 'a'\nduration = '5d'\n", "template[0].duration: invalid duration"),
        (
            "[[template]]\nname = 'a'\nduration = 20\n",
            "template[0].duration: duration '20' has no unit: write 20s,",
        ),
        ("[[template]]\nname = 'a'\nduration = '25h'\n", "template[0].duration: duration '25h'"),
        (
            "[[template]]\nname = 'a'\nduration = '1h'\nschedule = 'weekly'\n",
            "template[0].schedule: invalid schedule 'weekly'",
        ),
        (
            "[[template]]\nname = 'a'\nduration = '1h'\nschedule = 'daily 25:00'\n",
            "template[0].schedule: 'daily 25:00' is not a time of day",
        ),
        ("[[template]]\nname = 'a'\nduration = '1h'\nrules = []\n", "template[0].rules: must be"),
        (
            "[[template]]\nname='a'\nduration='1h'\n[[template]]\nname='a'\nduration='2h'\n",
            "template: the name 'a' is used more than once",
        ),
        ("[[suppression]]\nrule = 'x'\n", "suppression[0].reason: required"),
        ("[[suppression]]\nrule='x'\nreason='y'\nport=70000\n", "suppression[0].port: must be"),
        ("[[suppression]]\nrule='x'\nreason='y'\nexpires='soon'\n", "suppression[0].expires"),
        ("[[suppression]]\nrule='x'\nreason='y'\nuser='z'\n", "suppression[0].user: unknown key"),
        ("[findings]\nformats = ['pdf']\n", "findings.formats: 'pdf' is not one of"),
        ("[findings]\naccount = '12345'\n", "findings.account: AWS account id '12345' must be"),
        ("[findings]\naccount = 123456789012\n", "findings.account: must be a str"),
        ("[findings]\nregion = 'Mars-1'\n", "findings.region: AWS region 'Mars-1' is not"),
        ("[findings]\nlake = 'lake'\n", "findings.lake: must be an absolute path"),
        ("[retention]\nmax_runs = -1\n", "retention.max_runs: must be at least 1"),
        ("template = 3\n", "template: must be an array of tables"),
        ("extra = 1\n", "extra: unknown key"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: {message}"), str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_rule_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "[[template]]\nname='a'\nduration='1h'\nrules=['no-such-rule']\n")
    with pytest.raises(ConfigError, match=r"template\[0\].rules: unknown rule id 'no-such-rule'"):
        load_config(path, known_rules=frozenset({"unused-listening-port"}))


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[daemon]\nsocket = \n")
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 2"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(str(tmp_path / "absent.toml"))


def test_trace_options(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, "[[template]]\nname='t'\nduration='1m'\ntrace=true\nredact_cmdline=true\n")
    )
    assert cfg.templates[0].trace and cfg.templates[0].redact_cmdline
    path = write(tmp_path, "[[template]]\nname='t'\nduration='1m'\nredact_cmdline=true\n")
    with pytest.raises(ConfigError, match=r"template\[0\].redact_cmdline: needs trace = true"):
        load_config(path)
    path = write(tmp_path, "[[template]]\nname='t'\nduration='1m'\ntrace='yes'\n")
    with pytest.raises(ConfigError, match=r"template\[0\].trace: must be a bool"):
        load_config(path)


def test_findings_account_region_and_lake(tmp_path: Path) -> None:
    text = (
        "[findings]\naccount = '123456789012'\nregion = 'eu-west-1'\nlake = '/var/lib/rba/lake'\n"
    )
    findings = load_config(write(tmp_path, text)).findings
    assert (findings.account, findings.region) == ("123456789012", "eu-west-1")
    assert findings.lake == "/var/lib/rba/lake"
    defaults = load_config(write(tmp_path, "")).findings
    assert defaults.lake is None and defaults.account == "000000000000"


def test_the_documented_example_is_valid(tmp_path: Path) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "daemon.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    cfg = load_config(write(tmp_path, example), known_rules=engine.known_rules())
    assert [t.name for t in cfg.templates] == ["nightly", "baseline"]
    assert cfg.templates[0].trace and cfg.suppressions[0].reason
