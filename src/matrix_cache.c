/* Backend copies of a matrix (device uploads), made once and freed with it. */
#include "bp_error.h"
#include "bp_matrix.h"

#include <stdlib.h>

bp_status bp__matrix_cache_get(const bp_matrix *cm, const void *owner, const void *key,
                               bp_cache_create_fn create, void *arg, void (*destroy)(void *),
                               void **data) {
    /* The cache is not part of the matrix's logical value: a const matrix
     * may gain a device copy. */
    bp_matrix *m = (bp_matrix *)cm;
    *data = NULL;
    pthread_mutex_lock(&m->cache_lock);
    for (bp_matrix_cache *c = m->caches; c; c = c->next)
        if (c->owner == owner && c->key == key) {
            *data = c->data;
            pthread_mutex_unlock(&m->cache_lock);
            return BP_OK;
        }
    /* Created under the lock so concurrent first calls upload once. */
    bp_matrix_cache *c = calloc(1, sizeof *c);
    bp_status st = c ? create(cm, arg, &c->data)
                     : bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate a matrix cache entry");
    if (st == BP_OK) {
        c->owner = owner;
        c->key = key;
        c->destroy = destroy;
        c->next = m->caches;
        m->caches = c;
        *data = c->data;
    } else {
        free(c);
    }
    pthread_mutex_unlock(&m->cache_lock);
    return st;
}

void bp__matrix_cache_free(bp_matrix *m) {
    bp_matrix_cache *c = m->caches;
    while (c) {
        bp_matrix_cache *next = c->next;
        if (c->destroy)
            c->destroy(c->data);
        free(c);
        c = next;
    }
    m->caches = NULL;
}
