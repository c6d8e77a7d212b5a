/* progress.h: progress of long work (loading, converting, uploading, benchmarking) on stderr.
 * On a terminal: one line redrawn in place ("label: 45% 1.2/2.6 GiB, 850.0 MiB/s, 2 s left"),
 * from 0.3 s on, at most ten times a second, closed with a newline at the end. Otherwise (logs,
 * CI, a log callback set with llt_log_set): sparse plain lines through the log sink, the first
 * after 2 s, then one every 10 s. LLT_PROGRESS=tty|plain|off overrides the choice. */
#ifndef LLT_BASE_PROGRESS_H
#define LLT_BASE_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum llt_progress_mode { LLT_PROGRESS_OFF = 0, LLT_PROGRESS_PLAIN, LLT_PROGRESS_TTY } llt_progress_mode;

typedef struct llt_progress {
    const char *label;
    bool bytes;                /* done/total count bytes (shown in KiB..GiB, rate per second) */
    llt_progress_mode mode;
    double t_start, t_last;
    uint64_t done, total;
    bool shown;                /* something was printed: end() closes or summarises it */
} llt_progress;

void llt_progress_begin(llt_progress *p, const char *label, bool bytes);
void llt_progress_update(llt_progress *p, uint64_t done, uint64_t total);
void llt_progress_end(llt_progress *p);

/* The mode a new progress takes here (environment, terminal, log sink). */
llt_progress_mode llt_progress_mode_now(void);
/* "label: 45% 1.2/2.6 GiB, 850.0 MiB/s, 2 s left" (items: "label: 3/10, 1.5/s, 5 s left");
 * elapsed in seconds. Returns the length (snprintf's). */
int llt_progress_format(char *buf, size_t cap, const char *label, bool bytes, uint64_t done, uint64_t total,
                        double elapsed);

#endif
