import json

import pytest

from alexnet_lib.files import write_atomically, write_json


def test_a_failed_write_leaves_the_old_file_and_no_stray_one(tmp_path):
    path = tmp_path / "results.json"
    write_json({"epochs": 1}, path)

    def crash(partial):
        partial.write_text('{"epo')  # half written, as when a run is killed mid-write
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, crash)
    assert json.loads(path.read_text()) == {"epochs": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_write_json_makes_the_folder_and_uses_the_project_layout(tmp_path):
    path = write_json({"a": [1, 2]}, tmp_path / "new" / "history.json")
    assert path.read_text() == '{\n "a": [\n  1,\n  2\n ]\n}\n'
