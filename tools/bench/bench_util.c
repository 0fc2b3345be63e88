/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared pieces of posgate-bench (see bench.h): the clock, the latency histogram and its
 * percentiles and CDF, mapped input files, /proc readings and argument helpers.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define TIER1_END 100000ULL     /* 100 us */
#define TIER2_END 10000000ULL   /* 10 ms */
#define TIER3_END 1000000000ULL /* 1 s */

uint64_t
bench_mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void
bench_hist_init(struct bench_hist *h)
{
    memset(h, 0, sizeof *h);
}

static size_t
bin_of(uint64_t ns)
{
    if (ns < TIER1_END) {
        return (size_t)(ns / 10);
    }
    if (ns < TIER2_END) {
        return 10000 + (size_t)((ns - TIER1_END) / 1000);
    }
    if (ns < TIER3_END) {
        return 19900 + (size_t)((ns - TIER2_END) / 100000);
    }
    return BENCH_HIST_BINS - 1;
}

/* The upper edge of a bin in nanoseconds. */
static uint64_t
bin_upper_ns(size_t b)
{
    if (b < 10000) {
        return (uint64_t)(b + 1) * 10;
    }
    if (b < 19900) {
        return TIER1_END + (uint64_t)(b - 10000 + 1) * 1000;
    }
    if (b < BENCH_HIST_BINS - 1) {
        return TIER2_END + (uint64_t)(b - 19900 + 1) * 100000;
    }
    return TIER3_END;
}

void
bench_hist_add(struct bench_hist *h, uint64_t ns)
{
    h->bins[bin_of(ns)]++;
    h->count++;
    if (ns > h->max_ns) {
        h->max_ns = ns;
    }
}

void
bench_hist_merge(struct bench_hist *into, const struct bench_hist *from)
{
    for (size_t i = 0; i < BENCH_HIST_BINS; i++) {
        into->bins[i] += from->bins[i];
    }
    into->count += from->count;
    if (from->max_ns > into->max_ns) {
        into->max_ns = from->max_ns;
    }
}

double
bench_hist_quantile_us(const struct bench_hist *h, double q)
{
    uint64_t want, seen = 0;

    if (h->count == 0) {
        return 0.0;
    }
    want = (uint64_t)(q * (double)h->count);
    if (want >= h->count) {
        want = h->count - 1;
    }
    for (size_t b = 0; b < BENCH_HIST_BINS; b++) {
        seen += h->bins[b];
        if (seen > want) {
            uint64_t up = bin_upper_ns(b);
            if (b == BENCH_HIST_BINS - 1 || up > h->max_ns) {
                up = h->max_ns;
            }
            return (double)up / 1000.0;
        }
    }
    return (double)h->max_ns / 1000.0;
}

void
bench_hist_print(const struct bench_hist *h, const char *prefix)
{
    printf("%s_count=%" PRIu64 "\n", prefix, h->count);
    printf("%s_p50_us=%.3f\n", prefix, bench_hist_quantile_us(h, 0.50));
    printf("%s_p99_us=%.3f\n", prefix, bench_hist_quantile_us(h, 0.99));
    printf("%s_p999_us=%.3f\n", prefix, bench_hist_quantile_us(h, 0.999));
    printf("%s_max_us=%.3f\n", prefix, (double)h->max_ns / 1000.0);
}

int
bench_hist_write_cdf(const struct bench_hist *h, const char *path)
{
    FILE *f = fopen(path, "w");
    uint64_t seen = 0, step, next = 0;

    if (f == NULL) {
        return -1;
    }
    step = h->count / 2000 + 1;
    for (size_t b = 0; b < BENCH_HIST_BINS; b++) {
        if (h->bins[b] == 0) {
            continue;
        }
        seen += h->bins[b];
        if (seen >= next || seen == h->count) {
            uint64_t up = bin_upper_ns(b);
            if (b == BENCH_HIST_BINS - 1 || up > h->max_ns) {
                up = h->max_ns;
            }
            fprintf(f, "%.3f %.6f\n", (double)up / 1000.0, (double)seen / (double)h->count);
            next = seen + step;
        }
    }
    return fclose(f) == 0 ? 0 : -1;
}

int
bench_map_open(struct bench_map *m, const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    void *p;

    memset(m, 0, sizeof *m);
    if (fd < 0) {
        return -1;
    }
    if (fstat(fd, &st) != 0 || st.st_size <= 0) {
        close(fd);
        return -1;
    }
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        return -1;
    }
    m->data = p;
    m->len = (size_t)st.st_size;
    return 0;
}

void
bench_map_close(struct bench_map *m)
{
    if (m->data != NULL) {
        munmap((void *)(uintptr_t)m->data, m->len);
    }
    memset(m, 0, sizeof *m);
}

long
bench_map_line(struct bench_map *m, char *out, size_t cap)
{
    const char *start, *nl;
    size_t n;

    if (m->pos >= m->len) {
        return -1;
    }
    start = m->data + m->pos;
    nl = memchr(start, '\n', m->len - m->pos);
    n = nl != NULL ? (size_t)(nl - start) : m->len - m->pos;
    m->pos += n + 1;
    if (n >= cap) {
        return -1;
    }
    memcpy(out, start, n);
    out[n] = '\0';
    return (long)n;
}

size_t
bench_map_count_lines(const struct bench_map *m)
{
    size_t n = 0;

    for (size_t i = 0; i < m->len; i++) {
        if (m->data[i] == '\n') {
            n++;
        }
    }
    if (m->len > 0 && m->data[m->len - 1] != '\n') {
        n++;
    }
    return n;
}

long
bench_proc_status_kb(int pid, const char *name)
{
    char path[64], line[256];
    size_t nlen = strlen(name);
    long kb = -1;
    FILE *f;

    if (pid > 0) {
        snprintf(path, sizeof path, "/proc/%d/status", pid);
    } else {
        snprintf(path, sizeof path, "/proc/self/status");
    }
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, name, nlen) == 0 && line[nlen] == ':') {
            kb = strtol(line + nlen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

void
bench_die(const char *fmt, ...)
{
    va_list ap;

    fputs("posgate-bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

const char *
bench_arg(int argc, char **argv, const char *name, const char *dflt)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    return dflt;
}

uint64_t
bench_arg_u64(int argc, char **argv, const char *name, uint64_t dflt)
{
    const char *v = bench_arg(argc, argv, name, NULL);
    char *end = NULL;
    unsigned long long n;

    if (v == NULL) {
        return dflt;
    }
    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || v[0] == '-') {
        bench_die("%s \"%s\": expected an unsigned number", name, v);
    }
    return (uint64_t)n;
}
