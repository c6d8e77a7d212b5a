/* cli_devices.c: the multi-GPU flags shared by `run` and `bench`: --device lists and
 * --layer_split counts. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Entries of a comma list ("cuda:0,cuda:1" -> 2). */
int cli_device_count(const char *device) {
    if (!device || !*device) return 0;
    int n = 1;
    for (const char *p = device; *p; p++) n += *p == ',';
    return n;
}

bool cli_parse_split(const char *s, int32_t *out, int *n) {
    int k = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno || end == p || x < 0 || x > 1000000 || (*end && *end != ',') || k == LLT_MAX_DEVICES) {
            cli_usage_error("--layer_split '%s': expected up to %d layer counts >= 0, e.g. 20,12", s,
                            LLT_MAX_DEVICES);
            return false;
        }
        out[k++] = (int32_t)x;
        p = *end ? end + 1 : end;
    }
    if (k == 0) {
        cli_usage_error("--layer_split: empty list");
        return false;
    }
    *n = k;
    return true;
}

bool cli_check_split(const char *device, int n_split) {
    int n_dev = cli_device_count(device);
    if (n_split == 0 || n_dev == 0 || n_split == n_dev) return true;
    cli_usage_error("--layer_split has %d entries, --device '%s' lists %d devices", n_split, device, n_dev);
    return false;
}
