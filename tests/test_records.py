import dataclasses
import json

import pytest

from builder.errors import RecordError
from builder.records import PARTS, current_hashes, lookup, read_record, record_path, stale_parts, write_record
from builder.seeds import load_problem
from tests.recordfactory import make_record


@pytest.fixture
def problem(seed_copy):
    return load_problem(seed_copy / "avgpool1d")


def test_write_then_read_round_trip(problem, tmp_path):
    record = make_record(problem)
    path = write_record(record, tmp_path)
    assert path == record_path("h100_sxm", "avgpool1d", "seed", tmp_path)
    assert read_record(path) == record
    assert not list(path.parent.glob("*.tmp"))


def test_record_is_frozen(problem):
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_record(problem).gbps = 1.0


def test_fresh_record_is_found(problem, tmp_path):
    write_record(make_record(problem), tmp_path)
    state, record = lookup(problem, "seed", "h100_sxm", tmp_path)
    assert state == "fresh" and record.timing["median_ms"] == 2.0


def test_missing_record(problem, tmp_path):
    assert lookup(problem, "seed", "h100_sxm", tmp_path) == ("missing", None)


@pytest.mark.parametrize("changed", ["kernel.py", "reference.py"])
def test_editing_the_code_or_the_reference_makes_every_part_stale(problem, tmp_path, changed):
    record = make_record(problem)
    write_record(record, tmp_path)
    path = problem.dir / changed
    path.write_text(path.read_text() + "\n# edited\n")
    reloaded = load_problem(problem.dir)
    assert lookup(reloaded, "seed", "h100_sxm", tmp_path) == ("stale", None)
    assert stale_parts(reloaded, record) == PARTS


def edit_manifest(problem, old, new):
    path = problem.dir / "manifest.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return load_problem(problem.dir)


def test_a_comment_in_the_manifest_stales_nothing(problem, tmp_path):
    record = make_record(problem)
    write_record(record, tmp_path)
    reloaded = edit_manifest(problem, "[benchmark]", "# a note\n[benchmark]")
    assert reloaded.manifest_sha256 != problem.manifest_sha256
    assert lookup(reloaded, "seed", "h100_sxm", tmp_path)[0] == "fresh"


def test_a_new_case_stales_only_the_verification(problem, tmp_path):
    record = make_record(problem)
    reloaded = edit_manifest(problem, "[[cases]]", '[[cases]]\nname = "added"\ninit = { kernel_size = 3 }\n'
                                                   'shape = [1, 1, 9]\n\n[[cases]]')
    assert stale_parts(reloaded, record) == {"verification"}
    write_record(record, tmp_path)
    assert lookup(reloaded, "seed", "h100_sxm", tmp_path) == ("stale", None)


def test_a_changed_benchmark_stales_every_part(problem):
    record = make_record(problem)
    reloaded = edit_manifest(problem, "shape = [64, 128, 65536]", "shape = [64, 128, 32768]")
    assert stale_parts(reloaded, record) == PARTS


def test_a_record_older_than_the_split_hashes_is_fresh_while_the_manifest_is_unchanged(problem):
    old = make_record(problem, benchmark_sha256="", checks_sha256="")
    assert stale_parts(problem, old) == frozenset()
    reloaded = edit_manifest(problem, "[benchmark]", "# a note\n[benchmark]")
    assert stale_parts(reloaded, old) == PARTS


def test_hashes_are_sha256_of_file_bytes(problem):
    import hashlib

    hashes = current_hashes(problem, "seed")
    assert hashes["code_sha256"] == hashlib.sha256(problem.kernel_path.read_bytes()).hexdigest()
    assert hashes["manifest_sha256"] == hashlib.sha256((problem.dir / "manifest.toml").read_bytes()).hexdigest()


def test_malformed_record_is_an_error_naming_the_field(problem, tmp_path):
    path = write_record(make_record(problem), tmp_path)
    data = json.loads(path.read_text())
    del data["timing"]["median_ms"]
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match="timing: missing required field 'median_ms'"):
        read_record(path)


def test_unknown_stage_label_is_an_error(problem):
    with pytest.raises(RecordError, match="no solution for stage 'nonsense'"):
        current_hashes(problem, "nonsense")
