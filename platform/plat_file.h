/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Files: bounded whole-file reads, atomic replace (temp + fsync + rename + fsync of the
 * directory) so a reader or a crash sees the old file or the new one and never a mix, and
 * directory creation.
 */
#ifndef POSGATE_PLAT_FILE_H
#define POSGATE_PLAT_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "posgate_err.h"

/* Reads a whole file into out (reset first). NOTFOUND when absent, TOOBIG past out->max. */
POSGATE_WUR enum posgate_err plat_read_file(const char *path, struct buf *out);
/* Writes data to path atomically with the given mode (0600, 0644 ...). */
POSGATE_WUR enum posgate_err plat_write_atomic(const char *path, const void *data, size_t len,
                                               unsigned mode);
/* Renames from to to and fsyncs the directory of to. */
POSGATE_WUR enum posgate_err plat_rename_durable(const char *from, const char *to);
/* fsync of a directory. */
POSGATE_WUR enum posgate_err plat_fsync_dir(const char *dir);
/* mkdir -p with mode for the directories it creates. */
POSGATE_WUR enum posgate_err plat_mkdir_p(const char *path, unsigned mode);
/* 1 when path exists, 0 otherwise. */
int plat_exists(const char *path);
/* Removes a file; OK when it was absent. */
POSGATE_WUR enum posgate_err plat_unlink(const char *path);
/* Size of a file in bytes. */
POSGATE_WUR enum posgate_err plat_file_size(const char *path, uint64_t *out);
/* Bytes an unprivileged writer may still use on the file system holding path (statvfs
 * f_bavail * f_frsize). */
POSGATE_WUR enum posgate_err plat_fs_free(const char *path, uint64_t *out);
/* Makes path a file of size bytes whose blocks are allocated now (temp file, posix_fallocate,
 * fsync, rename): space set aside that a later unlink gives back. IO (ENOSPC) leaves no file. */
POSGATE_WUR enum posgate_err plat_file_reserve(const char *path, uint64_t size, unsigned mode);
/* Joins a and b with one '/' into out; TOOBIG when it does not fit. */
POSGATE_WUR enum posgate_err plat_path_join(char *out, size_t cap, const char *a, const char *b);

/* A file being written for an atomic replace: writes go to "<path>.tmp.<random>". */
struct plat_atomic_file {
    int fd;
    char final_path[4096];
    char tmp_path[4200];
};
POSGATE_WUR enum posgate_err plat_atomic_open(struct plat_atomic_file *f, const char *path,
                                              unsigned mode);
POSGATE_WUR enum posgate_err plat_atomic_write(struct plat_atomic_file *f, const void *data,
                                               size_t len);
/* fsync, rename into place, fsync the directory. */
POSGATE_WUR enum posgate_err plat_atomic_commit(struct plat_atomic_file *f);
/* Drops the temp file; safe after commit or on a never-opened file (fd -1). */
void plat_atomic_abort(struct plat_atomic_file *f);

/* Copies every regular file of directory src into dst (created when missing; flat, no
 * subdirectories), each with plat_write_atomic. files_max caps each file's size. */
POSGATE_WUR enum posgate_err plat_copy_dir_files(const char *src, const char *dst, size_t file_max);
/* Removes every regular file of a directory, then the directory (flat; OK when absent). */
POSGATE_WUR enum posgate_err plat_remove_dir_files(const char *dir);

/* The names of a directory's entries that keep(name) accepts, sorted by strcmp: NOTFOUND when
 * dir is absent, TOOBIG past max names, IO, NOMEM. Free with plat_names_free. */
struct plat_names {
    char **v;
    size_t n;
};
POSGATE_WUR enum posgate_err plat_dir_names(const char *dir, int (*keep)(const char *name),
                                            size_t max, struct plat_names *out);
void plat_names_free(struct plat_names *ns);

#endif
