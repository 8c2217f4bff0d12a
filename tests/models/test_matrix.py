"""The responsibility matrix is data; mistakes in it are reported with their place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from models.deal import DealIntake
from models.matrix import MatrixError, load_matrix, parse_matrix
from models.settings import PROJECT_ROOT

DEFAULT = PROJECT_ROOT / "config" / "matrix.yaml"


def default_data() -> dict:
    return yaml.safe_load(DEFAULT.read_text())


def errors(data: dict) -> str:
    with pytest.raises(MatrixError) as caught:
        parse_matrix(yaml.safe_dump(data), "matrix.yaml")
    return str(caught.value)


def deal(**changes: object) -> DealIntake:
    data = json.loads((PROJECT_ROOT / "examples" / "acme.json").read_text())
    data.update(changes)
    return DealIntake.model_validate(data)


def test_large_deals_go_through_every_gate_on_every_team() -> None:
    matrix = load_matrix(DEFAULT)
    for team in matrix.teams:
        route = matrix.route(deal(team=team))
        assert route.rule.name == "large-deal"
        assert [gate.name for gate, _ in route.steps] == ["manager", "director", "legal"]
        assert len({person.email for _, person in route.steps}) == 3


def test_four_eyes_skips_the_submitter_and_earlier_approvers() -> None:
    data = default_data()
    data["people"].append(
        {
            "id": "mia",
            "name": "Mia",
            "email": "mia@example.com",
            "roles": ["sales_manager", "sales_director"],
            "teams": ["emea"],
        }
    )
    matrix = parse_matrix(yaml.safe_dump(data))
    route = matrix.route(deal(sales_rep={"name": "Mara", "email": "mara.keller@example.com"}))
    assert [(g.name, p.id) for g, p in route.steps] == [
        ("manager", "mia"),
        ("director", "dana"),
        ("legal", "lena"),
    ]


def test_a_gate_nobody_else_can_approve_is_an_error() -> None:
    matrix = load_matrix(DEFAULT)
    with pytest.raises(
        MatrixError, match="nobody in the matrix can act as legal for team 'emea' other than"
    ):
        matrix.route(deal(sales_rep={"name": "Lena", "email": "lena.fischer@example.com"}))


def test_unknown_role_names_the_person() -> None:
    data = default_data()
    data["people"][0]["roles"] = ["sales_manger"]
    assert "matrix.yaml: people[0] (mara).roles: unknown role 'sales_manger'" in errors(data)


def test_missing_email_names_the_field() -> None:
    data = default_data()
    del data["people"][2]["email"]
    assert "matrix.yaml: people.2.email: Field required" in errors(data)


def test_a_role_no_one_holds_for_a_team_is_reported() -> None:
    data = default_data()
    data["people"] = [p for p in data["people"] if p["id"] != "tom"]
    assert "gates[0].role: nobody holds role 'sales_manager' for team 'nam'" in errors(data)


def test_duplicate_people_and_gates_are_reported() -> None:
    data = default_data()
    data["people"].append(dict(data["people"][0]))
    data["gates"].append(dict(data["gates"][0]))
    text = errors(data)
    assert "duplicate person id" in text and "gate 'manager' is listed twice" in text


def test_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MatrixError, match="cannot read the responsibility matrix"):
        load_matrix(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("people: [\n")
    with pytest.raises(MatrixError, match="not valid YAML"):
        load_matrix(broken)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("timezone", "Europe/Berln", "Europe/Berln"), ("country", "XX", "XX")],
)
def test_a_team_calendar_that_cannot_work_is_reported(field: str, value: str, words: str) -> None:
    data = default_data()
    data["teams"]["emea"][field] = value
    text = errors(data)
    assert "matrix.yaml: teams.emea: invalid calendar:" in text and words in text


def test_each_team_counts_time_on_its_own_calendar() -> None:
    import datetime as dt

    matrix = load_matrix(DEFAULT)
    # 2026-11-26 is Thanksgiving in the US, an ordinary Thursday in Germany.
    assert matrix.calendar("emea").is_business_day(dt.date(2026, 11, 26))
    assert not matrix.calendar("nam").is_business_day(dt.date(2026, 11, 26))


@pytest.mark.parametrize(
    ("delegations", "words"),
    [
        (
            [{"from": "mara", "to": "nobody", "start": "2027-01-01", "end": "2027-01-02"}],
            "delegations[0].to: unknown person 'nobody'",
        ),
        (
            [{"from": "mara", "to": "mara", "start": "2027-01-01", "end": "2027-01-02"}],
            "delegations[0]: mara delegates to themselves",
        ),
        (
            [{"from": "mara", "to": "tom", "start": "2027-01-05", "end": "2027-01-02"}],
            "delegations[0]: ends (2027-01-02) before it starts (2027-01-05)",
        ),
        (
            [
                {"from": "mara", "to": "tom", "start": "2027-01-01", "end": "2027-01-10"},
                {"from": "mara", "to": "dana", "start": "2027-01-08", "end": "2027-01-12"},
            ],
            "delegations[1]: overlaps delegations[0] of mara (2027-01-01 to 2027-01-10)",
        ),
        (
            [
                {"from": "mara", "to": "tom", "start": "2027-01-01", "end": "2027-01-10"},
                {"from": "tom", "to": "mara", "start": "2027-01-05", "end": "2027-01-12"},
            ],
            "delegations[0]: delegations go round in a loop (mara -> tom -> mara) from 2027-01-05 to 2027-01-10",
        ),
        (
            [
                {"from": "mara", "to": "tom", "start": "2027-01-01", "end": "2027-01-10"},
                {"from": "tom", "to": "dana", "start": "2027-01-03", "end": "2027-01-12"},
                {"from": "dana", "to": "mara", "start": "2027-01-09", "end": "2027-01-20"},
            ],
            "delegations[0]: delegations go round in a loop (mara -> tom -> dana -> mara) from 2027-01-09 to 2027-01-10",
        ),
    ],
    ids=["unknown-person", "self", "backwards", "overlap", "cycle", "longer-cycle"],
)
def test_delegation_mistakes_are_reported_by_place(delegations: list, words: str) -> None:
    data = default_data()
    data["delegations"] = delegations
    assert words in errors(data)


def test_delegations_chain_to_someone_who_is_in() -> None:
    import datetime as dt

    data = default_data()
    data["delegations"] = [
        {"from": "mara", "to": "tom", "start": "2027-01-01", "end": "2027-01-10"},
        {"from": "tom", "to": "victor", "start": "2027-01-01", "end": "2027-01-03"},
    ]
    matrix = parse_matrix(yaml.safe_dump(data))
    assert matrix.acting_for("mara.keller@example.com", dt.date(2027, 1, 2))[0].id == "victor"  # type: ignore[index]
    assert matrix.acting_for("mara.keller@example.com", dt.date(2027, 1, 5))[0].id == "tom"  # type: ignore[index]
    assert matrix.acting_for("mara.keller@example.com", dt.date(2027, 1, 11)) is None


def test_delegations_that_follow_each_other_in_time_are_no_loop() -> None:
    data = default_data()
    data["delegations"] = [
        {"from": "mara", "to": "tom", "start": "2027-01-01", "end": "2027-01-10"},
        {"from": "tom", "to": "mara", "start": "2027-01-11", "end": "2027-01-20"},
    ]
    parse_matrix(yaml.safe_dump(data))


def test_matrix_check_exits_non_zero_and_names_each_place(tmp_path: Path) -> None:
    from tests.support import dealflow

    data = default_data()
    data["people"][0]["roles"] = ["sales_manger"]
    data["delegations"] = [
        {"from": "mara", "to": "mara", "start": "2027-01-01", "end": "2027-01-02"}
    ]
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(data))
    result = dealflow("matrix", "check", str(path), check=False)
    assert result.returncode == 1
    assert f"{path}: people[0] (mara).roles: unknown role 'sales_manger'" in result.stderr
    assert f"{path}: delegations[0]: mara delegates to themselves" in result.stderr
    assert dealflow("matrix", "check").stdout.startswith("OK: matrix")
