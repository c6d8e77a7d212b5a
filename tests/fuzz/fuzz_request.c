/* fuzz_request.c: libFuzzer target for the server's request parsing (src/server/request.c):
 * the bytes as a completions body and as a chat completions body. A body that parses must
 * satisfy every limit it was checked against; one that fails must name an HTTP status and a
 * message; the stop-string matcher runs on what came in. Leaks are ASan errors. */
#include <stdlib.h>
#include <string.h>

#include "server/request.h"
#include "server/server.h"

static void check(const srv_params *p, const srv_limits *l) {
    if (p->n < 1 || p->n > l->max_n || p->n_stop > l->max_stop || p->logprobs > l->max_logprobs) abort();
    if (!p->chat && (p->n_prompts < 1 || p->n_prompts > l->max_prompts)) abort();
    if (p->chat && !p->messages_json) abort();
    if (!(p->temperature >= 0 && p->temperature <= 2) || !(p->top_p >= 0 && p->top_p <= 1)) abort();
    for (int32_t i = 0; i < p->n_prompts; i++) {
        const srv_prompt *q = &p->prompts[i];
        if (!q->text == !q->ids) abort();
        if (q->text) { /* the stop matcher over the prompt text, as over generated text */
            volatile long at = srv_stop_find(p->stop, p->n_stop, q->text, q->text_len, 0);
            volatile size_t hold = srv_stop_holdback(p->stop, p->n_stop, q->text, q->text_len);
            (void)at, (void)hold;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *copy = malloc(size ? size : 1); /* exactly size bytes: overreads are ASan errors */
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    srv_limits lim;
    srv_limits_default(&lim);
    lim.max_stop = 8, lim.max_prompts = 8;
    for (int chat = 0; chat < 2; chat++) {
        srv_params p;
        srv_error e = {0};
        if (srv_params_parse(copy, size, chat, &lim, &p, &e)) check(&p, &lim);
        else if (e.http < 400 || e.http > 599 || !e.message[0]) abort();
        srv_params_free(&p);
    }
    free(copy);
    return 0;
}
