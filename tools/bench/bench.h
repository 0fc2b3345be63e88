/* SPDX-License-Identifier: Apache-2.0 */
/*
 * posgate-bench: the C drivers behind tools/bench/bench. One executable, one subcommand per
 * measurement, each printing its figures as "name=value" lines on stdout for the script to
 * collect. This header holds what the subcommands share: a monotonic clock in nanoseconds, a
 * latency histogram (fixed memory, so recording a million samples adds nothing to the
 * anonymous RSS being measured) with percentiles and a CDF file for gnuplot, a mapped input
 * file read line by line, and small argument helpers.
 *
 * Histogram bins (latency in nanoseconds):
 *
 *   +----------------------+----------------------+---------------------+----------+
 *   | [0, 100 us) by 10 ns | [100 us, 10 ms) 1 us | [10 ms, 1 s) 100 us | overflow |
 *   | 10,000 bins          | 9,900 bins           | 9,900 bins          | 1 bin    |
 *   +----------------------+----------------------+---------------------+----------+
 */
#ifndef POSGATE_BENCH_H
#define POSGATE_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "plat_clock.h"

#define BENCH_HIST_BINS (10000 + 9900 + 9900 + 1)
#define BENCH_LINE_MAX  2048

struct bench_hist {
    uint64_t count;
    uint64_t max_ns;
    uint64_t bins[BENCH_HIST_BINS];
};

/* splitmix64: reproducible pseudo-random picks from a seed. */
uint64_t bench_mix(uint64_t z);
void bench_hist_init(struct bench_hist *h);
void bench_hist_add(struct bench_hist *h, uint64_t ns);
void bench_hist_merge(struct bench_hist *into, const struct bench_hist *from);
/* The latency at quantile q (0..1) in microseconds (upper edge of its bin). */
double bench_hist_quantile_us(const struct bench_hist *h, double q);
/* Prints PREFIX_p50_us, PREFIX_p99_us, PREFIX_p999_us and PREFIX_max_us lines. */
void bench_hist_print(const struct bench_hist *h, const char *prefix);
/* Writes "latency_us fraction" lines (a CDF with at most ~2,000 points); 0 on success. */
int bench_hist_write_cdf(const struct bench_hist *h, const char *path);

/* A read-only mapping of a whole file (file-backed pages, not anonymous memory). */
struct bench_map {
    const char *data;
    size_t len;
    size_t pos; /* bench_map_line cursor */
};
int bench_map_open(struct bench_map *m, const char *path);
void bench_map_close(struct bench_map *m);
/* Copies the next line (without its newline) into out, NUL-terminated; returns its length, or
 * -1 at the end of the file or for a line of cap bytes or more. Wraps around with rewind. */
long bench_map_line(struct bench_map *m, char *out, size_t cap);
/* Counts the lines of the mapping. */
size_t bench_map_count_lines(const struct bench_map *m);

/* The value of "name" in /proc/self/status (or /proc/PID/status) in kB; -1 if absent. */
long bench_proc_status_kb(int pid, const char *name);

/* Argument helpers: "--name value" pairs after the subcommand. */
const char *bench_arg(int argc, char **argv, const char *name, const char *dflt);
/* The value as an unsigned number; exits with a usage message when malformed. */
uint64_t bench_arg_u64(int argc, char **argv, const char *name, uint64_t dflt);
/* Prints "posgate-bench: MESSAGE" on stderr and exits with status 1. */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Raw HTTP over loopback TCP (bench_client.c), for the clients of "client" and "upload".
 * bench_connect_local: a connected socket to 127.0.0.1:port with TCP_NODELAY, or -1.
 * bench_send_all: 0 when all n bytes went (more: MSG_MORE, the rest of the request follows).
 * bench_read_http: reads one answer with a Content-Length into buf (NUL-terminated); 0 with
 * *status and *body_off (the body's offset in buf; may be NULL), -1 on a closed or malformed
 * stream or an answer of cap bytes or more. */
int bench_connect_local(uint16_t port);
int bench_send_all(int fd, const char *p, size_t n, int more);
int bench_read_http(int fd, char *buf, size_t cap, unsigned *status, size_t *body_off);

/* Subcommands (bench_lookup.c, bench_deny.c, bench_sqlite.c, bench_client.c, bench_httpd.c,
 * bench_proc.c, bench_collector.c, bench_pgcopy.c). */
int bench_cmd_prep(int argc, char **argv);
int bench_cmd_check(int argc, char **argv);
int bench_cmd_floor(int argc, char **argv);
int bench_cmd_naive(int argc, char **argv);
int bench_cmd_cold(int argc, char **argv);
int bench_cmd_cold_child(int argc, char **argv);
int bench_cmd_fsync(int argc, char **argv);
int bench_cmd_group(int argc, char **argv);
int bench_cmd_deny32(int argc, char **argv);
int bench_cmd_audit32(int argc, char **argv);
int bench_cmd_bulk(int argc, char **argv);
int bench_cmd_client(int argc, char **argv);
int bench_cmd_httpd(int argc, char **argv);
int bench_cmd_spawn(int argc, char **argv);
int bench_cmd_fleet(int argc, char **argv);
int bench_cmd_upload(int argc, char **argv);
int bench_cmd_pgcopy(int argc, char **argv);
int bench_cmd_hubparse(int argc, char **argv);

#endif
