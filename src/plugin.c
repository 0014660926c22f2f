/*
 * Loading accelerator backends (libbitplane_<name>.so.0) on first use.
 *
 * Search order, first hit wins:
 *   1. $BP_PLUGIN_DIR/libbitplane_<name>.so.0   (tests, relocated installs)
 *   2. the directory libbitplane itself was loaded from (installed layout:
 *      plugins sit next to the core library; for a static link, next to the
 *      executable or extension module that contains it)
 *   3. libbitplane_<name>.so.0 through the dynamic loader's search path
 * A successful load is cached for the process and never unloaded: contexts
 * and matrix caches hold pointers into the plugin. Failures are not cached,
 * so a caller can fix the environment and retry.
 */
#define _GNU_SOURCE /* dladdr */
#include "bp_error.h"
#include "bp_matrix.h"
#include "bp_backend.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BP_PLUGIN_MAX 4
#define BP_PATH_MAX   4096
#define BP_TRIED_MAX  2048

typedef struct loaded_plugin {
    char name[16];
    const bp_backend_ops *ops;
} loaded_plugin;

static pthread_mutex_t plugin_lock = PTHREAD_MUTEX_INITIALIZER;
static loaded_plugin plugins[BP_PLUGIN_MAX];

static const bp_plugin_host host = {
    .abi = BP_PLUGIN_ABI,
    .version = BP_VERSION_NUMBER,
    .matrix_size = sizeof(bp_matrix),
    .context_size = sizeof(bp_context),
    .args_size = sizeof(bp_gemm_args),
    .fail = bp__fail,
    .matrix_cache_get = bp__matrix_cache_get,
    .resolve_run_options = bp__resolve_run_options,
    .check_gemm_shape = bp__check_gemm_shape,
};

/* Append "path: reason; " to the list of attempts for the final message. */
static void note_attempt(char *tried, const char *path, const char *reason) {
    size_t used = strlen(tried);
    if (used < BP_TRIED_MAX)
        snprintf(tried + used, BP_TRIED_MAX - used, "%s%s: %s", used ? "; " : "", path, reason);
}

/* dlopen + entry lookup + ABI handshake. NULL on failure, reason in tried. */
static const bp_backend_ops *try_load(const char *path, const char *name, char *tried) {
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        note_attempt(tried, path, why ? why : "cannot be loaded");
        return NULL;
    }
    char symbol[64];
    snprintf(symbol, sizeof symbol, "bp_plugin_%s_entry", name);
    bp_plugin_entry_fn entry;
    *(void **)&entry = dlsym(handle, symbol);
    if (!entry) {
        char why[128];
        snprintf(why, sizeof why, "no symbol %s (not a bitplane backend)", symbol);
        note_attempt(tried, path, why);
        dlclose(handle);
        return NULL;
    }
    bp__clear_error();
    const bp_backend_ops *ops = entry(&host);
    if (!ops) {
        /* The plugin explained itself through host.fail; keep its words. */
        char why[1024];
        snprintf(why, sizeof why, "%s", bp_last_error()[0] ? bp_last_error() : "refused to load");
        note_attempt(tried, path, why);
        /* Deliberately not dlclose'd: a plugin that ran code may have
         * registered state (CUDA, OpenCL ICDs) that must not be unmapped. */
        return NULL;
    }
    return ops;
}

static bool own_directory(char *dir, size_t size) {
    Dl_info info;
    if (!dladdr((void *)&bp__plugin_load, &info) || !info.dli_fname || !info.dli_fname[0])
        return false;
    const char *slash = strrchr(info.dli_fname, '/');
    if (!slash)
        return false;
    size_t len = (size_t)(slash - info.dli_fname);
    if (len + 1 > size)
        return false;
    memcpy(dir, info.dli_fname, len);
    dir[len] = '\0';
    return true;
}

const bp_backend_ops *bp__plugin_load(const char *name, bp_status *status) {
    pthread_mutex_lock(&plugin_lock);
    for (int i = 0; i < BP_PLUGIN_MAX; i++)
        if (plugins[i].ops && strcmp(plugins[i].name, name) == 0) {
            const bp_backend_ops *ops = plugins[i].ops;
            pthread_mutex_unlock(&plugin_lock);
            *status = BP_OK;
            return ops;
        }

    char file[64], path[BP_PATH_MAX + 128], dir[BP_PATH_MAX];
    char *tried = calloc(1, BP_TRIED_MAX);
    if (!tried) {
        pthread_mutex_unlock(&plugin_lock);
        *status = bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate while loading a backend");
        return NULL;
    }
    snprintf(file, sizeof file, "libbitplane_%s.so.%d", name, BP_VERSION_MAJOR);
    const bp_backend_ops *ops = NULL;
    const char *env = getenv("BP_PLUGIN_DIR");
    if (env && env[0]) {
        snprintf(path, sizeof path, "%s/%s", env, file);
        ops = try_load(path, name, tried);
    }
    if (!ops && own_directory(dir, sizeof dir)) {
        snprintf(path, sizeof path, "%s/%s", dir, file);
        ops = try_load(path, name, tried);
    }
    if (!ops)
        ops = try_load(file, name, tried);

    if (ops) {
        for (int i = 0; i < BP_PLUGIN_MAX; i++)
            if (!plugins[i].ops) {
                snprintf(plugins[i].name, sizeof plugins[i].name, "%s", name);
                plugins[i].ops = ops;
                break;
            }
        *status = BP_OK;
    } else {
        *status = bp__fail(BP_ERR_UNSUPPORTED,
                           "the %s backend is not available: tried %s. Build it "
                           "(-DBP_%s=ON) and install it next to libbitplane, or set "
                           "BP_PLUGIN_DIR",
                           name, tried, strcmp(name, "cuda") == 0 ? "CUDA" : "OPENCL");
    }
    pthread_mutex_unlock(&plugin_lock);
    free(tried);
    return ops;
}
