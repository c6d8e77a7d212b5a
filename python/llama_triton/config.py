"""LlamaConfig: the specification's model configuration, stored in a C llt_config."""

import ctypes as C
import difflib
import math

from . import _dtype
from . import _structs as S
from ._lib import fspath, lib
from .errors import InvalidArgumentError

_INTS = ("n_layers", "n_heads", "n_kv_heads", "hidden_size", "intermediate_size", "vocab_size",
         "max_position_embeddings", "head_dim", "rope_original_max_pos", "page_size",
         "max_pages", "bos_token_id", "eos_token_id", "pad_token_id")
_FLOATS = ("rope_freq_base", "rope_freq_scale", "rope_factor", "rope_low_freq_factor",
           "rope_high_freq_factor", "rms_norm_eps")
_DTYPES = ("kv_dtype", "dtype")

# every attribute, in the order of struct llt_config (to_dict / repr / equality)
ATTRIBUTES = ("n_layers", "n_heads", "n_kv_heads", "hidden_size", "intermediate_size",
              "vocab_size", "max_position_embeddings", "head_dim", "rope_freq_base",
              "rope_freq_scale", "rope_scaling", "rope_factor", "rope_low_freq_factor",
              "rope_high_freq_factor", "rope_original_max_pos", "rms_norm_eps", "page_size",
              "max_pages", "kv_dtype", "dtype", "bos_token_id", "eos_token_id", "eos_token_ids",
              "pad_token_id", "tie_weights", "devices")


def _int_attr(field):
    def get(self):
        return getattr(self._c, field)

    def set_(self, v):
        if isinstance(v, bool) or not isinstance(v, int) or not -2**31 <= v < 2**31:
            raise InvalidArgumentError("LlamaConfig.%s: expected an int32, got %r" % (field, v))
        setattr(self._c, field, v)
    return property(get, set_)


def _float_attr(field):
    def get(self):
        return getattr(self._c, field)

    def set_(self, v):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise InvalidArgumentError("LlamaConfig.%s: expected a number, got %r" % (field, v)) from None
        if not math.isfinite(f):
            raise InvalidArgumentError("LlamaConfig.%s: expected a finite number, got %r" % (field, v))
        setattr(self._c, field, f)
    return property(get, set_)


def _dtype_attr(field):
    def get(self):
        return _dtype.name(getattr(self._c, field))

    def set_(self, v):
        setattr(self._c, field, _dtype.code(v, "LlamaConfig." + field))
    return property(get, set_)


class LlamaConfig:
    """Model configuration with the specification's attribute names (plus head_dim,
    rms_norm_eps, dtype and the RoPE-scaling fields of the C config).

    LlamaConfig(**attrs) starts from the library's defaults (llt_config_init) and sets the
    given attributes; unknown names raise TypeError. kv_dtype / dtype read as names ("f16").
    eos_token_ids and devices are lists; setting eos_token_ids also sets eos_token_id."""

    def __init__(self, **attrs):
        self._c = S.Config()
        lib().fn("llt_config_init")(C.byref(self._c))
        for k, v in attrs.items():
            if k not in ATTRIBUTES:
                raise TypeError("LlamaConfig has no attribute %r" % k)
            setattr(self, k, v)

    def __setattr__(self, name, value):
        """Only the configuration's attributes can be set: a typo such as cfg.n_layer = 7
        raises AttributeError naming it instead of being silently kept."""
        if name != "_c" and name not in ATTRIBUTES:
            near = difflib.get_close_matches(name, ATTRIBUTES, n=1)
            raise AttributeError("LlamaConfig has no attribute %r%s" % (
                name, " (did you mean %r?)" % near[0] if near else ""))
        object.__setattr__(self, name, value)

    # --- the C struct ---
    @classmethod
    def _from_c(cls, c_cfg):
        self = cls.__new__(cls)
        self._c = S.Config()
        C.pointer(self._c)[0] = c_cfg  # copies the struct
        return self

    def _ptr(self):
        return C.byref(self._c)

    # --- files ---
    @classmethod
    def from_json(cls, path):
        """Reads model.json (the specification's attribute names) through llt_config_from_json."""
        self = cls.__new__(cls)
        self._c = S.Config()
        lib().call("llt_config_from_json", fspath(path), C.byref(self._c))
        return self

    def to_json(self, path):
        """Writes model.json through llt_config_to_json."""
        lib().call("llt_config_to_json", C.byref(self._c), fspath(path))

    def validate(self):
        """Raises InvalidArgumentError naming the inconsistent field (llt_config_validate)."""
        lib().call("llt_config_validate", C.byref(self._c))
        return self

    # --- list / enum / bool attributes ---
    @property
    def rope_scaling(self):
        v = self._c.rope_scaling
        return S.ROPE_SCALING_NAMES[v] if 0 <= v < len(S.ROPE_SCALING_NAMES) else v

    @rope_scaling.setter
    def rope_scaling(self, v):
        key = "none" if v is None else v
        if key in S.ROPE_SCALING_NAMES:
            self._c.rope_scaling = S.ROPE_SCALING_NAMES.index(key)
        else:
            raise InvalidArgumentError("LlamaConfig.rope_scaling: expected one of %s, got %r"
                                       % (", ".join(S.ROPE_SCALING_NAMES), v))

    @property
    def tie_weights(self):
        return bool(self._c.tie_weights)

    @tie_weights.setter
    def tie_weights(self, v):
        self._c.tie_weights = bool(v)

    @property
    def eos_token_ids(self):
        n = max(0, min(self._c.n_eos, S.MAX_EOS))
        return list(self._c.eos_token_ids[:n])

    @eos_token_ids.setter
    def eos_token_ids(self, ids):
        ids = [ids] if isinstance(ids, int) else list(ids)
        if len(ids) > S.MAX_EOS:
            raise InvalidArgumentError("LlamaConfig.eos_token_ids: at most %d ids, got %d"
                                       % (S.MAX_EOS, len(ids)))
        for i, t in enumerate(ids):
            if isinstance(t, bool) or not isinstance(t, int) or not -2**31 <= t < 2**31:
                raise InvalidArgumentError("LlamaConfig.eos_token_ids[%d]: expected an int32, got %r" % (i, t))
            self._c.eos_token_ids[i] = t
        for i in range(len(ids), S.MAX_EOS):
            self._c.eos_token_ids[i] = 0
        self._c.n_eos = len(ids)
        self._c.eos_token_id = ids[0] if ids else -1

    @property
    def devices(self):
        n = max(0, min(self._c.n_devices, S.MAX_DEVICES))
        return [self._c.devices[i].value.decode("utf-8", "replace") for i in range(n)]

    @devices.setter
    def devices(self, names):
        names = [names] if isinstance(names, str) else list(names or [])
        if len(names) > S.MAX_DEVICES:
            raise InvalidArgumentError("LlamaConfig.devices: at most %d devices, got %d"
                                       % (S.MAX_DEVICES, len(names)))
        raw = []
        for d in names:
            b = str(d).encode()
            if len(b) >= S.DEVICE_NAME_MAX:
                raise InvalidArgumentError("LlamaConfig.devices: name %r longer than %d bytes"
                                           % (d, S.DEVICE_NAME_MAX - 1))
            raw.append(b)
        C.memset(C.addressof(self._c.devices), 0, C.sizeof(self._c.devices))
        for i, b in enumerate(raw):
            self._c.devices[i].value = b
        self._c.n_devices = len(raw)

    # --- value semantics ---
    def to_dict(self):
        return {k: getattr(self, k) for k in ATTRIBUTES}

    def copy(self):
        return LlamaConfig._from_c(self._c)

    def __eq__(self, other):
        if isinstance(other, S.Config):
            other = LlamaConfig._from_c(other)
        if not isinstance(other, LlamaConfig):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # mutable

    def __repr__(self):
        return "LlamaConfig(%s)" % ", ".join("%s=%r" % kv for kv in self.to_dict().items())


for _f in _INTS:
    setattr(LlamaConfig, _f, _int_attr(_f))
for _f in _FLOATS:
    setattr(LlamaConfig, _f, _float_attr(_f))
for _f in _DTYPES:
    setattr(LlamaConfig, _f, _dtype_attr(_f))
