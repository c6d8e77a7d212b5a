/* log.h: the library's only output channel (stderr by default, never stdout). */
#ifndef LLT_BASE_LOG_H
#define LLT_BASE_LOG_H

#include "base/error.h"
#include "base/progress.h"

void llt_log(llt_log_level level, const char *fmt, ...) LLT_PRINTF(2, 3);
#define LLT_INFO(...) llt_log(LLT_LOG_INFO, __VA_ARGS__)
#define LLT_WARN(...) llt_log(LLT_LOG_WARN, __VA_ARGS__)
#define LLT_DEBUG(...) llt_log(LLT_LOG_DEBUG, __VA_ARGS__)

/* The stderr default sink is in use (no llt_log_set callback). */
bool llt_log_is_default(void);
/* A message of this level would be written. */
bool llt_log_wants(llt_log_level level);

double llt_time_now(void); /* monotonic seconds */

#endif
