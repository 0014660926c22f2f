/*
 * bp_matrix_load and bp_matrix_save against hostile or failing file systems:
 * special files never block or get read, a file is read only as far as its
 * header declares, and a save that fails partway leaves the previous file
 * intact (temporary file, fsync, rename).
 */
#include "test_util.h"
#include "tu_criterion.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(file_io, .fini = tu_suite_fini);

/* A fresh directory under /tmp; removed (with its files) by remove_dir. */
static void make_dir(char *dir, size_t cap) {
    snprintf(dir, cap, "/tmp/bp_test_file_io_XXXXXX");
    cr_assert(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
}

static size_t count_entries(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert(d, "opendir %s: %s", dir, strerror(errno));
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    char path[512];
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static bp_matrix *random_matrix(size_t rows, size_t cols, int bits) {
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    float *w = tu_xmalloc(rows * cols * sizeof *w);
    tu_fill_gauss(&rng, w, rows * cols, 1.0f);
    bp_matrix *m = tu_quantize(NULL, w, rows, cols, cols, bits, BP_QUANT_UNIFORM, 1.0f);
    free(w);
    return m;
}

static unsigned char *serialize(const bp_matrix *m, size_t *len) {
    cr_assert_eq(bp_matrix_serialize(m, NULL, 0, len), BP_OK, "%s", bp_last_error());
    unsigned char *buf = tu_xmalloc(*len);
    cr_assert_eq(bp_matrix_serialize(m, buf, *len, len), BP_OK, "%s", bp_last_error());
    return buf;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "open %s: %s", path, strerror(errno));
    cr_assert(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    cr_assert(n >= 0);
    rewind(f);
    unsigned char *buf = tu_xmalloc((size_t)n + 1);
    cr_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Bytes this process has read through read(2) and friends so far. */
static long long bytes_read_so_far(void) {
    FILE *f = fopen("/proc/self/io", "r");
    if (!f)
        return -1;
    char line[128];
    long long rchar = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "rchar: %lld", &rchar) == 1)
            break;
    fclose(f);
    return rchar;
}

static void expect_load_fails(const char *path, bp_status want, const char *needle) {
    bp_matrix *m = (bp_matrix *)(uintptr_t)1;
    bp_status st = bp_matrix_load(NULL, path, &m);
    cr_expect_eq(st, want, "load '%s': expected %s, got %s (%s)", path, bp_status_string(want),
                 bp_status_string(st), bp_last_error());
    cr_expect(m == NULL, "a failed load must set *out to NULL");
    cr_expect(strstr(bp_last_error(), needle) != NULL, "load '%s': message '%s' lacks '%s'", path,
              bp_last_error(), needle);
}

/* Opening a FIFO for reading blocks until a writer comes: the loader must
 * refuse it at once instead. The timeout turns a hang into a failure. */
Test(file_io, fifo_is_refused_without_blocking, .timeout = 20) {
    char dir[64], path[96];
    make_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/matrix.bpm", dir);
    cr_assert(mkfifo(path, 0600) == 0, "mkfifo: %s", strerror(errno));
    expect_load_fails(path, BP_ERR_IO, "is not a regular file (a FIFO)");
    remove_dir(dir);
}

Test(file_io, special_files_are_refused, .timeout = 20) {
    expect_load_fails("/tmp", BP_ERR_IO, "is not a regular file (a directory)");
    /* /dev/zero would never end; fstat says it is a character device. */
    expect_load_fails("/dev/zero", BP_ERR_IO, "is not a regular file (a character device)");
}

Test(file_io, empty_file_is_corrupt) {
    char dir[64], path[96];
    make_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/empty.bpm", dir);
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    fclose(f);
    expect_load_fails(path, BP_ERR_CORRUPT, "shorter than the header");
    remove_dir(dir);
}

/* A 2 GiB sparse file: junk, a valid matrix followed by 2 GiB of junk, and a
 * valid header that declares 2 GiB more than the file holds. Each must be
 * refused after reading the header only. */
Test(file_io, large_files_are_judged_by_their_header, .timeout = 60) {
    const off_t big = (off_t)2 << 30;
    if (bytes_read_so_far() < 0)
        cr_skip_test("/proc/self/io is not readable here");
    char dir[64], path[96];
    make_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/big.bpm", dir);

    /* Junk: 2 GiB of zero bytes. */
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert(ftruncate(fileno(f), big) == 0, "ftruncate: %s", strerror(errno));
    fclose(f);
    long long before = bytes_read_so_far();
    expect_load_fails(path, BP_ERR_CORRUPT, "bad magic");
    long long junk_read = bytes_read_so_far() - before;

    /* A valid matrix, then 2 GiB of trailing zeros. */
    bp_matrix *m = random_matrix(32, 100, 4);
    cr_assert_eq(bp_matrix_save(m, path), BP_OK, "%s", bp_last_error());
    f = fopen(path, "r+b");
    cr_assert(f);
    cr_assert(ftruncate(fileno(f), big) == 0);
    fclose(f);
    before = bytes_read_so_far();
    expect_load_fails(path, BP_ERR_CORRUPT, "trailing bytes");
    long long trailing_read = bytes_read_so_far() - before;

    /* A header declaring a payload 2 GiB larger than the file. */
    size_t len;
    unsigned char *buf = serialize(m, &len);
    uint64_t payload = 0;
    for (int i = 0; i < 8; i++)
        payload |= (uint64_t)buf[48 + i] << (8 * i);
    payload += (uint64_t)big;
    for (int i = 0; i < 8; i++)
        buf[48 + i] = (unsigned char)(payload >> (8 * i));
    f = fopen(path, "wb");
    cr_assert(f && fwrite(buf, 1, len, f) == len);
    fclose(f);
    expect_load_fails(path, BP_ERR_CORRUPT, "truncated");

    cr_expect(junk_read >= 0 && junk_read < 4096,
              "rejecting 2 GiB of junk read %lld bytes; the header is 64", junk_read);
    cr_expect(trailing_read >= 0 && trailing_read < 4096,
              "rejecting a matrix with 2 GiB of trailing bytes read %lld bytes", trailing_read);
    free(buf);
    bp_matrix_destroy(m);
    remove_dir(dir);
}

/* The loaded matrix is the saved one, byte for byte. */
Test(file_io, save_then_load_round_trips) {
    char dir[64], path[96];
    make_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/m.bpm", dir);
    bp_matrix *m = random_matrix(17, 70, 6);
    cr_assert_eq(bp_matrix_save(m, path), BP_OK, "%s", bp_last_error());
    bp_matrix *l = NULL;
    cr_assert_eq(bp_matrix_load(NULL, path, &l), BP_OK, "%s", bp_last_error());
    size_t la, lb, lf;
    unsigned char *a = serialize(m, &la), *b = serialize(l, &lb), *fb = read_file(path, &lf);
    cr_expect(la == lb && memcmp(a, b, la) == 0, "loaded matrix differs from the saved one");
    cr_expect(la == lf && memcmp(a, fb, la) == 0, "the file is not the serialized bytes");
    cr_expect_eq(count_entries(dir), 1, "save left extra files behind");
    free(a);
    free(b);
    free(fb);
    bp_matrix_destroy(l);
    bp_matrix_destroy(m);
    remove_dir(dir);
}

/*
 * A save that fails partway (the file size limit makes write(2) fail with
 * EFBIG, as a full disk would with ENOSPC) must leave the previous good file
 * as it was and no temporary file behind. The failing save runs in a child
 * process so that the limit does not apply to the test itself.
 */
Test(file_io, failed_save_keeps_the_previous_file, .timeout = 60) {
    char dir[64], path[96];
    make_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/m.bpm", dir);
    bp_matrix *good = random_matrix(8, 40, 2);
    bp_matrix *larger = random_matrix(256, 1024, 8); /* about 260 KiB */
    cr_assert_eq(bp_matrix_save(good, path), BP_OK, "%s", bp_last_error());
    size_t glen, before_len;
    unsigned char *gbytes = serialize(good, &glen), *before = read_file(path, &before_len);
    cr_assert(glen < 16384, "the good matrix must fit under the limit (%zu bytes)", glen);

    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* exit codes: 0 = BP_ERR_IO naming EFBIG, 1 = saved anyway, 2 = other */
        signal(SIGXFSZ, SIG_IGN); /* write(2) then fails with EFBIG */
        struct rlimit lim = {16384, 16384};
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
            _exit(3);
        bp_status st = bp_matrix_save(larger, path);
        if (st == BP_OK)
            _exit(1);
        _exit(st == BP_ERR_IO && strstr(bp_last_error(), strerror(EFBIG)) ? 0 : 2);
    }
    int status = 0;
    cr_assert(waitpid(pid, &status, 0) == pid);
    cr_assert(WIFEXITED(status), "the saving child died (status %d)", status);
    cr_expect_eq(WEXITSTATUS(status), 0,
                 "the limited save should fail with BP_ERR_IO naming EFBIG (child exit %d)",
                 WEXITSTATUS(status));

    size_t after_len;
    unsigned char *after = read_file(path, &after_len);
    cr_expect(after_len == before_len && memcmp(after, before, before_len) == 0,
              "a failed save changed the previous file (%zu bytes, was %zu)", after_len,
              before_len);
    bp_matrix *l = NULL;
    cr_expect_eq(bp_matrix_load(NULL, path, &l), BP_OK, "%s", bp_last_error());
    if (l) {
        size_t llen;
        unsigned char *lbytes = serialize(l, &llen);
        cr_expect(llen == glen && memcmp(lbytes, gbytes, glen) == 0,
                  "the previous matrix does not load back intact");
        free(lbytes);
        bp_matrix_destroy(l);
    }
    cr_expect_eq(count_entries(dir), 1, "a failed save left a temporary file behind");

    /* Without the limit the same save replaces the file. */
    cr_assert_eq(bp_matrix_save(larger, path), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_matrix_load(NULL, path, &l), BP_OK, "%s", bp_last_error());
    cr_expect_eq(bp_matrix_rows(l), 256);
    bp_matrix_destroy(l);
    cr_expect_eq(count_entries(dir), 1);
    free(gbytes);
    free(before);
    free(after);
    bp_matrix_destroy(good);
    bp_matrix_destroy(larger);
    remove_dir(dir);
}

/* A save into a directory that does not exist, or onto a directory, fails
 * with BP_ERR_IO and creates nothing. */
Test(file_io, save_errors_leave_nothing) {
    char dir[64], path[128];
    make_dir(dir, sizeof dir);
    bp_matrix *m = random_matrix(4, 8, 2);
    snprintf(path, sizeof path, "%s/missing/m.bpm", dir);
    bp_status st = bp_matrix_save(m, path);
    cr_expect_eq(st, BP_ERR_IO, "%s", bp_last_error());
    cr_expect(strstr(bp_last_error(), path) != NULL, "message should name the path: %s",
              bp_last_error());
    snprintf(path, sizeof path, "%s/sub", dir);
    cr_assert(mkdir(path, 0700) == 0);
    st = bp_matrix_save(m, path); /* rename(2) will not replace a directory */
    cr_expect_eq(st, BP_ERR_IO, "saving onto a directory: %s", bp_last_error());
    cr_expect_eq(count_entries(dir), 1, "a failed save left a temporary file behind");
    rmdir(path);
    cr_expect_eq(bp_matrix_save(m, ""), BP_ERR_INVALID_ARGUMENT);
    bp_matrix_destroy(m);
    remove_dir(dir);
}
