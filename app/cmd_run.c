/* cmd_run.c: placeholder until the owning issue lands; says so instead of pretending. */
#include <stdio.h>

#include "cli.h"

int cmd_run(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "llama-triton: 'run' is not implemented yet\n");
    return 1;
}
