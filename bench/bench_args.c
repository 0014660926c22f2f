/*
 * Command-line parsing. Every bad argument is rejected with a message that
 * names the option and the offending text (exit code 2), because the
 * harnesses that drive this tool would otherwise record a benchmark of the
 * wrong shape without noticing.
 */
#include "bench_args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define CMD_BIT(c) (1u << (c))
#define ALL_CMDS                                                                                   \
    (CMD_BIT(BENCH_CMD_GEMV) | CMD_BIT(BENCH_CMD_PEAK) | CMD_BIT(BENCH_CMD_QUANTIZE) |             \
     CMD_BIT(BENCH_CMD_ACCURACY))

static const char *const cmd_names[] = {"gemv", "peak", "quantize", "accuracy"};

void bench_usage(FILE *f) {
    fputs("usage:\n"
          "  bitplane-bench gemv [--m M] [--k K] [--batch B] [--planes 1,2,4] [--act-bits 8]\n"
          "                      [--threads T] [--reps N] [--bits 8] [--method uniform|residual]\n"
          "                      [--clip C] [--kernel "
          "auto|reference|portable|avx2|avx-vnni|avx2-lut|avx512|avx512-lut|\n"
          "                      avx512-vnni|avx512-vnni-batched|neon|neon-lut|neon-dotprod]\n"
          "                      [--seed S] [--json] [--backend cpu|cuda|opencl]\n"
          "  bitplane-bench peak [--act-bits 8,16] [--planes 1,4,8] [--m 4096] [--k 4096]\n"
          "                      [--threads T] [--reps N] [--kernel K] [--json]\n"
          "  bitplane-bench quantize [--m M] [--k K] [--method uniform|residual|both]\n"
          "                      [--clip 0,0.9,...] [--bits 8] [--threads T] [--reps N] [--json]\n"
          "  bitplane-bench accuracy [--m 1024] [--k 4096] [--batch B] [--act-bits 8,16]\n"
          "                      [--planes 1,...,8] [--method uniform|residual|both]\n"
          "                      [--clip 0,1,0.9] [--bits 8] [--threads T] [--kernel K] [--json]\n"
          "  Every command also takes [--group 0|row|32..4096] [--rotation 0|none|4..4096]\n"
          "  (0 = the library's default group size / rotation block; groups and rotation\n"
          "  blocks are powers of two and of four).\n"
          "  bitplane-bench --help\n"
          "Lists are comma-separated. Defaults: see the comment at the top of bench_main.c.\n"
          "Exit status: 0 ok, 1 library or system failure, 2 bad arguments.\n",
          f);
}

static int bad(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static int bad(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("bitplane-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    bench_usage(stderr);
    return 2;
}

/* Strict decimal integer in [lo, hi]: no sign games, no trailing junk. */
static int parse_ll(const char *opt, const char *s, long long lo, long long hi, long long *out) {
    if (*s < '0' || *s > '9')
        return bad("%s: expected an integer in %lld..%lld, got '%s'", opt, lo, hi, s);
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return bad("%s: expected an integer in %lld..%lld, got '%s'", opt, lo, hi, s);
    if (errno == ERANGE || v < lo || v > hi)
        return bad("%s: %s is out of range %lld..%lld", opt, s, lo, hi);
    *out = v;
    return 0;
}

static int parse_int(const char *opt, const char *s, int lo, int hi, int *out) {
    long long v = 0;
    int rc = parse_ll(opt, s, lo, hi, &v);
    if (rc == 0)
        *out = (int)v;
    return rc;
}

static int parse_size(const char *opt, const char *s, size_t hi, size_t *out) {
    long long v = 0;
    int rc = parse_ll(opt, s, 1, (long long)hi, &v);
    if (rc == 0)
        *out = (size_t)v;
    return rc;
}

/* Splits a comma list; every element must be non-empty. */
static int split_list(const char *opt, const char *s, char items[][32], int *n) {
    *n = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0)
            return bad("%s: empty element in list '%s'", opt, s);
        if (len >= 32)
            return bad("%s: element too long in list '%s'", opt, s);
        if (*n == BENCH_MAX_LIST)
            return bad("%s: more than %d elements in '%s'", opt, BENCH_MAX_LIST, s);
        memcpy(items[*n], p, len);
        items[*n][len] = '\0';
        (*n)++;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

static int parse_int_list(const char *opt, const char *s, int lo, int hi, int *out, int *n) {
    char items[BENCH_MAX_LIST][32];
    int rc = split_list(opt, s, items, n);
    for (int i = 0; rc == 0 && i < *n; i++)
        rc = parse_int(opt, items[i], lo, hi, &out[i]);
    return rc;
}

static int parse_clip_list(const char *opt, const char *s, float *out, int *n) {
    char items[BENCH_MAX_LIST][32];
    int rc = split_list(opt, s, items, n);
    for (int i = 0; rc == 0 && i < *n; i++) {
        char *end;
        errno = 0;
        double v = strtod(items[i], &end);
        if (*end != '\0' || end == items[i] || errno == ERANGE || !isfinite(v))
            return bad("%s: expected a number in [0, 1], got '%s'", opt, items[i]);
        if (v < 0.0 || v > 1.0)
            return bad("%s: clip %s is outside [0, 1] (0 = automatic)", opt, items[i]);
        out[i] = (float)v;
    }
    return rc;
}

static void set_defaults(bench_opts *o, bench_cmd cmd) {
    memset(o, 0, sizeof *o);
    o->cmd = cmd;
    o->k = 4096;
    o->batch = 1;
    o->threads = 1;
    o->bits = BP_DEFAULT_BITS;
    o->kernel = BP_CPU_KERNEL_AUTO;
    o->kernel_name = "auto";
    o->backend = BP_BACKEND_CPU;
    o->seed = 42;
    o->n_clip = 1;
    o->clip[0] = 0.0f;
    o->act_bits[0] = 8;
    o->n_act_bits = 1;
    o->methods = BENCH_METHOD_UNIFORM;
    switch (cmd) {
    case BENCH_CMD_GEMV:
        o->m = 65536;
        o->reps = 20;
        o->planes[0] = 1, o->planes[1] = 2, o->planes[2] = 4;
        o->n_planes = 3;
        break;
    case BENCH_CMD_PEAK:
        o->m = 4096;
        o->reps = 20;
        o->planes[0] = 1, o->planes[1] = 4, o->planes[2] = 8;
        o->n_planes = 3;
        o->act_bits[1] = 16;
        o->n_act_bits = 2;
        break;
    case BENCH_CMD_QUANTIZE:
        o->m = 65536;
        o->reps = 3;
        o->methods = BENCH_METHOD_UNIFORM | BENCH_METHOD_RESIDUAL;
        break;
    case BENCH_CMD_ACCURACY:
        o->m = 1024;
        o->reps = 1;
        o->n_planes = 0; /* 0 = every prefix 1..bits, filled in after --bits */
        o->act_bits[1] = 16;
        o->n_act_bits = 2;
        o->methods = BENCH_METHOD_UNIFORM | BENCH_METHOD_RESIDUAL;
        o->clip[0] = 0.0f, o->clip[1] = 1.0f, o->clip[2] = 0.9f;
        o->n_clip = 3;
        break;
    }
}

enum opt_id {
    OPT_M,
    OPT_K,
    OPT_BATCH,
    OPT_PLANES,
    OPT_ACT_BITS,
    OPT_THREADS,
    OPT_REPS,
    OPT_BITS,
    OPT_METHOD,
    OPT_CLIP,
    OPT_KERNEL,
    OPT_SEED,
    OPT_JSON,
    OPT_BACKEND,
    OPT_GROUP,
    OPT_ROTATION,
};

static const struct {
    const char *name;
    enum opt_id id;
    int has_value;
    unsigned cmds; /* subcommands that accept it */
} opt_table[] = {
    {"--m", OPT_M, 1, ALL_CMDS},
    {"--k", OPT_K, 1, ALL_CMDS},
    {"--batch", OPT_BATCH, 1, CMD_BIT(BENCH_CMD_GEMV) | CMD_BIT(BENCH_CMD_ACCURACY)},
    {"--planes", OPT_PLANES, 1,
     CMD_BIT(BENCH_CMD_GEMV) | CMD_BIT(BENCH_CMD_PEAK) | CMD_BIT(BENCH_CMD_ACCURACY)},
    {"--act-bits", OPT_ACT_BITS, 1,
     CMD_BIT(BENCH_CMD_GEMV) | CMD_BIT(BENCH_CMD_PEAK) | CMD_BIT(BENCH_CMD_ACCURACY)},
    {"--threads", OPT_THREADS, 1, ALL_CMDS},
    {"--reps", OPT_REPS, 1,
     CMD_BIT(BENCH_CMD_GEMV) | CMD_BIT(BENCH_CMD_PEAK) | CMD_BIT(BENCH_CMD_QUANTIZE)},
    {"--bits", OPT_BITS, 1, ALL_CMDS},
    {"--method", OPT_METHOD, 1, ALL_CMDS},
    {"--clip", OPT_CLIP, 1, ALL_CMDS},
    {"--kernel", OPT_KERNEL, 1,
     CMD_BIT(BENCH_CMD_GEMV) | CMD_BIT(BENCH_CMD_PEAK) | CMD_BIT(BENCH_CMD_ACCURACY)},
    {"--seed", OPT_SEED, 1, ALL_CMDS},
    {"--json", OPT_JSON, 0, ALL_CMDS},
    {"--backend", OPT_BACKEND, 1, CMD_BIT(BENCH_CMD_GEMV)},
    {"--group", OPT_GROUP, 1, ALL_CMDS},
    {"--rotation", OPT_ROTATION, 1, ALL_CMDS},
};

static int parse_method(const bench_opts *o, const char *s, int *out) {
    /* gemv and peak time one matrix, so "both" would be ambiguous there. */
    int many = o->cmd == BENCH_CMD_QUANTIZE || o->cmd == BENCH_CMD_ACCURACY;
    if (strcmp(s, "uniform") == 0)
        *out = BENCH_METHOD_UNIFORM;
    else if (strcmp(s, "residual") == 0)
        *out = BENCH_METHOD_RESIDUAL;
    else if (many && strcmp(s, "both") == 0)
        *out = BENCH_METHOD_UNIFORM | BENCH_METHOD_RESIDUAL;
    else
        return bad("--method: expected uniform|residual%s, got '%s'", many ? "|both" : "", s);
    return 0;
}

static int parse_kernel(const char *s, bp_cpu_kernel *out) {
    if (bp_cpu_kernel_from_name(s, out) == BP_OK)
        return 0;
    return bad("--kernel: %s", bp_last_error());
}

static int apply(bench_opts *o, enum opt_id id, const char *opt, const char *v) {
    long long ll;
    int rc;
    switch (id) {
    case OPT_M:
        return parse_size(opt, v, BP_MAX_DIM, &o->m);
    case OPT_K:
        return parse_size(opt, v, BP_MAX_DIM, &o->k);
    case OPT_BATCH:
        return parse_size(opt, v, 1 << 20, &o->batch);
    case OPT_PLANES:
        return parse_int_list(opt, v, 1, BP_MAX_BITS, o->planes, &o->n_planes);
    case OPT_ACT_BITS:
        return parse_int_list(opt, v, 1, 16, o->act_bits, &o->n_act_bits);
    case OPT_THREADS:
        return parse_int(opt, v, 1, 1024, &o->threads);
    case OPT_REPS:
        return parse_int(opt, v, 1, 1000000, &o->reps);
    case OPT_BITS:
        return parse_int(opt, v, 1, BP_MAX_BITS, &o->bits);
    case OPT_METHOD:
        return parse_method(o, v, &o->methods);
    case OPT_CLIP:
        return parse_clip_list(opt, v, o->clip, &o->n_clip);
    case OPT_KERNEL:
        o->kernel_name = v;
        return parse_kernel(v, &o->kernel);
    case OPT_SEED:
        rc = parse_ll(opt, v, 0, 0x7fffffffffffffffll, &ll);
        if (rc == 0)
            o->seed = (uint64_t)ll;
        return rc;
    case OPT_JSON:
        o->json = 1;
        return 0;
    case OPT_GROUP:
        /* "row" = one scale per row; a number as in bp_quant_options. */
        if (strcmp(v, "row") == 0) {
            o->group_size = BP_GROUP_PER_ROW;
            return 0;
        }
        return parse_int(opt, v, 0, 4096, &o->group_size);
    case OPT_ROTATION:
        if (strcmp(v, "none") == 0) {
            o->rotation = BP_ROTATION_NONE;
            return 0;
        }
        return parse_int(opt, v, 0, 4096, &o->rotation);
    case OPT_BACKEND:
        if (strcmp(v, "cpu") == 0)
            o->backend = BP_BACKEND_CPU;
        else if (strcmp(v, "cuda") == 0)
            o->backend = BP_BACKEND_CUDA;
        else if (strcmp(v, "opencl") == 0)
            o->backend = BP_BACKEND_OPENCL;
        else
            return bad("--backend: expected cpu|cuda|opencl, got '%s'", v);
        return 0;
    }
    return bad("internal: unhandled option %s", opt);
}

/* Checks that involve more than one option. */
static int check(bench_opts *o) {
    const char *cmd = cmd_names[o->cmd];
    if (o->cmd == BENCH_CMD_ACCURACY && o->n_planes == 0) {
        for (int n = 1; n <= o->bits; n++)
            o->planes[n - 1] = n;
        o->n_planes = o->bits;
    }
    for (int i = 0; i < o->n_planes; i++)
        if (o->planes[i] > o->bits)
            return bad("%s: --planes %d exceeds --bits %d", cmd, o->planes[i], o->bits);
    if (o->cmd == BENCH_CMD_GEMV && o->n_clip != 1)
        return bad("gemv: --clip takes one value, got %d", o->n_clip);
    return 0;
}

int bench_parse_args(int argc, char **argv, bench_opts *o) {
    if (argc < 2)
        return bad("missing subcommand (gemv, peak, quantize or accuracy)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        bench_usage(stdout);
        return -1;
    }
    int cmd = -1;
    for (int c = 0; c < 4; c++)
        if (strcmp(argv[1], cmd_names[c]) == 0)
            cmd = c;
    if (cmd < 0)
        return bad("unknown subcommand '%s' (expected gemv, peak, quantize or accuracy)", argv[1]);
    set_defaults(o, (bench_cmd)cmd);

    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            bench_usage(stdout);
            return -1;
        }
        /* Accept both "--opt value" and "--opt=value". */
        char name[64];
        const char *value = NULL;
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (len >= sizeof name)
            return bad("unknown option '%s'", arg);
        memcpy(name, arg, len);
        name[len] = '\0';
        size_t j = 0, nopt = sizeof opt_table / sizeof opt_table[0];
        while (j < nopt && strcmp(opt_table[j].name, name) != 0)
            j++;
        if (j == nopt)
            return bad("unknown option '%s' for %s", arg, cmd_names[cmd]);
        if (!(opt_table[j].cmds & CMD_BIT(cmd)))
            return bad("option %s does not apply to %s", name, cmd_names[cmd]);
        if (opt_table[j].has_value) {
            if (eq)
                value = eq + 1;
            else if (i + 1 < argc)
                value = argv[++i];
            else
                return bad("option %s needs a value", name);
        } else if (eq) {
            return bad("option %s takes no value", name);
        }
        int rc = apply(o, opt_table[j].id, name, value);
        if (rc)
            return rc;
    }
    return check(o);
}
