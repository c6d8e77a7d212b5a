"""C statuses become the matching Python exceptions, carrying the C message and status."""

import pytest

from conftest import needs
import llama_triton as L
from llama_triton.errors import STATUS_NAMES, error_for_status


@pytest.mark.parametrize("status,cls,also", [
    (1, L.InvalidArgumentError, ValueError),
    (2, L.FileError, OSError),
    (3, L.FormatError, L.LlamaTritonError),
    (4, L.UnsupportedError, L.LlamaTritonError),
    (5, L.OutOfMemoryError, MemoryError),
    (6, L.CacheFullError, L.LlamaTritonError),
    (7, L.StateError, L.LlamaTritonError),
    (8, L.DeviceError, L.LlamaTritonError),
    (9, L.NotFoundError, LookupError),
    (10, L.CancelledError, L.LlamaTritonError),
])
def test_status_maps_to_class(status, cls, also):
    e = error_for_status(status, "file.gguf: field x: expected 1, got 2")
    assert type(e) is cls and isinstance(e, also) and isinstance(e, L.LlamaTritonError)
    assert e.status == status and e.status_name == STATUS_NAMES[status]
    assert str(e) == e.message == "file.gguf: field x: expected 1, got 2"


def test_unknown_status_and_empty_message():
    e = error_for_status(99, "")
    assert type(e) is L.LlamaTritonError and e.status == 99 and e.status_name is None
    assert str(e) == "status 99"


def test_status_names_match_the_library():
    assert L.status_str(0) == "ok"
    assert L.status_str(6) == "KV pool full"
    assert L.status_str(1000) == "unknown status"


@needs("llt_config_from_json")
def test_c_message_reaches_python(tmp_path):
    with pytest.raises(L.FileError) as ei:
        L.LlamaConfig.from_json(tmp_path / "absent.json")
    assert ei.value.status == 2 and "absent.json" in str(ei.value)
