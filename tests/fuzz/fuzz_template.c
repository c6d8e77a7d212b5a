/* fuzz_template.c: libFuzzer target for the chat-template engine. The bytes are a template
 * (not NUL-terminated: the lexer must respect len); it is parsed and rendered with a small
 * conversation and tools. Any outcome but a crash, a sanitizer report, a leak or a hang is
 * fine: hostile templates must end in an error. Seeds: the 24 fixture templates. */
#include <stdlib.h>
#include <string.h>

#include "llama_triton.h"

static const char k_messages[] =
    "[{\"role\":\"system\",\"content\":\"sys\"},{\"role\":\"user\",\"content\":\"héllo {{x}} 😀\"},"
    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call12345\",\"type\":\"function\","
    "\"function\":{\"name\":\"f\",\"arguments\":{\"a\":1,\"b\":[2.5,true,null]}}}]},"
    "{\"role\":\"tool\",\"tool_call_id\":\"call12345\",\"content\":\"ok\"},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"part\"}]}]";
static const char k_tools[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"d\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},"
    "\"required\":[\"a\"]}}}]";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    llt_template *t = NULL;
    if (llt_template_parse(copy, size, &t, NULL) == LLT_OK) {
        llt_chat_opts o = {.add_generation_prompt = size % 2 == 0, .bos_token = "<s>", .eos_token = "</s>",
                           .tools_json = size % 3 ? k_tools : NULL, .date = "2026-12-03"};
        char *out = NULL;
        size_t len = 0;
        llt_error err;
        if (llt_template_render(t, k_messages, sizeof k_messages - 1, &o, &out, &len, &err) == LLT_OK) {
            if (strlen(out) > len) abort(); /* NUL-terminated at len (may hold NULs before) */
            free(out);
        }
        llt_template_free(t);
    }
    free(copy);
    return 0;
}
