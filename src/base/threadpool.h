/* threadpool.h: a fixed set of worker threads that run one parallel-for at a time.
 * llt_pool_for splits [0, n) into contiguous chunks, one per thread, and returns when all are
 * done; the calling thread takes a chunk too (thread index 0). A pool of 1 thread runs inline.
 * Chunk i of T is [n*i/T, n*(i+1)/T) up to rounding (sizes differ by at most one); empty chunks
 * are not called. Calls from several threads are serialised; fn must not call llt_pool_for on
 * the same pool (it would deadlock). A NULL pool runs inline. */
#ifndef LLT_BASE_THREADPOOL_H
#define LLT_BASE_THREADPOOL_H

#include "base/error.h"

typedef struct llt_threadpool llt_threadpool;
/* fn(ctx, begin, end, thread_index) */
typedef void (*llt_pool_fn)(void *ctx, int64_t begin, int64_t end, int32_t thread);

llt_status llt_pool_create(int32_t n_threads, llt_threadpool **out, llt_error *err); /* 0 = cores */
void llt_pool_free(llt_threadpool *p);
int32_t llt_pool_size(const llt_threadpool *p);
void llt_pool_for(llt_threadpool *p, int64_t n, llt_pool_fn fn, void *ctx);

/* fn(ctx, thread, n_threads) on every thread of the pool once (thread 0 = the caller); the
 * threads may meet at llt_pool_barrier inside fn. One dispatch for a whole decode step. */
typedef void (*llt_pool_task)(void *ctx, int32_t thread, int32_t n_threads);
void llt_pool_run(llt_threadpool *p, llt_pool_task fn, void *ctx);
/* The same on threads 0..n_threads-1 only (clamped to 1..pool size; 1 runs inline): fn sees
 * n_threads, and llt_pool_barrier counts only these. For work too small to feed every thread. */
void llt_pool_run_n(llt_threadpool *p, int32_t n_threads, llt_pool_task fn, void *ctx);
/* Inside llt_pool_run(_n) only, called by every thread of the run the same number of times:
 * returns when all have arrived (polls for up to LLT_POOL_SPIN_US, default 2000, yielding the
 * CPU between polls after LLT_POOL_YIELD_US, default 20, then sleeps). No-op for a NULL pool
 * or a run of 1 thread. */
void llt_pool_barrier(llt_threadpool *p);
/* The same, and while this thread waits for the others it calls idle(ctx) between polls until
 * idle returns false (a thread that arrives early prefetches what it reads next). */
void llt_pool_barrier_idle(llt_threadpool *p, bool (*idle)(void *ctx), void *ctx);

/* Work sharing with stealing, inside llt_pool_run(_n): n_units split statically over the run's
 * threads (thread i owns chunk i of n_units, as llt_pool_for splits); each call hands `thread` the next `chunk` units
 * from the front of its own share, and once that is empty up to `chunk` from the back of
 * another thread's (threads that finish early help a late one instead of waiting at the next
 * barrier). Returns false when nothing is left anywhere. `tag` names one split: 0, 1, 2, ...
 * in the order of the run's splits, the same on every thread; the threads meet at a barrier
 * between two splits. llt_pool_share_ok says whether a split can be shared (n_units below
 * 2^20, tag below 2^24 - 1). Which thread runs a unit must not change its result: the caller's
 * guarantee (forward.c splits rows, each computed whole by one thread). */
bool llt_pool_share_ok(const llt_threadpool *p, int64_t n_units, uint32_t tag);
bool llt_pool_share_next(llt_threadpool *p, int32_t thread, uint32_t tag, int64_t n_units, int64_t chunk,
                         int64_t *begin, int64_t *end);

#endif
