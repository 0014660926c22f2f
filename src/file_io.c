/*
 * File I/O shared by every saved object (see bp_file_io.h).
 */
#include "bp_file_io.h"

#include "bp_error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bp_status bp__open_regular(const char *path, int *fd_out, uint64_t *size) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return bp__fail(BP_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat info;
    if (fstat(fd, &info) != 0) {
        int err = errno;
        close(fd);
        return bp__fail(BP_ERR_IO, "cannot stat '%s': %s", path, strerror(err));
    }
    if (!S_ISREG(info.st_mode)) {
        close(fd);
        return bp__fail(BP_ERR_IO, "'%s' is not a regular file (a %s)", path,
                        S_ISDIR(info.st_mode)    ? "directory"
                        : S_ISFIFO(info.st_mode) ? "FIFO"
                        : S_ISSOCK(info.st_mode) ? "socket"
                        : S_ISCHR(info.st_mode)  ? "character device"
                        : S_ISBLK(info.st_mode)  ? "block device"
                                                 : "special file");
    }
    *fd_out = fd;
    *size = (uint64_t)info.st_size;
    return BP_OK;
}

bp_status bp__read_exact(int fd, void *buf, size_t len, const char *path) {
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t got = read(fd, p, len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return bp__fail(BP_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
        if (got == 0)
            return bp__fail(BP_ERR_IO, "cannot read '%s': the file shrank while it was read", path);
        p += got;
        len -= (size_t)got;
    }
    return BP_OK;
}

static bp_status write_all(int fd, const void *buf, size_t len, const char *path) {
    const unsigned char *p = buf;
    while (len > 0) {
        ssize_t put = write(fd, p, len);
        if (put < 0 && errno == EINTR)
            continue;
        if (put < 0)
            return bp__fail(BP_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        p += put;
        len -= (size_t)put;
    }
    return BP_OK;
}

/* "<dir>/.<base>.tmp-<pid>-<n>", created exclusively with mode 0666 & ~umask. */
static int create_temp(const char *path, char **tmp_out) {
    static atomic_uint counter;
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    size_t cap = strlen(path) + 64;
    char *tmp = malloc(cap);
    if (!tmp) {
        errno = ENOMEM;
        return -1;
    }
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(tmp, cap, "%.*s.%s.tmp-%ld-%u", (int)dir_len, path, path + dir_len, (long)getpid(),
                 atomic_fetch_add(&counter, 1u));
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0666);
        if (fd >= 0) {
            *tmp_out = tmp;
            return fd;
        }
        if (errno != EEXIST)
            break;
    }
    int err = errno;
    free(tmp);
    errno = err;
    return -1;
}

/* Make the rename durable; file systems that cannot sync a directory
 * (EINVAL) are not an error. */
static bp_status sync_directory(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate a directory name");
    bp_status st = BP_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
        st = bp__fail(BP_ERR_IO, "saved '%s', but cannot sync its directory '%s': %s", path, dir,
                      strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return st;
}

bp_status bp__save_atomic(const char *path, const void *buf, size_t len) {
    char *tmp = NULL;
    bp_status st = BP_OK;
    int fd = create_temp(path, &tmp);
    if (fd < 0)
        st = bp__fail(BP_ERR_IO, "cannot create a temporary file next to '%s': %s", path,
                      strerror(errno));
    if (!st)
        st = write_all(fd, buf, len, tmp);
    if (!st && fsync(fd) != 0)
        st = bp__fail(BP_ERR_IO, "cannot sync '%s': %s", tmp, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && !st)
        st = bp__fail(BP_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
    if (!st && rename(tmp, path) != 0)
        st = bp__fail(BP_ERR_IO, "cannot replace '%s': %s", path, strerror(errno));
    if (st && tmp)
        unlink(tmp); /* the previous file, if any, is untouched */
    if (!st)
        st = sync_directory(path);
    free(tmp);
    return st;
}
