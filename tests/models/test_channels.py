"""A person's or team's messaging-app channel in the matrix: which one a recipient's
notice goes to, checked when the matrix is loaded, its secrets from the environment."""

from __future__ import annotations

import pytest
import yaml

from dealflow.reports.matrix_words import show
from models.channels import ChannelError, check_channel, redact, resolve_channel
from models.matrix import MatrixError, parse_matrix
from models.settings import PROJECT_ROOT

MATRIX = PROJECT_ROOT / "config" / "matrix.yaml"


def test_a_persons_channel_wins_over_their_teams() -> None:
    data = yaml.safe_load(MATRIX.read_text())
    data["teams"]["cn"]["channel"] = "dingtalk://teamtoken123/"
    data["teams"]["emea"]["channel"] = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
    for person in data["people"]:
        if person["id"] == "chen_jing":
            person["channel"] = "feishu://chentoken456"
    matrix = parse_matrix(yaml.safe_dump(data))
    assert matrix.channel_for("zhou.min@example.com", "cn") == "dingtalk://teamtoken123/"
    assert matrix.channel_for("Chen.Jing@example.com", "cn") == "feishu://chentoken456"
    assert matrix.channel_for("zhou.min@example.com", None) == "dingtalk://teamtoken123/"
    # The director serves every team ("*"): no team's channel is theirs.
    assert matrix.channel_for("dana.whitfield@example.com", "cn") is None
    assert matrix.channel_for("mara.keller@example.com", "cn") is None, "not her team"
    assert matrix.channel_for("customer@example.org", "cn") is None
    shown = show(matrix)
    assert "  team cn (China): dingtalk\n" in shown
    assert "  陈静 <chen.jing@example.com>: feishu\n" in shown
    assert "teamtoken123" not in shown and "chentoken456" not in shown


@pytest.mark.parametrize(
    ("where", "channel", "words"),
    [
        ("people.6.channel", "nosuch://token", "nosuch:// is not a service Apprise knows"),
        ("people.6.channel", "dingtalk://", "its form is wrong"),
        ("teams.cn.channel", "wecombot:key", "is not a URL"),
        ("teams.cn.channel", "feishu://$TOKEN", "${NAME}"),
    ],
)
def test_a_channel_apprise_cannot_post_to_is_refused_with_its_place(
    where: str, channel: str, words: str
) -> None:
    data = yaml.safe_load(MATRIX.read_text())
    if where.startswith("people"):
        data["people"][6]["channel"] = channel
    else:
        data["teams"]["cn"]["channel"] = channel
    with pytest.raises(MatrixError) as refused:
        parse_matrix(yaml.safe_dump(data), "matrix.yaml")
    assert f"matrix.yaml: {where}: " in str(refused.value)
    assert words in str(refused.value)


def test_channel_secrets_come_from_the_environment_and_stay_out_of_errors() -> None:
    url = "dingtalk://${DINGTALK_TOKEN}/"
    assert check_channel(url) == url
    assert resolve_channel(url, {"DINGTALK_TOKEN": "abc123"}) == "dingtalk://abc123/"
    with pytest.raises(ChannelError, match="DINGTALK_TOKEN is not set"):
        resolve_channel(url, {})
    assert redact("refused dingtalk://abc123/", url, {"DINGTALK_TOKEN": "abc123"}) == (
        "refused dingtalk://${DINGTALK_TOKEN}/"
    )
