"""The torch-free catalogue of primitives says what the registry says."""
import pytest

from einsearch.ops import catalogue, list_ops
from einsearch.ops.info import OpInfo


def test_the_catalogue_matches_the_registry_field_by_field(tmp_path, monkeypatch):
    monkeypatch.setenv("EINSEARCH_MEMO", str(tmp_path))
    monkeypatch.setattr(catalogue, "_MEMO", catalogue.DiskMemo("ops"))
    catalogue.catalogue.cache_clear()
    try:
        built = catalogue.catalogue()
        catalogue._MEMO.save()
        catalogue.catalogue.cache_clear()
        monkeypatch.setattr(catalogue, "_MEMO", catalogue.DiskMemo("ops"))
        monkeypatch.setattr(catalogue, "_built_in", lambda: pytest.fail("not read from disk"))
        read_back = catalogue.catalogue()
    finally:
        catalogue.catalogue.cache_clear()
    specs = {spec.name: spec for spec in list_ops()}
    assert set(read_back) == set(built) == set(specs) and len(specs) > 30
    for name, info in read_back.items():
        assert type(info) is OpInfo
        assert info == OpInfo(**{f: getattr(specs[name], f) for f in OpInfo.__dataclass_fields__}), name
        assert info.resolve({}) == specs[name].resolve({})


def test_lookups_defer_to_the_live_registry_and_refuse_unknown_names():
    from einsearch.ops.registry import get_op

    assert catalogue.op_info("attention") is get_op("attention")  # the registry is loaded in this process
    assert [i.name for i in catalogue.op_infos("ffn")] == [s.name for s in list_ops("ffn")]
    with pytest.raises(KeyError, match="unknown primitive 'nosuch'"):
        catalogue.op_info("nosuch")
