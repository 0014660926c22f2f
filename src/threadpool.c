/*
 * A small persistent pthread pool owned by a context. The calling thread
 * works as worker 0, so a 1-thread pool starts no threads at all. Tasks are
 * handed out through an atomic counter; which worker runs a task never
 * changes a result, because every task writes disjoint outputs.
 *
 * Latency under load: helpers spin on the job word for a short while after
 * each job (POOL_SPIN_NS), then sleep on a condition variable, so back-to-back
 * calls never pay a wake-up and an idle pool costs no CPU. The caller never
 * waits for a helper that has not started: a helper joins a job only while
 * it is open (counted in `joined`), the caller closes the job once every task
 * has been claimed, and then waits only for the helpers that joined, which
 * are running tasks. A helper the OS has not scheduled yet (the other core
 * busy) therefore costs nothing; the caller runs the tasks itself.
 *
 * Ordering: the job word and the joined/sleepers counters are seq_cst, so
 * "caller closes, then reads joined" and "helper joins, then re-reads the
 * job word" cannot both miss each other (likewise "helper announces sleep,
 * then re-reads the job" against "caller publishes, then reads sleepers").
 */
#include "bp_error.h"
#include "bp_pool.h"
#include "bp_abi.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

/* How long an idle helper spins before it sleeps, and how long the caller
 * spins on running helpers before it starts yielding its core to them. */
#define POOL_SPIN_NS      200000
#define POOL_WAIT_SPIN_NS 20000

struct bp_pool {
    int threads;
    pthread_t *workers;
    pthread_mutex_t run_lock; /* serialises bp__pool_run callers */
    /* The current job: (generation << 1) | open. */
    atomic_ulong job;
    atomic_int joined;   /* helpers inside the current job */
    atomic_int sleepers; /* helpers asleep (or about to be) on wake */
    atomic_bool stop;
    pthread_mutex_t lock; /* only for sleeping */
    pthread_cond_t wake;
    /* Written by the caller before it opens a job, read by helpers that
     * joined it. */
    bp_task_fn fn;
    void *arg;
    size_t ntasks;
    atomic_size_t next;
};

typedef struct worker_arg {
    bp_pool *pool;
    int index;
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void run_tasks(bp_pool *pool, int worker) {
    for (;;) {
        size_t t = atomic_fetch_add_explicit(&pool->next, 1, memory_order_relaxed);
        if (t >= pool->ntasks)
            return;
        pool->fn(pool->arg, t, worker);
    }
}

/* Waits until the job word differs from `seen` or the pool stops: spins for
 * POOL_SPIN_NS, then sleeps. Returns the new job word. */
static unsigned long wait_for_job(bp_pool *pool, unsigned long seen) {
    uint64_t start = 0;
    for (unsigned spin = 0;; spin++) {
        unsigned long j = atomic_load(&pool->job);
        if (j != seen || atomic_load_explicit(&pool->stop, memory_order_relaxed))
            return j;
        cpu_relax();
        if ((spin & 63) != 63)
            continue;
        uint64_t t = now_ns();
        if (!start)
            start = t;
        else if (t - start > POOL_SPIN_NS)
            break;
    }
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add(&pool->sleepers, 1);
    unsigned long j;
    while ((j = atomic_load(&pool->job)) == seen && !atomic_load(&pool->stop))
        pthread_cond_wait(&pool->wake, &pool->lock);
    atomic_fetch_sub(&pool->sleepers, 1);
    pthread_mutex_unlock(&pool->lock);
    return j;
}

static void *worker_main(void *p) {
    worker_arg wa = *(worker_arg *)p;
    free(p);
    bp_pool *pool = wa.pool;
    unsigned long seen = atomic_load(&pool->job);
    for (;;) {
        unsigned long j = wait_for_job(pool, seen);
        if (atomic_load(&pool->stop))
            break;
        seen = j;
        if (!(j & 1))
            continue; /* closed before this helper got here */
        atomic_fetch_add(&pool->joined, 1);
        if (atomic_load(&pool->job) == j)
            run_tasks(pool, wa.index);
        atomic_fetch_sub(&pool->joined, 1);
    }
    return NULL;
}

static void wake_sleepers(bp_pool *pool) {
    if (atomic_load(&pool->sleepers) == 0)
        return;
    pthread_mutex_lock(&pool->lock);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
}

static void stop_workers(bp_pool *pool, int started) {
    atomic_store(&pool->stop, true);
    pthread_mutex_lock(&pool->lock);
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
    atomic_init(&pool->job, 0);
    atomic_init(&pool->joined, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->stop, false);
    atomic_init(&pool->next, 0);
    pthread_mutex_init(&pool->run_lock, NULL);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
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
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    pthread_mutex_destroy(&pool->run_lock);
    free(pool);
}

int bp__pool_threads(const bp_pool *pool) {
    return pool->threads;
}

/* Waits for the helpers that joined the (closed) job: they are running
 * tasks, so spin briefly, then yield the core to them. */
static void wait_joined(bp_pool *pool) {
    uint64_t start = 0;
    for (unsigned spin = 0; atomic_load(&pool->joined) != 0; spin++) {
        if (start && now_ns() - start > POOL_WAIT_SPIN_NS) {
            sched_yield();
            continue;
        }
        cpu_relax();
        if ((spin & 63) == 63 && !start)
            start = now_ns();
    }
}

void bp__pool_run(bp_pool *pool, size_t ntasks, bp_task_fn fn, void *arg) {
    if (ntasks == 0)
        return;
    pthread_mutex_lock(&pool->run_lock);
    if (pool->threads > 1 && ntasks > 1) {
        pool->fn = fn;
        pool->arg = arg;
        pool->ntasks = ntasks;
        atomic_store_explicit(&pool->next, 0, memory_order_relaxed);
        unsigned long gen = (atomic_load_explicit(&pool->job, memory_order_relaxed) >> 1) + 1;
        atomic_store(&pool->job, (gen << 1) | 1); /* open */
        wake_sleepers(pool);
        run_tasks(pool, 0);
        atomic_store(&pool->job, gen << 1); /* closed: late helpers skip it */
        wait_joined(pool);
    } else {
        for (size_t t = 0; t < ntasks; t++)
            fn(arg, t, 0);
    }
    pthread_mutex_unlock(&pool->run_lock);
}
