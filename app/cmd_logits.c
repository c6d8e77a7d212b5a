/* cmd_logits.c: placeholder until the owning issue lands; says so instead of pretending. */
#include <stdio.h>

#include "cli.h"

int cmd_logits(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "llama-triton: 'logits' is not implemented yet\n");
    return 1;
}
