/* progress.c: see progress.h. The terminal line goes straight to stderr (a redraw is not a log
 * message); plain lines go through the log sink like every other message. */
#include "base/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

enum { LINE_MAX_BYTES = 160 };
#define TTY_DELAY 0.3
#define TTY_EVERY 0.1
#define PLAIN_DELAY 2.0
#define PLAIN_EVERY 10.0

llt_progress_mode llt_progress_mode_now(void) {
    const char *e = getenv("LLT_PROGRESS");
    if (e && strcmp(e, "off") == 0) return LLT_PROGRESS_OFF;
    if (e && strcmp(e, "plain") == 0) return LLT_PROGRESS_PLAIN;
    if (e && strcmp(e, "tty") == 0) return LLT_PROGRESS_TTY;
    if (!llt_log_wants(LLT_LOG_INFO)) return LLT_PROGRESS_OFF;
    return isatty(STDERR_FILENO) && llt_log_is_default() ? LLT_PROGRESS_TTY : LLT_PROGRESS_PLAIN;
}

/* 1536 -> "1.5 KiB" */
static void fmt_bytes(char *buf, size_t cap, double b) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024.0 && u < 4) b /= 1024.0, u++;
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

static void fmt_secs(char *buf, size_t cap, double s) {
    if (s < 1.0) snprintf(buf, cap, "<1 s");
    else if (s < 100.0) snprintf(buf, cap, "%.0f s", s);
    else snprintf(buf, cap, "%.0fm%02.0fs", (double)(long)(s / 60), s - 60.0 * (double)(long)(s / 60));
}

int llt_progress_format(char *buf, size_t cap, const char *label, bool bytes, uint64_t done, uint64_t total,
                        double elapsed) {
    char amount[64], rate[32] = "", left[32] = "";
    double rt = elapsed > 0 ? (double)done / elapsed : 0;
    if (bytes) {
        char d[24], t[24], r[24];
        fmt_bytes(d, sizeof d, (double)done), fmt_bytes(t, sizeof t, (double)total), fmt_bytes(r, sizeof r, rt);
        snprintf(amount, sizeof amount, "%s / %s", d, t);
        if (elapsed > 0) snprintf(rate, sizeof rate, ", %s/s", r);
    } else {
        snprintf(amount, sizeof amount, "%llu/%llu", (unsigned long long)done, (unsigned long long)total);
        if (elapsed > 0) snprintf(rate, sizeof rate, ", %.1f/s", rt);
    }
    if (rt > 0 && total > done) {
        char s[24];
        fmt_secs(s, sizeof s, (double)(total - done) / rt);
        snprintf(left, sizeof left, ", %s left", s);
    }
    int pct = total ? (int)(100.0 * (double)done / (double)total) : 0;
    return snprintf(buf, cap, "%s: %3d%% %s%s%s", label, pct > 100 ? 100 : pct, amount, rate, left);
}

void llt_progress_begin(llt_progress *p, const char *label, bool bytes) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->bytes = bytes;
    p->mode = llt_progress_mode_now();
    p->t_start = p->t_last = llt_time_now();
}

void llt_progress_update(llt_progress *p, uint64_t done, uint64_t total) {
    p->done = done, p->total = total;
    if (p->mode == LLT_PROGRESS_OFF) return;
    double now = llt_time_now(), el = now - p->t_start;
    bool tty = p->mode == LLT_PROGRESS_TTY;
    if (el < (tty ? TTY_DELAY : PLAIN_DELAY) || (p->shown && now - p->t_last < (tty ? TTY_EVERY : PLAIN_EVERY)))
        return;
    char line[LINE_MAX_BYTES];
    llt_progress_format(line, sizeof line, p->label, p->bytes, done, total, el);
    p->t_last = now;
    p->shown = true;
    if (tty) fprintf(stderr, "\r%s\033[K", line), fflush(stderr);
    else llt_log(LLT_LOG_INFO, "%s", line);
}

void llt_progress_end(llt_progress *p) {
    if (!p->shown) return;
    double el = llt_time_now() - p->t_start;
    char line[LINE_MAX_BYTES];
    if (p->mode == LLT_PROGRESS_TTY) {
        llt_progress_format(line, sizeof line, p->label, p->bytes, p->done, p->total, el);
        fprintf(stderr, "\r%s, done in %.1f s\033[K\n", line, el);
    } else {
        llt_log(LLT_LOG_INFO, "%s: done in %.1f s", p->label, el);
    }
    p->shown = false;
}
