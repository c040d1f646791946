"""Contract loading (official ODCS v3.0/v3.1/v3.2 and the flat Dativo flavour) and contract → Iceberg."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest
from pyiceberg.types import (
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
    TimestampType,
    TimestamptzType,
    TimeType,
)

from target_dativo_iceberg.contracts.contract import (
    contract_for_stream,
    load_contract,
    load_contracts,
    resolve_contracts,
)
from target_dativo_iceberg.contracts.odcs.types import resolve_type
from target_dativo_iceberg.errors import ContractError, ContractProblem, DativoError

HERE = Path(__file__).parent
CONTRACTS = HERE / "contracts"
REPO = HERE.parent
ODCS_DIR = REPO / "target_dativo_iceberg" / "contracts" / "odcs"


def fixture(name: str) -> Path:
    return CONTRACTS / name


# ---------------------------------------------------------------- the flavours


def test_v302_contract_loads_with_governance_metadata() -> None:
    contract = load_contract(fixture("person_v302.odcs.yaml"))
    assert contract.flavour == "odcs"
    assert contract.api_version == "v3.0.2"
    assert (contract.id, contract.version) == ("0b7b5b7e-3c1d-4a52-9e61-0d7f1b7a3c11", "1.2.0")
    assert (contract.domain, contract.data_product, contract.tenant) == ("crm", "customers", "acme")
    assert contract.owner == "ann@acme.example"  # team member whose role contains "owner"
    assert contract.retention_days == 365  # slaProperties retention
    assert contract.classification == "restricted"  # the property classifications
    email = contract.field("email")
    assert email is not None
    assert email.rules.pattern and email.rules.max_length == 254 and email.rules.format == "email"
    score = contract.field("score")
    assert score is not None and score.rules.exclusive_minimum == 0 and score.rules.minimum is None
    status = contract.field("status")
    assert status is not None and status.quality[0].valid_values == ("active", "inactive", "banned")
    assert [q.metric for q in contract.quality] == ["rowCount"]
    assert contract.field("birth_date").rules.temporal_format == "%d/%m/%Y"  # type: ignore[union-attr]


def test_v310_contract_maps_to_iceberg() -> None:
    contract = load_contract(fixture("orders_v310.odcs.yaml"))
    assert contract.api_version == "v3.1.0"
    assert contract.table_name() == "sales_orders"
    schema = contract.iceberg_schema()
    types = {f.name: f.field_type for f in schema.fields}
    assert types["order_id"] == StringType()
    assert types["amount"] == DecimalType(12, 2)
    assert types["quantity"] == IntegerType()
    assert types["pack_size"] == LongType()
    assert types["discount"] == DoubleType()
    assert types["order_date"] == DateType()
    assert types["created_at"] == TimestamptzType()
    assert types["local_created_at"] == TimestampType()
    assert types["pickup_time"] == TimeType()
    assert types["gift"] == BooleanType()
    assert types["notes"] == StringType()  # object → JSON text
    assert [f.field_id for f in schema.fields] == list(range(1, len(schema.fields) + 1))
    # identifier fields from primaryKeyPosition (tenant_id is 1, order_id is 2), all required
    assert contract.identifier_columns() == ["tenant_id", "order_id"]
    assert [schema.find_field(i).name for i in schema.identifier_field_ids] == ["tenant_id", "order_id"]
    assert all(schema.find_field(i).required for i in schema.identifier_field_ids)
    assert schema.find_field("customer_email").required is False
    assert schema.find_field("amount").required is True
    assert contract.partition_columns() == ["order_date", "region"]
    assert contract.table_properties() == {
        "dativo.owner": "jane@acme.example",
        "dativo.domain": "sales",
        "dativo.data-product": "order_management",
        "dativo.classification": "confidential",
        "dativo.retention-days": "1095",
        "dativo.contract-id": "urn:dativo:sales:orders",
        "dativo.contract-version": "2.1.0",
    }
    assert contract.arrow_schema() == schema.as_arrow()
    assert schema.find_field("notes").doc == "Free-form attributes, stored as JSON text."


def test_v320_contract_with_two_objects() -> None:
    path = fixture("events_v320.odcs.yaml")
    contracts = load_contracts(path)
    assert [c.object_name for c in contracts] == ["page_views", "clicks"]
    assert contracts[1].table_name() == "web_clicks"
    assert contracts[0].owner == "web-analytics"  # v3.1+ team object without an owner role
    device = contracts[0].field("device")
    assert device is not None and device.quality[0].valid_values == ("desktop", "mobile", "tablet")
    assert load_contract(path, stream="clicks").object_name == "clicks"
    assert load_contract(path, stream="Web Clicks").object_name == "clicks"
    with pytest.raises(ContractError, match="2 schema objects"):
        load_contract(path, stream="nope")
    # properties only present in the contract: keys absent → not in table properties
    assert "dativo.data-product" not in contracts[0].table_properties()


def test_flat_dativo_flavour() -> None:
    contract = load_contract(fixture("customers_flat.yaml"))
    assert contract.flavour == "dativo-flat"
    assert contract.table_name() == "csv_customers"
    assert contract.match_names() == ["csv_customers", "Customers"]
    types = {f.name: f.iceberg_type for f in contract.fields}
    assert types == {
        "CustomerID": LongType(),
        "Email": StringType(),
        "Country": StringType(),
        "Balance": DecimalType(10, 2),
        "Tier": StringType(),
        "SignedUp": DateType(),
        "UpdatedAt": TimestamptzType(),
        "Active": BooleanType(),
    }
    assert contract.identifier_columns() == ["customerid"]
    assert contract.partition_columns() == ["ingest_date", "country"]
    assert contract.table_properties() == {
        "dativo.owner": "data-team@acme.example",
        "dativo.domain": "dativo",
        "dativo.data-product": "adventureworks",
        "dativo.classification": "PII,GDPR",
        "dativo.retention-days": "90",
        "dativo.contract-id": "550e8400-e29b-41d4-a716-446655440000",
        "dativo.contract-version": "1.0",
    }
    country = contract.field("Country")
    assert country is not None and (country.rules.min_length, country.rules.max_length) == (2, 2)
    assert contract.field("Tier").quality[0].valid_values == ("bronze", "silver", "gold")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "path",
    [
        REPO / "examples" / "contracts" / "person.odcs.yaml",
        # a copy of shared/reference/person.odcs.yaml
        REPO / "tests" / "contracts" / "reference_person.odcs.yaml",
    ],
    ids=["examples", "shared-reference"],
)
def test_project_example_contracts_load(path: Path) -> None:
    contract = load_contract(path)
    assert contract.table_name() == "person"
    assert contract.identifier_columns() == ["id"]
    assert contract.partition_columns() == ["country"]


# ---------------------------------------------------------------- broken contracts

BROKEN = [
    ("broken_logical_type.odcs.yaml", "schema[0].properties[2].logicalType", 15, "'strng' is not one of"),
    ("broken_missing_id.odcs.yaml", "(document root)", None, "'id' is a required property"),
    (
        "broken_v30_rule_in_v31.odcs.yaml",
        "schema[0].properties[1].quality[0]",
        15,
        "'rule', 'validValues' were unexpected",
    ),
    ("broken_yaml.odcs.yaml", "line 6, column 3", None, "not valid YAML"),
    (
        "broken_physical_type.odcs.yaml",
        "schema[0].properties[1].physicalType",
        14,
        "contradicts logicalType 'boolean'",
    ),
    (
        "broken_pattern.odcs.yaml",
        "schema[0].properties[0].logicalTypeOptions.pattern",
        13,
        "invalid regular expression",
    ),
    ("broken_api_version.odcs.yaml", "apiVersion", 2, "unsupported ODCS version 'v2.2.2'"),
    ("broken_flat_type.yaml", "schema[1].type", 8, "unsupported type 'strng'"),
    ("broken_flat_missing_schema.yaml", "(document root)", None, "'schema' is a required property"),
    (
        "broken_valid_values.odcs.yaml",
        "schema[0].properties[0].quality[0].arguments.validValues[2]",
        15,
        "'three'",
    ),
    (
        "broken_duplicate_column.odcs.yaml",
        "schema[0].properties[1]",
        12,
        "both map to Iceberg column 'first_name'",
    ),
    ("broken_primary_key_double.odcs.yaml", "schema[0].properties[0]", 10, "cannot be a double"),
]


@pytest.mark.parametrize(("name", "location", "line", "problem"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_contract_message_names_file_location_and_problem(
    name: str, location: str, line: int | None, problem: str
) -> None:
    path = fixture(name)
    with pytest.raises(ContractError) as info:
        load_contracts(path)
    error = info.value
    message = str(error)
    assert isinstance(error, DativoError) and error.exit_code == 2
    assert message.startswith(f"contract {path}: {location}")
    assert problem in message
    assert error.location == location
    if line is not None:
        assert f"{location} (line {line})" in message


def test_broken_contract_lists_further_problems(tmp_path: Path) -> None:
    doc = fixture("person_v302.odcs.yaml").read_text().replace("apiVersion: v3.0.2", "apiVersion: v3.1.0")
    path = tmp_path / "person.odcs.yaml"
    path.write_text(doc)
    with pytest.raises(ContractError) as info:
        load_contracts(path)
    assert "\n  also schema[0]" in str(info.value)
    assert "use `metric` instead of `rule`" in str(info.value)


def test_rule_outside_logical_type_options_is_explained(tmp_path: Path) -> None:
    text = fixture("orders_v310.odcs.yaml").read_text()
    text = text.replace(
        "        logicalTypeOptions:\n          pattern: '^[A-Z]{3}-\\d{4}$'\n", "        maxLength: 8\n"
    )
    path = tmp_path / "orders.odcs.yaml"
    path.write_text(text)
    with pytest.raises(ContractError, match="ODCS puts maxLength under `logicalTypeOptions`"):
        load_contracts(path)


def test_flat_contract_without_its_schema_marker_gets_a_hint(tmp_path: Path) -> None:
    text = fixture("customers_flat.yaml").read_text().replace("$schema: schemas/odcs/", "# ")
    path = tmp_path / "customers.yaml"
    path.write_text(text)
    with pytest.raises(ContractError, match="look like flat Dativo columns"):
        load_contracts(path)


def test_missing_file_is_a_contract_error(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"nope\.yaml: cannot read"):
        load_contracts(tmp_path / "nope.yaml")


def test_contract_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ContractError, match="must be a YAML mapping"):
        load_contracts(path)


def test_yaml_dates_stay_strings(tmp_path: Path) -> None:
    """Unquoted dates (contractCreatedTs, bounds) must not turn into datetime objects."""
    text = fixture("orders_v310.odcs.yaml").read_text()
    text = text.replace("tenant: acme\n", "tenant: acme\ncontractCreatedTs: 2024-05-01T10:00:00Z\n")
    text = text.replace("minimum: '2020-01-01'", "minimum: 2020-01-01")
    path = tmp_path / "orders.odcs.yaml"
    path.write_text(text)
    contract = load_contract(path)
    assert str(contract.field("order_date").rules.minimum) == "2020-01-01"  # type: ignore[union-attr]


# ---------------------------------------------------------------- type mapping


@pytest.mark.parametrize(
    ("logical", "physical", "options", "expected"),
    [
        ("integer", None, {}, LongType()),
        ("integer", "bigint", {}, LongType()),
        ("integer", "long", {}, LongType()),
        ("integer", "int", {}, IntegerType()),
        ("integer", "INTEGER", {}, IntegerType()),
        ("integer", "smallint", {}, IntegerType()),
        ("integer", None, {"format": "i32"}, IntegerType()),
        ("integer", "decimal(20,0)", {}, DecimalType(20, 0)),
        ("number", None, {}, DoubleType()),
        ("number", "double", {}, DoubleType()),
        ("number", "float", {}, FloatType()),
        ("number", "real", {}, FloatType()),
        ("number", "decimal(12, 2)", {}, DecimalType(12, 2)),
        ("number", "NUMERIC(5,3)", {}, DecimalType(5, 3)),
        ("number", "decimal", {}, DecimalType(38, 18)),
        ("number", "bigint", {}, LongType()),
        ("string", None, {}, StringType()),
        ("string", "varchar(255)", {}, StringType()),
        ("string", "SomeVendorType", {}, StringType()),
        ("boolean", "bool", {}, BooleanType()),
        ("date", None, {}, DateType()),
        ("date", "date", {}, DateType()),
        ("date", "timestamp", {}, TimestamptzType()),  # ODCS v3.0 has no timestamp logicalType
        ("date", "timestamp_ntz", {}, TimestampType()),
        ("timestamp", None, {}, TimestamptzType()),
        ("timestamp", "timestamp", {}, TimestamptzType()),
        ("timestamp", "timestamp with time zone", {}, TimestamptzType()),
        ("timestamp", "timestamp_ntz", {}, TimestampType()),
        ("timestamp", None, {"timezone": False}, TimestampType()),
        ("time", None, {}, TimeType()),
        ("object", None, {}, StringType()),
        ("array", None, {}, StringType()),
        (None, "bigint", {}, LongType()),
        (None, None, {}, StringType()),
    ],
)
def test_type_mapping(logical: str | None, physical: str | None, options: dict, expected: object) -> None:
    assert resolve_type(logical, physical, options, "lt", "pt").iceberg == expected


@pytest.mark.parametrize(
    ("logical", "physical", "problem"),
    [
        ("string", "bigint", "contradicts"),
        ("integer", "decimal(10,2)", "has a scale"),
        ("number", "decimal(40,2)", "not a valid Iceberg decimal"),
        ("integer", "timestamp", "contradicts"),
    ],
)
def test_type_mapping_rejects(logical: str, physical: str, problem: str) -> None:
    with pytest.raises(ContractProblem, match=problem):
        resolve_type(logical, physical, {}, "lt", "pt")


# ---------------------------------------------------------------- streams → contracts


def test_resolve_contracts_from_assets_and_dir(tmp_path: Path) -> None:
    directory = tmp_path / "assets"
    directory.mkdir()
    shutil.copy(fixture("orders_v310.odcs.yaml"), directory / "orders.odcs.yaml")
    shutil.copy(fixture("events_v320.odcs.yaml"), directory / "events.odcs.yaml")
    shutil.copy(fixture("customers_flat.yaml"), directory / "customers.yaml")
    (directory / "README.md").write_text("not a contract")
    shutil.copy(fixture("person_v302.odcs.yaml"), tmp_path / "person.yaml")
    found = resolve_contracts({"people": "person.yaml"}, "assets", base_dir=tmp_path)
    assert found["people"].object_name == "person"
    assert found["Orders"].table_name() == "sales_orders"
    assert found["sales_orders"] is found["Orders"]
    assert found["clicks"].object_name == "clicks"
    assert found["Customers"].object_name == "csv_customers"
    assert contract_for_stream(found, "people") is found["people"]
    assert contract_for_stream(found, "orders") is found["Orders"]  # sanitized match
    assert contract_for_stream(found, "web-clicks") is found["clicks"]
    assert contract_for_stream(found, "customers") is found["Customers"]
    assert contract_for_stream(found, "unknown_stream") is None


def test_resolve_contracts_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(fixture("person_v302.odcs.yaml"), tmp_path / "p.yaml")
    monkeypatch.chdir(tmp_path)
    assert resolve_contracts({"person": "p.yaml"}, None)["person"].object_name == "person"


def test_resolve_contracts_errors(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="assets_dir is not a directory"):
        resolve_contracts({}, "missing", base_dir=tmp_path)
    with pytest.raises(ContractError, match="cannot read"):
        resolve_contracts({"s": "missing.yaml"}, None, base_dir=tmp_path)
    directory = tmp_path / "dup"
    directory.mkdir()
    shutil.copy(fixture("person_v302.odcs.yaml"), directory / "a.yaml")
    shutil.copy(fixture("person_v302.odcs.yaml"), directory / "b.yaml")
    with pytest.raises(ContractError, match="also defined in"):
        resolve_contracts({}, "dup", base_dir=tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(fixture("broken_logical_type.odcs.yaml"), broken / "x.yaml")
    with pytest.raises(ContractError, match=re.escape("schema[0].properties[2].logicalType")):
        resolve_contracts({}, "broken", base_dir=tmp_path)


# ---------------------------------------------------------------- Singer SCHEMA compatibility


def test_stream_schema_compatibility() -> None:
    contract = load_contract(fixture("person_v302.odcs.yaml"))
    schema = {
        "properties": {
            "id": {"type": ["integer"]},
            "EMAIL": {"type": ["string", "null"]},  # bound case-insensitively
            "status": {"type": "string"},
            "age": {"type": ["boolean", "null"]},  # cannot become int
            "score": {"anyOf": [{"type": "number"}, {"type": "null"}]},
            "updated_at": {"type": "string", "format": "date-time"},
            "nickname": {"type": "string"},  # not in the contract
        }
    }
    check = contract.check_stream_schema(schema)
    assert check.unknown_fields == ("nickname",)
    assert check.missing_fields == ("country", "birth_date")
    assert check.missing_required == ("country",)
    assert check.incompatible == ("field 'age': stream type boolean cannot become int",)
    assert not check.ok
    assert len(check.problems()) == 3
    full = {"properties": {f.name: {"type": "string"} for f in contract.fields}}
    assert contract.check_stream_schema(full).ok


# ---------------------------------------------------------------- vendored schemas


def test_vendored_odcs_schemas_are_unmodified() -> None:
    notice = (ODCS_DIR / "NOTICE.md").read_text()
    files = sorted(ODCS_DIR.glob("odcs-json-schema-v*.json"))
    assert [f.name for f in files] == [
        "odcs-json-schema-v3.0.2.json",
        "odcs-json-schema-v3.1.0.json",
        "odcs-json-schema-v3.2.0.json",
    ]
    for file in files:
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        assert f"`{file.name}`" in notice and digest in notice, file.name
