/* cmd_bench.c: placeholder until the owning issue lands; says so instead of pretending. */
#include <stdio.h>

#include "cli.h"

int cmd_bench(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "llama-triton: 'bench' is not implemented yet\n");
    return 1;
}
