"""LlamaConfig: the specification's attributes over the C llt_config, JSON through the C
reader/writer, equality with the C config of a loaded model."""

import json

import pytest

from conftest import ORACLE, STORIES, needs
import llama_triton as L

SPEC_ATTRS = ["n_layers", "n_heads", "n_kv_heads", "hidden_size", "intermediate_size",
              "vocab_size", "max_position_embeddings", "rope_freq_base", "rope_freq_scale",
              "page_size", "max_pages", "kv_dtype", "bos_token_id", "eos_token_id",
              "pad_token_id", "tie_weights", "devices"]

# a model.json written by hand with the specification's attribute names
MODEL_JSON = {
    "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "hidden_size": 128, "intermediate_size": 344,
    "vocab_size": 512, "max_position_embeddings": 256, "rope_freq_base": 10000.0,
    "rope_freq_scale": 1.0, "page_size": 32, "max_pages": 64, "kv_dtype": "float16",
    "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "tie_weights": True,
    "devices": ["cuda:0", "cuda:1"], "rms_norm_eps": 1e-06,
}


@needs("llt_config_init")
def test_defaults_of_an_empty_config():
    c = L.LlamaConfig()
    for a in SPEC_ATTRS + ["head_dim", "rms_norm_eps", "dtype", "eos_token_ids", "rope_scaling"]:
        getattr(c, a)
    # the header's documented defaults
    assert c.page_size == 16 and c.rope_freq_base == 10000.0
    assert c.rms_norm_eps == pytest.approx(1e-5, rel=1e-6)
    assert c.bos_token_id == -1 and c.eos_token_id == -1 and c.pad_token_id == -1
    assert c.devices == [] and c.eos_token_ids == []


@needs("llt_config_init", "llt_dtype_from_name")
def test_attributes_set_and_read_back():
    c = L.LlamaConfig(n_layers=3, hidden_size=96, kv_dtype="bfloat16", tie_weights=1,
                      devices=["cuda:0", "cuda:1"], eos_token_ids=[2, 7], rope_scaling="llama3",
                      rope_freq_base=5e5)
    assert (c.n_layers, c.hidden_size, c.kv_dtype, c.tie_weights) == (3, 96, "bf16", True)
    assert c.devices == ["cuda:0", "cuda:1"] and c.eos_token_ids == [2, 7] and c.eos_token_id == 2
    assert c.rope_scaling == "llama3" and c.rope_freq_base == 5e5
    c.devices = "cpu"
    c.eos_token_ids = 5
    c.kv_dtype = "f32"
    c.rope_scaling = None
    assert c.devices == ["cpu"] and c.eos_token_ids == [5] and c.kv_dtype == "f32"
    assert c.rope_scaling == "none"
    c.eos_token_ids = []
    assert c.eos_token_id == -1 and c.eos_token_ids == []


@needs("llt_config_init", "llt_dtype_from_name")
@pytest.mark.parametrize("attr,value", [
    ("n_layers", 2.5), ("n_layers", 2 ** 31), ("n_layers", True), ("n_heads", "4"),
    ("rope_freq_base", "x"), ("rope_freq_base", float("nan")), ("kv_dtype", "float128"),
    ("kv_dtype", 99), ("kv_dtype", True), ("kv_dtype", 3.5), ("rope_scaling", "yarn"),
    ("devices", ["c" * 16]), ("devices", ["cpu"] * 17), ("eos_token_ids", list(range(9))),
    ("eos_token_ids", [1.5]),
])
def test_bad_attribute_values_raise(attr, value):
    c = L.LlamaConfig()
    with pytest.raises(L.InvalidArgumentError, match=attr):
        setattr(c, attr, value)


@needs("llt_config_init")
def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="n_layer"):
        L.LlamaConfig(n_layer=2)


@needs("llt_config_init", "llt_config_from_json", "llt_config_to_json")
def test_from_json_reads_the_specification_names(tmp_path):
    p = tmp_path / "model.json"
    p.write_text(json.dumps(dict(MODEL_JSON, unknown_key={"ignored": [1, 2]})))
    c = L.LlamaConfig.from_json(p)
    for k, v in MODEL_JSON.items():
        got = getattr(c, k)
        if k == "kv_dtype":
            assert got == "f16"
        elif isinstance(v, float):
            assert got == pytest.approx(v, rel=1e-6), k
        else:
            assert got == v, k
    assert c.head_dim == 32  # hidden_size / n_heads when the file does not say


@needs("llt_config_init", "llt_config_from_json", "llt_config_to_json")
def test_to_json_round_trip_and_names(tmp_path):
    c = L.LlamaConfig(**{k: v for k, v in MODEL_JSON.items()})
    c.head_dim = 32
    p = tmp_path / "out" / "model.json"
    p.parent.mkdir()
    c.to_json(p)
    written = json.loads(p.read_text())
    for k in SPEC_ATTRS:
        assert k in written, k
    assert written["n_layers"] == 2 and written["devices"] == ["cuda:0", "cuda:1"]
    assert written["tie_weights"] is True
    back = L.LlamaConfig.from_json(p)
    assert back == c and not (back != c)
    back.n_layers = 3
    assert back != c


@needs("llt_config_init", "llt_config_from_json")
def test_from_json_errors(tmp_path):
    with pytest.raises(L.FileError, match="absent.json"):
        L.LlamaConfig.from_json(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"n_layers": 2, ')
    with pytest.raises(L.FormatError, match="bad.json"):
        L.LlamaConfig.from_json(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"n_layers": "two"}')
    with pytest.raises(L.LlamaTritonError, match="n_layers"):
        L.LlamaConfig.from_json(wrong)


@needs("llt_config_init", "llt_config_to_json")
def test_to_json_to_an_unwritable_path(tmp_path):
    with pytest.raises(L.FileError):
        L.LlamaConfig(n_layers=1).to_json(tmp_path / "no" / "such" / "dir" / "model.json")


@needs("llt_config_init", "llt_config_validate")
def test_validate_names_the_field():
    ok = L.LlamaConfig(**{k: v for k, v in MODEL_JSON.items() if k != "devices"})
    ok.head_dim = 32
    assert ok.validate() is ok
    bad = ok.copy()
    bad.n_kv_heads = 3  # 4 query heads are not a multiple of 3 KV heads
    with pytest.raises(L.InvalidArgumentError, match="n_kv_heads"):
        bad.validate()


@needs("llt_config_init")
def test_value_semantics():
    a = L.LlamaConfig(n_layers=2)
    b = a.copy()
    assert a == b and a == b._c and a.to_dict() == b.to_dict()
    b.n_layers = 4
    assert a.n_layers == 2 and a != b
    assert (a == "x") is False and a.__eq__(3) is NotImplemented
    with pytest.raises(TypeError):
        hash(a)
    assert repr(a).startswith("LlamaConfig(n_layers=2,")


@needs("llt_config_init", "llt_model_load", "llt_model_config")
def test_equal_to_the_c_config_of_a_loaded_model(tmp_path):
    with L.LlamaTritonModel(STORIES) as m:
        c = m.config
    # stories260K's metadata (tests/fixtures/README.md)
    assert (c.hidden_size, c.intermediate_size, c.n_layers, c.n_heads, c.n_kv_heads) == (64, 172, 5, 8, 4)
    assert (c.vocab_size, c.head_dim, c.rope_freq_base) == (512, 8, 10000.0)
    assert c.rms_norm_eps == pytest.approx(1e-5, rel=1e-6)
    p = tmp_path / "model.json"
    c.to_json(p)
    assert L.LlamaConfig.from_json(p) == c


@needs("llt_config_init", "llt_model_load", "llt_model_config")
def test_hf_config_fields(tmp_path):
    hf = json.loads((ORACLE / "tiny-llama3" / "hf" / "config.json").read_text())
    with L.LlamaTritonModel(ORACLE / "tiny-llama3" / "hf", fmt="hf", no_cache=True) as m:
        c = m.config
    assert c.hidden_size == hf["hidden_size"] and c.n_kv_heads == hf["num_key_value_heads"]
    assert c.rope_freq_base == hf["rope_theta"] and c.rope_scaling == "llama3"
    assert c.rope_factor == hf["rope_scaling"]["factor"] and c.tie_weights is True
    assert c.rms_norm_eps == pytest.approx(hf["rms_norm_eps"], rel=1e-6)
