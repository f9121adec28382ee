"""The device-model catalogue is data that is checked: a bad entry fails loading (never an uplink),
the README lists exactly what it holds, and the small path language reads what it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime.management.commands.sensor_models import table
from realtime.ttn import catalogue
from realtime.ttn.catalogue import CatalogueError, _model
from realtime.ttn.paths import PathError, compile_path, find

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_lists_exactly_the_catalogued_models():
    text = README.read_text()
    listed = text.split("<!-- sensor-models:begin -->\n", 1)[1].split("\n<!-- sensor-models:end -->", 1)[0]
    assert listed == table(), "run `manage.py sensor_models` and paste its table into the README"


def test_every_catalogue_file_loads():
    assert len(catalogue.models()) >= 25
    assert catalogue.lookup("Dragino", "LHT65").temperature == "TempC_DS"  # ids compared in lower case
    assert catalogue.lookup("dragino", None) is None


@pytest.mark.parametrize(
    "entry,words",
    [
        ({"name": "x"}, "needs temperature"),
        ({"temperature": "t", "channels": ["a", "b"]}, "exclude each other"),
        ({"temperature": "t", "unit": "celsius"}, "unit must be"),
        ({"temperature": "t", "unit": "unknown"}, "unit_note"),
        ({"temperature": "t[", "unit": "C"}, "temperature"),
        ({"temperature": "t", "battery": "b"}, "battery_unit"),
        ({"temperature": "t", "range": [5, -5]}, "range"),
        ({"temperature": "t", "colour": "blue"}, "unknown keys"),
        ({"temperature": "t", "readings": {"path": "h[*]", "temperature": "t"}}, "exactly one of time"),
        ({"temperature": "t", "time": "ts", "time_format": "julian"}, "time_format"),
    ],
)
def test_a_bad_entry_is_refused_when_loaded(entry, words):
    with pytest.raises(CatalogueError, match=words):
        _model("acme", "x1", entry)


def test_paths_reach_keys_indexes_every_element_and_filtered_elements():
    data = {"a": {"b": [{"id": 1, "v": 10}, {"id": 2, "v": 20}]}, "m": [[{"k": "x", "v": 1}], [{"k": "y", "v": 2}]]}
    assert find(data, "a.b[1].v") == [20]
    assert find(data, "a.b[*].v") == [10, 20]
    assert find(data, "a.b[?id=2].v") == [20]
    assert find(data, "m[*][?k=y].v") == [2]
    assert find(data, "a.c") == [] and find(data, "a.b[5]") == []
    for bad in ("", "a..b", "[0]", "a[x]", "a[?=1]"):
        with pytest.raises(PathError):
            compile_path(bad)
