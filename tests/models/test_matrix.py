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


def china_team_with(**days: list[str]) -> dict:
    data = default_data()
    data["teams"]["cn"].update(days)
    return data


def test_a_team_adds_its_own_days_off_and_working_days() -> None:
    import datetime as dt

    matrix = parse_matrix(
        yaml.safe_dump(china_team_with(days_off=["2026-12-31"], extra_working_days=["2026-12-26"]))
    )
    calendar = matrix.calendar("cn")
    assert not calendar.is_business_day(dt.date(2026, 12, 31)), "a company day off"
    assert calendar.is_business_day(dt.date(2026, 12, 26)), "a Saturday the team works"
    assert calendar.add_business_days(dt.date(2026, 12, 30), 1) == dt.date(2027, 1, 4)
    assert not matrix.calendar("emea").is_business_day(dt.date(2026, 12, 26))


@pytest.mark.parametrize(
    ("days", "words"),
    [
        (
            {"days_off": ["2026-12-31", "new year's eve"]},
            "matrix.yaml: teams.cn.days_off.1: Input should be a valid date",
        ),
        (
            {"extra_working_days": ["2026-02-30"]},
            "matrix.yaml: teams.cn.extra_working_days.0: Input should be a valid date",
        ),
        (
            {"days_off": ["2026-12-31"], "extra_working_days": ["2026-12-31"]},
            "matrix.yaml: teams.cn: 2026-12-31 is both in days_off and in extra_working_days",
        ),
        (
            {"days_off": ["2026-12-31", "2026-12-31"]},
            "matrix.yaml: teams.cn.days_off[1]: 2026-12-31 is listed twice",
        ),
    ],
    ids=["not-a-date", "no-such-day", "both-ways", "twice"],
)
def test_team_days_that_make_no_sense_are_reported_by_place(
    days: dict[str, list[str]], words: str
) -> None:
    assert words in errors(china_team_with(**days))


def test_an_impossible_date_in_the_file_is_reported_with_its_place() -> None:
    text = DEFAULT.read_text().replace(
        'country: CN, working_hours: "09:00-17:00"',
        'country: CN, working_hours: "09:00-17:00", days_off: [2026-02-30]',
    )
    with pytest.raises(MatrixError, match=r"matrix.yaml: teams.cn.days_off.0: Input should be"):
        parse_matrix(text, "matrix.yaml")


def test_team_days_the_calendar_already_has_are_warnings_not_errors() -> None:
    from models.matrix_checks import calendar_warnings

    # 14 February 2026 is a working day of China already (调休), 1 October National Day.
    data = china_team_with(days_off=["2026-10-01"], extra_working_days=["2026-02-14"])
    matrix = parse_matrix(yaml.safe_dump(data), "matrix.yaml")
    assert calendar_warnings(matrix) == [
        "teams.cn.days_off[0]: 2026-10-01 is a day off of this calendar already",
        "teams.cn.extra_working_days[0]: 2026-02-14 is a working day of this calendar already",
    ]


def test_matrix_check_shows_warnings_and_passes(tmp_path: Path) -> None:
    from tests.support import dealflow

    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(china_team_with(extra_working_days=["2026-02-14"])))
    result = dealflow("matrix", "check", str(path))
    assert result.stdout.startswith("OK: matrix")
    assert (
        f"warning: {path}: teams.cn.extra_working_days[0]: 2026-02-14 is a working day of "
        "this calendar already" in result.stderr
    )


def test_a_year_open_deals_reach_without_the_countrys_schedule_is_a_warning() -> None:
    from models.matrix_checks import calendar_warnings

    matrix = load_matrix(DEFAULT)
    assert calendar_warnings(matrix, years=[2026]) == []
    [warning] = calendar_warnings(matrix, years=[2026, 2027])
    assert warning.startswith("teams.cn: no published schedule of CN for 2027")
    # A team that lists its own working days of the year has entered the schedule itself.
    data = china_team_with(extra_working_days=["2027-02-20"])
    assert calendar_warnings(parse_matrix(yaml.safe_dump(data)), years=[2027]) == []


def test_matrix_check_warns_of_years_the_open_deals_reach(
    database_url: str, tmp_path: Path
) -> None:
    import datetime as dt

    from dealflow.intake.submit import load_deal_file, store_deal
    from tests.support import dealflow

    now = "2026-12-04T12:00:00+00:00"
    result = dealflow("matrix", "check", "--now", now)
    assert result.stdout.startswith("OK: matrix")
    assert "Calendars checked for 2026-2027" in result.stdout
    assert "warning: " in result.stderr and "no published schedule of CN for 2027" in result.stderr
    assert "2028" not in result.stderr

    intake = load_deal_file(PROJECT_ROOT / "examples" / "xinghe.json")
    store_deal(intake.model_copy(update={"delivery_start": dt.date(2028, 3, 1)}))
    result = dealflow("matrix", "check", "--now", now)
    assert result.returncode == 0
    assert "Calendars checked for 2026-2028 (open deals reach 2028-03-01)" in result.stdout
    assert "no published schedule of CN for 2028" in result.stderr


def test_matrix_check_without_a_database_checks_this_year_and_the_next(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "DEALFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"}
    result = subprocess.run(
        [sys.executable, "-m", "dealflow", "matrix", "check", "--now", "2026-03-01T00:00+00:00"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
    )
    assert (
        "Calendars checked for 2026-2027 (this year and the next; no database to read open "
        "deals from: none created yet)" in result.stdout
    )
    assert "no published schedule of CN for 2027" in result.stderr
    assert not (tmp_path / "none.db").exists(), "the check creates no database"


def test_languages_come_from_the_person_then_the_team() -> None:
    data = default_data()
    data["people"][0]["language"] = "zh"  # mara, on the EMEA team
    matrix = parse_matrix(yaml.safe_dump(data, allow_unicode=True), "matrix.yaml")
    assert matrix.language_of("mara.keller@example.com", "emea") == "zh_Hans"
    assert matrix.language_of("ZHOU.MIN@example.com", "cn") == "zh_Hans", "the China team's"
    assert matrix.language_of("tom.alvarez@example.com", "nam") == "en"
    assert matrix.language_of("someone.else@example.com", "cn") == "zh_Hans"
    assert matrix.customer_language(deal(team="cn")) == "zh_Hans"
    customer = {**deal().customer.model_dump(), "language": "zh-CN"}
    assert matrix.customer_language(deal(customer=customer)) == "zh_Hans"


def test_an_unsupported_language_names_its_place() -> None:
    data = default_data()
    data["teams"]["cn"]["language"] = "fr"
    data["people"][1]["language"] = "klingon"
    found = errors(data)
    assert "matrix.yaml: teams.cn.language: Value error, 'fr' is not a supported language" in found
    assert "matrix.yaml: people.1.language: Value error, 'klingon' is not a supported" in found
    assert "zh_Hans" in found


def test_a_gate_or_stage_title_in_another_language_falls_back_to_english() -> None:
    matrix = load_matrix(DEFAULT)
    assert matrix.gate_title("manager", "zh_Hans") == "销售经理审批"
    assert matrix.gate_title("manager") == "Sales manager approval"
    assert matrix.gate_title("gone", "zh_Hans") == "gone"
    data = default_data()
    data["gates"][1]["titles"] = {}
    data["stages"][0]["titles"] = {"fr": "Qualification"}
    assert "matrix.yaml: stages.0.titles.fr.[key]: Value error, 'fr' is not a supported" in errors(
        data
    )
    del data["stages"][0]["titles"]
    matrix = parse_matrix(yaml.safe_dump(data, allow_unicode=True))
    assert matrix.gate_title("director", "zh_Hans") == "Sales director approval"
    assert matrix.stages[1].title_in("zh_Hans") == "需求挖掘与拜访记录"


def test_the_progress_duty_is_checked_like_its_neighbours() -> None:
    matrix = load_matrix(PROJECT_ROOT / "config" / "matrix.yaml")
    assert (matrix.handoff.progress_every_days, matrix.handoff.progress_escalate_to) == (
        7,
        "sales_manager",
    )
    data = default_data()
    data["handoff"]["progress_escalate_to"] = "sales_manger"
    assert "handoff.progress_escalate_to: unknown role 'sales_manger'" in errors(data)
    data["handoff"]["progress_escalate_to"] = "general_counsel"
    data["handoff"]["progress_every_days"] = 0
    assert "handoff.progress_every_days" in errors(data)
    data["handoff"]["progress_every_days"] = None
    del data["handoff"]["progress_escalate_to"]
    assert parse_matrix(yaml.safe_dump(data), "matrix.yaml").handoff.progress_every_days is None


def test_customer_success_is_checked_like_its_neighbours() -> None:
    matrix = load_matrix(PROJECT_ROOT / "config" / "matrix.yaml")
    handoff = matrix.handoff
    assert (
        handoff.success_role,
        handoff.complaint_business_hours,
        handoff.complaint_escalate_to,
    ) == ("customer_success", 16, "head_of_sales")
    assert [p.name for p in matrix.people_for("customer_success", "cn")] == ["Kai Brennan"]
    data = default_data()
    data["handoff"]["success_role"] = "customer_sucess"
    data["handoff"]["complaint_escalate_to"] = "nobody_role"
    data["handoff"]["complaint_business_hours"] = 0
    found = errors(data)
    assert "handoff.complaint_business_hours" in found
    data["handoff"]["complaint_business_hours"] = 16
    found = errors(data)
    assert "handoff.success_role: unknown role 'customer_sucess'" in found
    assert "handoff.complaint_escalate_to: unknown role 'nobody_role'" in found
    for field in ("success_role", "complaint_escalate_to", "complaint_business_hours"):
        del data["handoff"][field]
    plain = parse_matrix(yaml.safe_dump(data), "matrix.yaml").handoff
    assert (plain.success_role, plain.complaint_business_hours) == (None, 16)
