/* log.h: the library's only output channel (stderr by default, never stdout). */
#ifndef LLT_BASE_LOG_H
#define LLT_BASE_LOG_H

#include "base/error.h"

void llt_log(llt_log_level level, const char *fmt, ...) LLT_PRINTF(2, 3);
#define LLT_INFO(...) llt_log(LLT_LOG_INFO, __VA_ARGS__)
#define LLT_WARN(...) llt_log(LLT_LOG_WARN, __VA_ARGS__)
#define LLT_DEBUG(...) llt_log(LLT_LOG_DEBUG, __VA_ARGS__)

/* Progress for long work: prints "label: done/total (pct%)" at most every ~0.5 s, and only
 * once the work has run for more than a second. */
typedef struct llt_progress {
    const char *label;
    double t_start, t_last;
    int shown;
} llt_progress;
void llt_progress_begin(llt_progress *p, const char *label);
void llt_progress_update(llt_progress *p, uint64_t done, uint64_t total);
void llt_progress_end(llt_progress *p);

double llt_time_now(void); /* monotonic seconds */

#endif
