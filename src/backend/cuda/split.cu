/* split.cu: the multi-GPU layer split (model.cuh says where everything lives).
 *  - plan: which device runs which layers: --layer_split by hand, else contiguous segments
 *    in proportion to each device's free memory once its fixed share (embedding on the
 *    first, output head on the last) is set aside;
 *  - links: how the residual rows go from one segment's device to the next (peer copy when
 *    the pair can reach each other, else two copies through pinned host memory);
 *  - send: one such transfer, ordered by an event after the sender's segment;
 *  - report: per-device memory on stderr after loading. */
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/model.cuh"

extern "C" {
#include "backend/backend.h"
}

static const double GIB = 1024.0 * 1024.0 * 1024.0;

/* Free bytes of each listed device (a device listed k times lends each entry 1/k). */
static llt_status free_shares(const cuda_state *st, double *share, llt_error *err) {
    for (int d = 0; d < st->n_dev; d++) {
        size_t fr = 0, tot = 0;
        CUDA_TRY(cudaSetDevice(st->dev_id[d]), err);
        CUDA_TRY(cudaMemGetInfo(&fr, &tot), err);
        int k = 0;
        for (int e = 0; e < st->n_dev; e++) k += st->dev_id[e] == st->dev_id[d];
        share[d] = (double)fr / k;
    }
    return LLT_OK;
}

/* n layers over n_dev devices in proportion to w[] (largest remainder), at least one each
 * when there are enough layers. */
static void proportional(const double *w, int n_dev, int32_t n, int32_t *out) {
    double sum = 0, frac[LLT_MAX_DEVICES];
    for (int d = 0; d < n_dev; d++) sum += w[d];
    int32_t given = 0;
    for (int d = 0; d < n_dev; d++) {
        double x = sum > 0 ? n * w[d] / sum : (double)n / n_dev;
        out[d] = (int32_t)x, frac[d] = x - out[d], given += out[d];
    }
    for (; given < n; given++) {
        int b = 0;
        for (int d = 1; d < n_dev; d++) b = frac[d] > frac[b] ? d : b;
        out[b]++, frac[b] = -1;
    }
    for (int d = 0; d < n_dev && n >= n_dev; d++)
        while (out[d] == 0) {
            int b = 0;
            for (int e = 1; e < n_dev; e++) b = out[e] > out[b] ? e : b;
            out[b]--, out[d]++;
        }
}

llt_status cuda_split_plan(llt_model *m, cuda_state *st, const llt_load_opts *o, llt_error *err) {
    const int32_t L = m->cfg.n_layers;
    int32_t count[LLT_MAX_DEVICES] = {0};
    if (o && o->layer_split) {
        int64_t sum = 0;
        for (int d = 0; d < st->n_dev; d++) {
            LLT_CHECK(o->layer_split[d] >= 0, err, LLT_ERR_INVALID_ARG,
                      "layer_split[%d] = %d: expected a count of layers >= 0", d, (int)o->layer_split[d]);
            count[d] = o->layer_split[d], sum += count[d];
        }
        LLT_CHECK(sum == L, err, LLT_ERR_INVALID_ARG,
                  "layer_split: %lld layers over %d devices, the model has %d", (long long)sum, (int)st->n_dev,
                  (int)L);
    } else if (st->n_dev == 1) {
        count[0] = L;
    } else {
        double w[LLT_MAX_DEVICES];
        LLT_TRY(free_shares(st, w, err));
        double vocab = (double)cuda_vocab_weight_bytes(&m->cfg, st->dt);
        w[0] -= vocab, w[st->n_dev - 1] -= vocab; /* embedding, output head */
        for (int d = 0; d < st->n_dev; d++) w[d] = w[d] > 0 ? w[d] : 0;
        proportional(w, st->n_dev, L, count);
    }
    st->layer0[0] = 0;
    for (int d = 0; d < st->n_dev; d++) {
        st->layer0[d + 1] = st->layer0[d] + count[d];
        for (int32_t l = st->layer0[d]; l < st->layer0[d + 1]; l++) m->layers[l].device = d;
    }
    return LLT_OK;
}

static bool env_off(const char *name) {
    const char *v = getenv(name);
    return v && (strcmp(v, "0") == 0 || strcmp(v, "off") == 0);
}

/* Peer access both ways between two different devices (already enabled is fine). */
static llt_status enable_peer(int a, int b, llt_error *err) {
    CUDA_TRY(cudaSetDevice(a), err);
    cudaError_t e = cudaDeviceEnablePeerAccess(b, 0);
    if (e == cudaErrorPeerAccessAlreadyEnabled) (void)cudaGetLastError();
    else CUDA_TRY(e, err);
    CUDA_TRY(cudaSetDevice(b), err);
    e = cudaDeviceEnablePeerAccess(a, 0);
    if (e == cudaErrorPeerAccessAlreadyEnabled) (void)cudaGetLastError();
    else CUDA_TRY(e, err);
    return LLT_OK;
}

/* LLT_CUDA_PEER=0 sends every boundary through pinned host memory (tests that path on one GPU). */
llt_status cuda_split_links(cuda_state *st, size_t x_bytes, llt_error *err) {
    bool allow = !env_off("LLT_CUDA_PEER");
    for (int d = 1; d < st->n_dev; d++) {
        int a = st->dev_id[d - 1], b = st->dev_id[d], can = a == b;
        if (a != b) CUDA_TRY(cudaDeviceCanAccessPeer(&can, b, a), err);
        if (can && a != b) {
            int back = 0;
            CUDA_TRY(cudaDeviceCanAccessPeer(&back, a, b), err);
            can = back;
        }
        st->peer[d] = allow && can;
        if (st->peer[d] && a != b) LLT_TRY(enable_peer(a, b, err));
        if (!st->peer[d]) {
            CUDA_TRY(cudaHostAlloc((void **)&st->buf[d].x_host, x_bytes, cudaHostAllocPortable), err);
        }
        LLT_INFO("cuda: layers %d.. go from cuda:%d to cuda:%d %s", (int)st->layer0[d], a, b,
                 st->peer[d] ? (a == b ? "by a device copy" : "by peer copy") : "through pinned host memory");
    }
    return LLT_OK;
}

/* Rows [0, nr) of the residual stream from segment d - 1's device to segment d's, after
 * everything already queued on d - 1's stream. Leaves device d current. */
llt_status cuda_split_send(cuda_state *st, int d, size_t bytes, llt_error *err) {
    llt_cuda_ctx *a = st->ctx[d - 1], *b = st->ctx[d];
    cuda_dev_buf *from = &st->buf[d - 1], *to = &st->buf[d];
    CUDA_TRY(cudaSetDevice(a->device), err);
    if (!st->peer[d]) CUDA_TRY(cudaMemcpyAsync(to->x_host, from->x, bytes, cudaMemcpyDeviceToHost, a->stream), err);
    CUDA_TRY(cudaEventRecord(from->done, a->stream), err);
    CUDA_TRY(cudaSetDevice(b->device), err);
    CUDA_TRY(cudaStreamWaitEvent(b->stream, from->done, 0), err);
    if (st->peer[d])
        CUDA_TRY(cudaMemcpyPeerAsync(to->x, b->device, from->x, a->device, bytes, b->stream), err);
    else
        CUDA_TRY(cudaMemcpyAsync(to->x, to->x_host, bytes, cudaMemcpyHostToDevice, b->stream), err);
    return LLT_OK;
}

static size_t ctx_scratch_bytes(const llt_cuda_ctx *c) {
    return c->lt_ws_bytes + LLT_TUNE_X_BYTES + LLT_TUNE_Y_BYTES + LLT_TUNE_XF_BYTES + 64 * sizeof(int32_t);
}

void cuda_split_report(const llt_model *m, const cuda_state *st) {
    int32_t tokens = m->kv ? m->kv->o.max_pages * m->kv->o.page_size : 0;
    for (int d = 0; d < st->n_dev; d++) {
        size_t fr = 0, tot = 0;
        if (cudaSetDevice(st->dev_id[d]) != cudaSuccess || cudaMemGetInfo(&fr, &tot) != cudaSuccess)
            (void)cudaGetLastError();
        int32_t l0 = st->layer0[d], l1 = st->layer0[d + 1];
        char layers[48];
        if (l1 > l0) snprintf(layers, sizeof layers, "layers %d-%d", (int)l0, (int)l1 - 1);
        else snprintf(layers, sizeof layers, "no layers");
        LLT_INFO("cuda:%d (%s): %s%s%s; weights %.2f GiB, KV pool %.2f GiB (%d tokens), workspace %.2f GiB; "
                 "%.1f of %.1f GiB free",
                 (int)st->dev_id[d], st->ctx[d]->name, layers, d == 0 ? ", embedding" : "",
                 d == st->n_dev - 1 ? ", output head" : "", st->wbytes[d] / GIB, st->kvbytes[d] / GIB, (int)tokens,
                 (st->wsbytes[d] + ctx_scratch_bytes(st->ctx[d])) / GIB, fr / GIB, tot / GIB);
    }
    if (st->n_dev > 0) (void)cudaSetDevice(st->dev_id[0]);
}

extern "C" llt_status llt_cuda_model_memory(const llt_model *m, int32_t d, llt_cuda_mem *out, llt_error *err) {
    LLT_CHECK(m && out && m->backend == &llt_backend_cuda && m->backend_state, err, LLT_ERR_INVALID_ARG,
              "cuda memory: not a CUDA model");
    const cuda_state *st = (const cuda_state *)m->backend_state;
    LLT_CHECK(d >= 0 && d < st->n_dev, err, LLT_ERR_INVALID_ARG, "cuda memory: device index %d of %d", (int)d,
              (int)st->n_dev);
    memset(out, 0, sizeof *out);
    out->n_devices = st->n_dev;
    cudaPointerAttributes pa;
    CUDA_TRY(cudaPointerGetAttributes(&pa, st->wmem[d]), err);
    out->device = pa.device; /* where the weights really are */
    out->layer_begin = st->layer0[d], out->layer_end = st->layer0[d + 1];
    out->weight_bytes = st->wbytes[d], out->kv_bytes = st->kvbytes[d];
    out->workspace_bytes = st->wsbytes[d] + ctx_scratch_bytes(st->ctx[d]);
    out->peer_in = d > 0 && st->peer[d];
    return LLT_OK;
}
