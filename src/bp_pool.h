/*
 * The CPU thread pool (src/threadpool.c): spin briefly, then sleep.
 */
#ifndef BP_POOL_H
#define BP_POOL_H

#include "bitplane.h"

#include <stddef.h>

typedef struct bp_pool bp_pool;
typedef void (*bp_task_fn)(void *arg, size_t task, int worker);

bp_status bp__pool_create(int threads, bp_pool **out);
void bp__pool_destroy(bp_pool *pool);
int bp__pool_threads(const bp_pool *pool);
/* Run fn(arg, task, worker) for task in [0, ntasks); worker in [0, threads).
 * Blocks until all tasks finish. Calls on one pool serialise. */
void bp__pool_run(bp_pool *pool, size_t ntasks, bp_task_fn fn, void *arg);

#endif /* BP_POOL_H */
