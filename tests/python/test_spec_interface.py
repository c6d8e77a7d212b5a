"""The specification's own text, run as written (issue 12).

tests/fixtures/spec/ holds the specification's README and API document (Chinese, copied from
../shared/spec). Every command and code block of the README runs verbatim from a working
folder laid out as the README assumes (./models/..., ./hf-ckpt), with `python`, `pip` and
`pytest` meaning this interpreter; every signature of the API document is compared with ours
(names, order, defaults), and every class and kernel it lists is called with torch tensors
and checked against references nobody here wrote (HF transformers' logits, known tokenizer
ids, torch's own arithmetic).

Device: the specification's default 'cuda'. On a machine without a GPU the library falls back
to the CPU with a warning (checked); on the GPU machine the same tests run on the GPU with CUDA
tensors (tests/gpu/run.sh spec), results must stay there and match within the GPU tolerance."""

import ast
import inspect
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from conftest import FIXTURES, LLAMA2_TOK, ORACLE, REPO, STORIES, read_safetensors

import llama_triton as L

import torch  # noqa: E402  python3-torch is installed by `make deps`

SPEC = FIXTURES / "spec"
GPU = L.cuda_device_count() > 0 and torch.cuda.is_available()
DEV = "cuda:0" if GPU else "cpu"
TOL = 2e-2 if GPU else 1e-4  # relative to the largest reference magnitude (DESIGN.md)


def _close(got, ref, tol=TOL):
    got = got.detach().to("cpu", torch.float64)
    ref = ref.to(torch.float64) if isinstance(ref, torch.Tensor) else torch.tensor(ref.tolist(), dtype=torch.float64)
    err = (got - ref).abs().max().item()
    assert err <= tol * ref.abs().max().item(), "max error %g, allowed %g" % (err, tol * ref.abs().max().item())


def _fallback_warned(record):
    """On a CPU-only machine the default device='cuda' must have warned; on a GPU it must not."""
    warned = any("no CUDA device" in str(w.message) for w in record)
    assert warned == (not GPU)


# ---- the specification's text ----------------------------------------------------------------

def test_spec_copy_is_the_specification():
    shared = REPO.parent / "shared" / "spec"
    for name in ("readme.md", "api.md"):
        if (shared / name).is_file():  # CI has ../shared beside the clone
            assert (SPEC / name).read_bytes() == (shared / name).read_bytes(), name


def _bash_commands():
    """Every command of the README: the ```bash blocks' lines and the inline `python -m ...`."""
    text = (SPEC / "readme.md").read_text(encoding="utf-8")
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                cmds.append(line)
    cmds += re.findall(r"`(python -m [^`]+)`", text)
    return cmds


def _python_blocks():
    text = (SPEC / "readme.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.S)


# What each README command is here (the README section "The specification's interface" says
# the same). RUN: run verbatim. FIXTURE: stands for fetching a checkpoint (no network in CI):
# the working folder gets a fixture instead. NOT_OURS: sets up a conda environment the
# package does not need, or installs an optional package we do not use.
RUN, FIXTURE, NOT_OURS = "run", "fixture", "not ours"


def _kind(cmd):
    if cmd.startswith(("python main.py", "python -m utils.hf_import", "pip install -r", "pytest")):
        return RUN
    if cmd.startswith("huggingface-cli download"):
        return FIXTURE
    if cmd.startswith(("conda ", "pip install safetensors")):
        return NOT_OURS
    return None


def test_every_readme_command_is_accounted_for():
    cmds = _bash_commands()
    assert len(cmds) >= 9
    unmapped = [c for c in cmds if _kind(c) is None]
    assert not unmapped, unmapped


# ---- the working folder the README assumes ----------------------------------------------------

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """./models/llama2-7b (stories260K through scripts/convert_gguf.py), ./hf-ckpt (the HF
    oracle tiny-llama2, standing for the downloaded checkpoint, with stories260K's 512-piece
    tokenizer.model: same vocabulary size), ./models/llama-3.2-3b (tiny-llama2 through
    utils.hf_import --out, same tokenizer), main.py linked to the repository's, and a bin/
    where python, pip and pytest are this interpreter."""
    w = tmp_path_factory.mktemp("spec")
    bindir = w / "bin"
    bindir.mkdir()
    for name, args in (("python", ""), ("pip", " -m pip"), ("pytest", " -m pytest")):
        (bindir / name).write_text('#!/bin/sh\nexec "%s"%s "$@"\n' % (sys.executable, args))
        (bindir / name).chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ.get("PATH", "")),
               PYTHONPATH=str(REPO), PIP_BREAK_SYSTEM_PACKAGES="1", PIP_NO_INDEX="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONIOENCODING="utf-8")
    run = lambda cmd, cwd=w: subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True,  # noqa: E731
                                            text=True, timeout=300)
    r = run("python %s %s models/llama2-7b" % (REPO / "scripts" / "convert_gguf.py", STORIES))
    assert r.returncode == 0, r.stderr
    tok = w / "models" / "llama2-7b" / "tokenizer.model"
    shutil.copytree(ORACLE / "tiny-llama2" / "hf", w / "hf-ckpt")
    shutil.copy(tok, w / "hf-ckpt")
    shutil.copytree(ORACLE / "tiny-llama2" / "hf", w / "llama2-hf")
    r = run("python -m utils.hf_import llama2-hf --out models/llama-3.2-3b")
    assert r.returncode == 0, r.stderr
    shutil.copy(tok, w / "models" / "llama-3.2-3b")
    (w / "main.py").symlink_to(REPO / "main.py")  # `python main.py` as from the repository root
    return w, env, run


def test_readme_commands_run_verbatim(workdir):
    w, env, run = workdir
    for cmd in _bash_commands():
        kind = _kind(cmd)
        if kind != RUN:
            continue
        cwd = REPO if cmd.startswith(("pip install -r", "pytest")) else w
        if cmd.startswith("pytest"):  # the whole suite from inside it: collect it only
            env["PYTEST_ADDOPTS"] = "--collect-only -p no:cacheprovider"
        r = run(cmd, cwd)
        env.pop("PYTEST_ADDOPTS", None)
        assert r.returncode == 0, (cmd, r.stdout, r.stderr)
        if cmd.startswith("python main.py"):
            # the specification's terminal output: "› " then the generated text
            assert r.stdout.startswith("\u203a ") and r.stdout.endswith("\n"), r.stdout
            n = int(re.search(r"generation: (\d+) tokens", r.stderr).group(1))
            assert 1 <= n <= 16, r.stderr
            assert ("no CUDA device" in r.stderr) == (not GPU)
        elif cmd.startswith("python -m utils.hf_import"):
            sd = torch.load(w / "hf-ckpt" / "state_dict.pt")
            assert {v.dtype for v in sd.values()} == {torch.bfloat16}
            assert L.LlamaConfig.from_json(w / "hf-ckpt" / "model.json").dtype == "bf16"
        elif cmd.startswith("pytest"):
            assert "test_spec_interface.py" in r.stdout and "tests collected" in r.stdout


def test_readme_python_block_runs_verbatim(workdir):
    w, env, run = workdir
    blocks = _python_blocks()
    assert len(blocks) == 1
    (w / "hf-ckpt" / "state_dict.pt").unlink(missing_ok=True)  # fmt="hf" converts and caches
    (w / "hf-ckpt" / "model.json").unlink(missing_ok=True)
    (w / "api_block.py").write_text(blocks[0], encoding="utf-8")
    r = run("python api_block.py")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert len(lines) >= 3 and all(isinstance(x, str) for x in lines)
    assert ("no CUDA device" in r.stderr) == (not GPU)
    # dtype="bfloat16": the Hugging Face conversion was cached in bfloat16
    sd = torch.load(w / "hf-ckpt" / "state_dict.pt")
    assert {v.dtype for v in sd.values()} == {torch.bfloat16}


def test_gguf_converter_output_loads_in_torch(workdir):
    w, _, _ = workdir
    sd = torch.load(w / "models" / "llama2-7b" / "state_dict.pt")
    assert sd["tok_embeddings.weight"].shape == (512, 64)
    assert sd["layers.4.feed_forward.w2.weight"].shape == (64, 172)


# ---- the API document: signatures -------------------------------------------------------------

def _split_params(s):
    out, depth, cur = [], 0, ""
    for ch in s:
        depth += ch in "[(" and 1 or ch in "])" and -1 or 0
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _documented():
    """[(owner, name, [(param, default or inspect._empty)])] of every signature in api.md."""
    owner, sigs = None, []
    for line in (SPEC / "api.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"## \d+\. (\w+)", line)
        if m:
            owner = m.group(1)
            continue
        m = re.search(r"`(?:class )?(\w+)\((.*?)\)(?: -> [^`]+)?`", line)
        if not m:
            continue
        params = []
        for p in _split_params(m.group(2)):
            name, _, default = p.partition("=")
            params.append((name.split(":")[0].strip(),
                           ast.literal_eval(default.strip()) if default else inspect.Parameter.empty))
        sigs.append((owner, m.group(1), params))
    return sigs


def _ours(owner, name):
    from api import inference
    if owner == "Triton":  # "## 6. Triton Kernels": functions
        return getattr(inference, name)
    cls = getattr(inference, owner)
    return cls if name == owner else getattr(cls, name)


def test_signatures_are_the_api_documents():
    sigs = _documented()
    assert len(sigs) == 17, [s[1] for s in sigs]
    for owner, name, params in sigs:
        ps = [p for p in inspect.signature(_ours(owner, name)).parameters.values() if p.name != "self"]
        assert [p.name for p in ps[:len(params)]] == [n for n, _ in params], (owner, name)
        for (n, default), p in zip(params, ps):
            assert p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY), (name, n)
            if default is not inspect.Parameter.empty:
                assert p.default == default, (owner, name, n)
            else:  # documented without a default: required, or an optional None of ours
                assert p.default in (inspect.Parameter.empty, None), (owner, name, n)
        for p in ps[len(params):]:  # our extras come after, keyword-only or defaulted
            assert p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) or p.default is not p.empty, (name, p)


def test_config_has_every_documented_attribute(tmp_path):
    from graph.config import LlamaConfig
    text = (SPEC / "api.md").read_text(encoding="utf-8")
    sec = text[text.index("## 2. LlamaConfig"):text.index("## 3.")]
    names = re.findall(r"^- `(\w+)`", sec, re.M)
    assert len(names) == 17
    cfg = LlamaConfig.from_json(_native_tiny_llama2(tmp_path) / "model.json")
    for n in names:
        getattr(cfg, n)
    cfg.devices = ["cuda:0", "cuda:1"]
    cfg.to_json(tmp_path / "again.json")
    assert LlamaConfig.from_json(tmp_path / "again.json") == cfg


# ---- the API document: each class and kernel with torch tensors --------------------------------

def _native_tiny_llama2(tmp_path):
    out = tmp_path / "native-llama2"
    if not (out / "model.json").exists():
        L.convert(ORACLE / "tiny-llama2" / "hf", out, fmt="hf")
    return out


def _oracle(name="tiny-llama2"):
    ref, _ = read_safetensors(ORACLE / name / "reference.safetensors")
    return ref


@pytest.mark.parametrize("id_dtype", [torch.int64, torch.int32, torch.int16])
def test_model_from_config_and_state_dict_matches_hf(tmp_path, id_dtype):
    from api.inference import LlamaConfig, LlamaTritonModel
    native = _native_tiny_llama2(tmp_path)
    cfg = LlamaConfig.from_json(native / "model.json")
    ref = _oracle()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = LlamaTritonModel(cfg)  # device='cuda' by default
    _fallback_warned(record)
    model.load_state_dict(torch.load(native / "state_dict.pt"))  # a torch state dict
    ids = torch.tensor(ref["input_ids"].tolist(), dtype=id_dtype, device=DEV)
    logits = model.forward(ids)
    assert isinstance(logits, torch.Tensor) and logits.dtype == torch.float32
    assert logits.device.type == ("cuda" if GPU else "cpu")
    _close(logits, ref["logits"])
    batch = model(torch.stack([ids[:5], ids[:5]]))
    assert batch.shape == (2, 5, 512)
    _close(batch[1], ref["logits"][:5])
    model.load_state_dict(native / "state_dict.pt")  # our native file
    _close(model.forward(ids), ref["logits"])
    model.close()


def test_generator_device_is_the_second_argument():
    from api.inference import LlamaGenerator
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        gen = LlamaGenerator(STORIES, "cuda")
    _fallback_warned(record)
    with gen:
        text = gen.generate("Once upon a time", max_new_tokens=8, temperature=0.0)
        assert isinstance(text, str) and text
    if not GPU:  # the fallback is the CPU backend itself: the same greedy text
        with L.LlamaGenerator(STORIES, "cpu") as g2:
            assert g2.generate("Once upon a time", max_new_tokens=8, temperature=0.0) == text


def test_tokenizer_model_path_and_known_ids():
    from api.inference import SentencePieceTokenizer
    tok = SentencePieceTokenizer(model_path=str(LLAMA2_TOK))
    ids = tok.encode("I believe the meaning of life is", add_bos=True, add_eos=False)
    assert ids == [1, 306, 4658, 278, 6593, 310, 2834, 338]
    assert tok.decode(torch.tensor(ids, device=DEV)) == "I believe the meaning of life is"
    assert tok.encode("I", add_bos=False, add_eos=True) == [306, 2]


@pytest.mark.parametrize("kv_dtype", ["bf16", "f16"])
def test_page_kv_cache_pages_go_into_page_attention(kv_dtype):
    from api.inference import LlamaConfig, PageKVCache, page_attention
    cfg = LlamaConfig(n_layers=2, n_heads=4, n_kv_heads=2, hidden_size=128, max_position_embeddings=64,
                      page_size=4, kv_dtype=kv_dtype)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        cache = PageKVCache(cfg)  # device='cuda' by default
    _fallback_warned(record)
    g = torch.Generator().manual_seed(3)
    T, nkv, hd = 11, 2, 32
    ks = [torch.randn(T, nkv, hd, generator=g).to(DEV) for _ in range(2)]
    vs = [torch.randn(T, nkv, hd, generator=g).to(DEV) for _ in range(2)]
    for t in range(T):  # one token at a time, layers in order, as a decoder writes them
        for layer in range(2):
            cache.allocate(layer, ks[layer][t:t + 1], vs[layer][t:t + 1])
    want = torch.bfloat16 if kv_dtype == "bf16" else torch.float16
    q = torch.randn(4, hd, generator=g).to(DEV)
    for layer in range(2):
        K, V = cache.get_kv_pages(layer, DEV)
        pages = cache.get_kv_pages(layer, DEV)
        assert K.dtype == want and K.device.type == ("cuda" if GPU else "cpu")
        assert K.shape[1:] == (4, nkv, hd)
        for pos in range(T):  # the documented layout: K[block_table[pos // page_size], pos % page_size]
            row = K[pages.block_table[pos // 4], pos % 4]
            assert torch.equal(row.cpu(), ks[layer][pos].to(want).cpu())
        out = page_attention(q, (K, V))  # the specification's pair, as it is
        assert out.device.type == ("cuda" if GPU else "cpu")
        assert torch.equal(out, page_attention(q, pages))
        kk = ks[layer].to(want).double().cpu()
        vv = vs[layer].to(want).double().cpu()
        ref = torch.empty(4, hd, dtype=torch.float64)
        for h in range(4):  # query head h reads KV head h // 2 (grouped-query attention)
            w = torch.softmax(kk[:, h // 2] @ q[h].double().cpu() / hd ** 0.5, 0)
            ref[h] = w @ vv[:, h // 2]
        _close(out.float(), ref, 2e-2 if GPU else 1e-5)
    cache.close()


def test_model_cache_pages_go_into_page_attention(tmp_path):
    """The model's own cache (on the GPU for a CUDA model: copied device to device, since its
    pools die with the model) after decoding: page_attention over it equals softmax
    attention recomputed by torch from the same keys and values."""
    from api.inference import page_attention
    ref = _oracle()
    with L.LlamaTritonModel(_native_tiny_llama2(tmp_path), "cuda" if GPU else "cpu", max_seqs=2) as m:
        cache = m.kv_cache
        s = cache.new_sequence()
        m.decode(ref["input_ids"][:9].tolist(), [s] * 9)
        pages = cache.get_kv_pages(1, DEV, seq=s)
        K, V = pages
        assert K.device.type == ("cuda" if GPU else "cpu") and pages.seq_len == 9
        k, v = pages.contiguous()  # [9, 2, 32] float32
        q = torch.randn(4, 32, generator=torch.Generator().manual_seed(4)).to(DEV)
        out = page_attention(q, (K, V))
        assert out.device == q.device
        want = torch.empty(4, 32, dtype=torch.float64)
        for h in range(4):
            w = torch.softmax(k[:, h // 2].double().cpu() @ q[h].double().cpu() / 32 ** 0.5, 0)
            want[h] = w @ v[:, h // 2].double().cpu()
        _close(out.float(), want, 2e-2 if GPU else 1e-5)


def test_torch_pools_run_the_storage_hooks_on_the_cpu():
    """The pools device='cuda' puts in torch memory, here on the CPU: same pages as host
    pools (rows converted by torch on the pools' device = rows converted by C), zero-copy
    views, copy-on-write after fork."""
    cfg = L.LlamaConfig(n_layers=1, n_heads=2, n_kv_heads=1, hidden_size=16, max_position_embeddings=8,
                        page_size=2, kv_dtype="bf16")
    host = L.PageKVCache(cfg, "cpu", max_seqs=2)
    tp = L.PageKVCache._with_torch_pools(cfg, "cpu", max_seqs=2)
    writers, make_writer = [], tp._pools.writer
    tp._pools.writer = lambda *a: writers.append(a) or make_writer(*a)  # tensors stay where the pools are
    g = torch.Generator().manual_seed(5)
    k, v = torch.randn(3, 1, 8, generator=g), torch.randn(3, 1, 8, generator=g)
    for c in (host, tp):
        c.allocate(0, k, v)
        f = c.fork()
        c.allocate(0, k[:1] * 2, v[:1] * 2, seq=f)  # writes into the shared last page: copied
    assert len(writers) == 2  # both appends were converted and copied by torch, not by C
    for seq in (host.seq, 1):
        a, b = host.get_kv_pages(0, "cpu", seq=seq), tp.get_kv_pages(0, "cpu", seq=seq)
        assert a.block_table == b.block_table and a.seq_len == b.seq_len
        for x, y in zip(a.contiguous(), b.contiguous()):
            assert torch.equal(x, y)
    K, _ = tp.get_kv_pages(0)
    tp.allocate(0, k[:1], v[:1])  # a view: later writes show through
    pages = tp.get_kv_pages(0)
    pos = pages.seq_len - 1
    assert torch.equal(K[pages.block_table[pos // 2], pos % 2], k[0].to(torch.bfloat16))
    host.close()
    tp.close()


def test_kernels_with_torch_tensors():
    from api.inference import apply_rotary, build_rotary_cache, rmsnorm, triton_gemm
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 64, generator=g).to(DEV), torch.randn(64, 48, generator=g).to(DEV)
    c = triton_gemm(a, b)
    assert c.device == a.device and c.dtype == torch.float32
    _close(c, (a.double() @ b.double()).cpu(), 1e-5)
    x, w = torch.randn(3, 64, generator=g).to(DEV), torch.randn(64, generator=g).to(DEV)
    y = rmsnorm(x, w, eps=1e-5)
    xd = x.double().cpu()
    _close(y, xd / torch.sqrt((xd * xd).mean(-1, keepdim=True) + 1e-5) * w.double().cpu(), 1e-5)
    sin, cos = build_rotary_cache(10000.0, 32, 16, torch.float32)
    assert isinstance(sin, torch.Tensor) and sin.dtype == torch.float32 and sin.shape == (16, 16)
    ang = torch.arange(16, dtype=torch.float64)[:, None] * 10000.0 ** (-torch.arange(0, 32, 2, dtype=torch.float64) / 32)
    _close(sin, torch.sin(ang), 1e-5)
    _close(cos, torch.cos(ang), 1e-5)
    sin16, _ = build_rotary_cache(10000.0, 32, 16, torch.bfloat16)
    assert sin16.dtype == torch.bfloat16
    t = torch.randn(2, 32, generator=g).to(DEV)
    r = apply_rotary(t, sin, cos, 5)
    assert r.device == t.device
    td = t.double().cpu()
    even, odd = td[:, 0::2], td[:, 1::2]
    ref = torch.empty_like(td)
    ref[:, 0::2] = even * torch.cos(ang[5]) - odd * torch.sin(ang[5])
    ref[:, 1::2] = even * torch.sin(ang[5]) + odd * torch.cos(ang[5])
    _close(r, ref, 1e-5)


@pytest.mark.parametrize("dt", [torch.float16, torch.bfloat16])
def test_half_precision_kernels_stay_on_the_device(dt):
    """On the GPU triton_gemm and rmsnorm of half-precision CUDA tensors run there (gemm
    accumulates in float32, rmsnorm answers in x's dtype); on the CPU they compute in float32."""
    from api.inference import rmsnorm, triton_gemm
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(5, 64, generator=g).to(DEV, dt), torch.randn(64, 48, generator=g).to(DEV, dt)
    c = triton_gemm(a, b)
    assert c.device == a.device and c.dtype == torch.float32
    _close(c, a.double().cpu() @ b.double().cpu(), 1e-4)  # exact products of the inputs, float32 sums
    one = triton_gemm(a[:1], b)  # one row: the GEMV path on the GPU
    _close(one, a[:1].double().cpu() @ b.double().cpu(), 1e-4)
    x, w = torch.randn(3, 64, generator=g).to(DEV, dt), torch.randn(64, generator=g).to(DEV, dt)
    y = rmsnorm(x, w, eps=1e-5)
    assert y.device == x.device and y.dtype == (dt if GPU else torch.float32)
    xd = x.double().cpu()
    ref = xd / torch.sqrt((xd * xd).mean(-1, keepdim=True) + 1e-5) * w.double().cpu()
    _close(y.float(), ref, 2e-2 if GPU else 1e-5)


# ---- misuse raises with the argument's name ---------------------------------------------------

def test_misuse_names_the_argument(tmp_path):
    from api.inference import (LlamaConfig, LlamaGenerator, LlamaTritonModel, PageKVCache,
                               SentencePieceTokenizer)
    tok = SentencePieceTokenizer(model_path=str(LLAMA2_TOK))
    with pytest.raises(L.InvalidArgumentError, match="text"):
        tok.encode(123)
    with pytest.raises(L.InvalidArgumentError, match="ids"):
        tok.decode([1.5, 2.0])
    with pytest.raises(L.InvalidArgumentError, match="model_path"):
        SentencePieceTokenizer(model_path=7)
    cfg = LlamaConfig()
    with pytest.raises(AttributeError, match="n_layer.*n_layers"):
        cfg.n_layer = 7
    with pytest.raises(L.InvalidArgumentError, match="n_layers"):
        cfg.n_layers = "7"
    with pytest.raises(L.InvalidArgumentError, match="cfg"):
        LlamaTritonModel(42)
    with pytest.raises(L.InvalidArgumentError, match="device"):
        LlamaGenerator(STORIES, device=3)
    with pytest.raises(L.InvalidArgumentError, match="model_dir"):
        LlamaGenerator(3.5)
    with L.LlamaTritonModel(STORIES, "cpu") as m:
        with pytest.raises(L.InvalidArgumentError, match="input_ids"):
            m.forward(torch.tensor([1.0, 2.0]))
        with pytest.raises(L.InvalidArgumentError, match="input_ids"):
            m.forward([1, 2.5])
        with pytest.raises(L.InvalidArgumentError, match="input_ids"):
            m.forward(torch.tensor([1, 600]))  # vocab is 512
        with pytest.raises(L.InvalidArgumentError, match="state_dict"):
            m.load_state_dict(3)
        with pytest.raises(L.LlamaTritonError, match="state_dict|hidden_size|n_layers|shape"):
            m.load_state_dict(_native_tiny_llama2(tmp_path) / "state_dict.pt")  # another shape
        assert m.forward([1, 2]).shape == (2, 512)  # still the old weights
    c = L.LlamaConfig(n_layers=2, n_heads=2, n_kv_heads=1, hidden_size=16, max_position_embeddings=8)
    with PageKVCache(c, "cpu") as cache:
        with pytest.raises(L.InvalidArgumentError, match="layer"):
            cache.get_kv_pages(2, "cpu")
        with pytest.raises(L.InvalidArgumentError, match="k"):
            cache.allocate(0, torch.zeros(1, 1, 8, dtype=torch.bool), torch.zeros(1, 1, 8))
        with pytest.raises(L.InvalidArgumentError, match="layer"):
            cache.allocate(0.0, torch.zeros(1, 1, 8), torch.zeros(1, 1, 8))
