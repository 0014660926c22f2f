/*
 * A small persistent pthread pool owned by a context. The calling thread
 * works as worker 0, so a 1-thread pool starts no threads at all. Tasks are
 * handed out through an atomic counter; which worker runs a task never
 * changes a result, because every task writes disjoint outputs.
 */
#include "bp_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct bp_pool {
    int threads;
    pthread_t *workers;
    pthread_mutex_t run_lock; /* serialises bp__pool_run callers */
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    unsigned long generation; /* bumped per job, under lock */
    int busy;                 /* helper workers still in the current job */
    bool stop;
    bp_task_fn fn;
    void *arg;
    size_t ntasks;
    atomic_size_t next;
};

typedef struct worker_arg {
    bp_pool *pool;
    int index;
} worker_arg;

static void run_tasks(bp_pool *pool, int worker) {
    for (;;) {
        size_t t = atomic_fetch_add_explicit(&pool->next, 1, memory_order_relaxed);
        if (t >= pool->ntasks)
            return;
        pool->fn(pool->arg, t, worker);
    }
}

static void *worker_main(void *p) {
    worker_arg wa = *(worker_arg *)p;
    free(p);
    bp_pool *pool = wa.pool;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->stop && pool->generation == seen)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stop)
            break;
        seen = pool->generation;
        pthread_mutex_unlock(&pool->lock);
        run_tasks(pool, wa.index);
        pthread_mutex_lock(&pool->lock);
        if (--pool->busy == 0)
            pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

static void stop_workers(bp_pool *pool, int started) {
    pthread_mutex_lock(&pool->lock);
    pool->stop = true;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < started; i++)
        pthread_join(pool->workers[i], NULL);
}

bp_status bp__pool_create(int threads, bp_pool **out) {
    *out = NULL;
    bp_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate a thread pool");
    pool->threads = threads;
    atomic_init(&pool->next, 0);
    pthread_mutex_init(&pool->run_lock, NULL);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    if (threads > 1) {
        pool->workers = calloc((size_t)threads - 1, sizeof *pool->workers);
        if (!pool->workers) {
            bp__pool_destroy(pool);
            return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate %d worker handles", threads);
        }
        for (int i = 0; i < threads - 1; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            int rc = -1;
            if (wa) {
                wa->pool = pool;
                wa->index = i + 1;
                rc = pthread_create(&pool->workers[i], NULL, worker_main, wa);
            }
            if (rc != 0) {
                free(wa);
                stop_workers(pool, i);
                pool->threads = 1; /* the started workers are joined already */
                bp__pool_destroy(pool);
                return bp__fail(BP_ERR_BACKEND, "cannot start worker thread %d of %d", i + 1,
                                threads);
            }
        }
    }
    *out = pool;
    return BP_OK;
}

void bp__pool_destroy(bp_pool *pool) {
    if (!pool)
        return;
    if (pool->threads > 1 && pool->workers)
        stop_workers(pool, pool->threads - 1);
    free(pool->workers);
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    pthread_mutex_destroy(&pool->run_lock);
    free(pool);
}

int bp__pool_threads(const bp_pool *pool) {
    return pool->threads;
}

void bp__pool_run(bp_pool *pool, size_t ntasks, bp_task_fn fn, void *arg) {
    if (ntasks == 0)
        return;
    pthread_mutex_lock(&pool->run_lock);
    pool->fn = fn;
    pool->arg = arg;
    pool->ntasks = ntasks;
    atomic_store_explicit(&pool->next, 0, memory_order_relaxed);
    int helpers = pool->threads - 1;
    if (helpers > 0 && ntasks > 1) {
        pthread_mutex_lock(&pool->lock);
        pool->busy = helpers;
        pool->generation++;
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
        run_tasks(pool, 0);
        pthread_mutex_lock(&pool->lock);
        while (pool->busy > 0)
            pthread_cond_wait(&pool->done, &pool->lock);
        pthread_mutex_unlock(&pool->lock);
    } else {
        run_tasks(pool, 0);
    }
    pthread_mutex_unlock(&pool->run_lock);
}
