"""schema/ember.fbs is the one definition of the format: the C op list, the serializer's
option tables, the generated Python code and the reference ops must all agree with it."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import ember
from ember.converter import reference_ops, serialize

ROOT = Path(__file__).resolve().parents[1]
FBS = (ROOT / "schema" / "ember.fbs").read_text()


def _enum(name):
    body = re.search(r"enum %s : \w+ \{(.*?)\}" % name, FBS, re.S).group(1)
    body = re.sub(r"//.*", "", body)
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"(\w+)\s*=\s*(\d+)", body)}


def _table(name):
    body = re.search(r"table %s \{(.*?)\}" % name, FBS, re.S).group(1)
    body = re.sub(r"//.*", "", body)
    return [(m.group(1), m.group(2)) for m in re.finditer(r"(\w+)\s*:\s*(\[?\w+\]?)", body)]


def test_opcodes_agree_everywhere():
    schema = _enum("OpCode")
    assert sorted(schema.values()) == list(range(len(schema)))
    ops_def = {m.group(2): int(m.group(1))
               for m in re.finditer(r"EMBER_OP\((\d+), (\w+), \w+\)", (ROOT / "kernels_c/ops.def").read_text())}
    assert ops_def == schema
    assert serialize.OPCODES == schema
    assert ember.interpreter.supported_ops() == sorted(schema, key=schema.get)
    assert set(reference_ops.OPS) == set(schema)


def test_option_tables_match_the_schema():
    kinds = {"int": "int", "float": "float", "bool": "bool", "[int]": "int[]", "[long]": "long[]",
             "[float]": "float[]"}
    for table, fields in serialize.OPTION_TABLES.items():
        declared = [(n, kinds.get(t, t)) for n, t in _table(table)]
        assert declared == list(fields.items()), table
    union = re.search(r"union Options \{(.*?)\}", FBS, re.S).group(1)
    assert [u.strip() for u in union.split(",") if u.strip()] == list(serialize.OPTION_TABLES)


def test_dtypes_match_the_c_header():
    header = (ROOT / "interpreter/include/ember.h").read_text()
    c_types = {m.group(1).lower(): int(m.group(2)) for m in re.finditer(r"EMBER_(\w+) = (\d+),", header)
               if m.group(1) in {"FLOAT32", "FLOAT16", "INT8", "UINT8", "INT16", "INT32", "INT64", "BOOL"}}
    assert {k.lower(): v for k, v in _enum("DType").items()} == c_types == serialize.DTYPE_CODES


def test_generated_python_is_up_to_date(tmp_path):
    if shutil.which("flatc") is None:
        if os.environ.get("CI"):
            pytest.fail("flatc is needed to check the generated code (apt-get install flatbuffers-compiler)")
        pytest.skip("flatc not installed")
    subprocess.run(["flatc", "--python", "-o", str(tmp_path), str(ROOT / "schema/ember.fbs")], check=True)
    generated = tmp_path / "ember/converter/schema_fb"
    committed = ROOT / "converter/schema_fb"
    names = sorted(p.name for p in generated.glob("*.py"))
    assert names == sorted(p.name for p in committed.glob("*.py"))
    for name in names:
        assert (generated / name).read_text() == (committed / name).read_text(), (
            f"{name} is stale: run schema/generate.sh")
