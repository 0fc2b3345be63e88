/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The external sort of an update's rows (publish_internal.h), by (list, entry key, listing id,
 * CSV line). Rows are gathered in chunks of SORT_CHUNK fixed-size in-memory items (about 48 MB),
 * each chunk sorted with qsort and written as a run file of compact variable-length records;
 * the runs are then merged with a binary heap (an external merge sort). Memory stays bounded
 * whatever the row count (15 million rows make about 60 runs and 0.9 GB of temporary files),
 * where sorting fixed-size structs in memory would need about 3 GB. The same records hold an
 * update's staged additions and removals.
 *
 * A record (integers big-endian):
 *
 *   +------+------+---------+-----+------------+--------+---------+------+------------+
 *   | list | line | key     | len | listing_id | reason | id_type | kind | valid_from |
 *   | 2    | 8    | 16      | 1   | len        | 2      | 1       | 1    | 8          |
 *   +------+------+---------+-----+------------+--------+---------+------+------------+
 *   | valid_until | n | scope: n service indices of 2 |
 *   | 8           | 1 | 2 * n                         |
 *   +-------------+---+-------------------------------+
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plat_mem.h"
#include "publish_internal.h"

static int
item_cmp(const void *pa, const void *pb)
{
    const struct item *a = pa, *b = pb;
    int c;

    if (a->list != b->list) {
        return a->list < b->list ? -1 : 1;
    }
    c = feed_entry_compare(&a->e, &b->e);
    if (c != 0) {
        return c;
    }
    return a->line < b->line ? -1 : a->line > b->line;
}

static int
put_u(FILE *f, uint64_t v, unsigned n)
{
    uint8_t b[8];
    unsigned i;

    for (i = 0; i < n; i++) {
        b[n - 1 - i] = (uint8_t)(v >> (8 * i));
    }
    return fwrite(b, 1, n, f) == n ? 0 : -1;
}

static int
get_u(FILE *f, uint64_t *v, unsigned n)
{
    uint8_t b[8];
    unsigned i;

    if (fread(b, 1, n, f) != n) {
        return -1;
    }
    *v = 0;
    for (i = 0; i < n; i++) {
        *v = (*v << 8) | b[i];
    }
    return 0;
}

enum posgate_err
item_write(FILE *f, const struct item *it)
{
    const struct feed_entry *e = &it->e;
    unsigned i;
    int bad = 0;

    bad |= put_u(f, it->list, 2);
    bad |= put_u(f, it->line, 8);
    bad |= fwrite(e->key, 1, FEED_KEY_LEN, f) == FEED_KEY_LEN ? 0 : -1;
    bad |= put_u(f, e->listing_id_len, 1);
    bad |= fwrite(e->listing_id, 1, e->listing_id_len, f) == e->listing_id_len ? 0 : -1;
    bad |= put_u(f, e->reason, 2);
    bad |= put_u(f, e->id_type, 1);
    bad |= put_u(f, e->kind, 1);
    bad |= put_u(f, (uint64_t)e->valid_from, 8);
    bad |= put_u(f, (uint64_t)e->valid_until, 8);
    bad |= put_u(f, e->scope_count, 1);
    for (i = 0; i < e->scope_count; i++) {
        bad |= put_u(f, e->scope[i], 2);
    }
    return bad != 0 ? POSGATE_ERR_IO : POSGATE_OK;
}

/* OK, NOTFOUND at a clean end, IO/CORRUPT otherwise. */
enum posgate_err
item_read(FILE *f, struct item *it)
{
    uint64_t v;
    struct feed_entry *e = &it->e;
    unsigned i;
    int c = getc(f);

    if (c == EOF) {
        return ferror(f) ? POSGATE_ERR_IO : POSGATE_ERR_NOTFOUND;
    }
    if (ungetc(c, f) == EOF) {
        return POSGATE_ERR_IO;
    }
    memset(it, 0, sizeof *it);
    if (get_u(f, &v, 2) != 0) {
        return POSGATE_ERR_CORRUPT;
    }
    it->list = (uint16_t)v;
    if (get_u(f, &it->line, 8) != 0 || fread(e->key, 1, FEED_KEY_LEN, f) != FEED_KEY_LEN ||
        get_u(f, &v, 1) != 0 || v > FEED_LISTING_ID_MAX) {
        return POSGATE_ERR_CORRUPT;
    }
    e->listing_id_len = (uint8_t)v;
    if (fread(e->listing_id, 1, e->listing_id_len, f) != e->listing_id_len) {
        return POSGATE_ERR_CORRUPT;
    }
    e->listing_id[e->listing_id_len] = '\0';
    if (get_u(f, &v, 2) != 0) {
        return POSGATE_ERR_CORRUPT;
    }
    e->reason = (uint16_t)v;
    if (get_u(f, &v, 1) != 0) {
        return POSGATE_ERR_CORRUPT;
    }
    e->id_type = (uint8_t)v;
    if (get_u(f, &v, 1) != 0) {
        return POSGATE_ERR_CORRUPT;
    }
    e->kind = (uint8_t)v;
    if (get_u(f, &v, 8) != 0) {
        return POSGATE_ERR_CORRUPT;
    }
    e->valid_from = (int64_t)v;
    if (get_u(f, &v, 8) != 0) {
        return POSGATE_ERR_CORRUPT;
    }
    e->valid_until = (int64_t)v;
    if (get_u(f, &v, 1) != 0 || v > FEED_SCOPE_MAX) {
        return POSGATE_ERR_CORRUPT;
    }
    e->scope_count = (uint8_t)v;
    for (i = 0; i < e->scope_count; i++) {
        if (get_u(f, &v, 2) != 0) {
            return POSGATE_ERR_CORRUPT;
        }
        e->scope[i] = (uint16_t)v;
    }
    return POSGATE_OK;
}

static enum posgate_err
sorter_flush(struct sorter *s)
{
    char p[PATH_CAP];
    FILE *f;
    size_t i;
    enum posgate_err err = POSGATE_OK;

    qsort(s->chunk, s->n, sizeof *s->chunk, item_cmp);
    err = pathf(p, sizeof p, "%s/run-%zu", s->dir, s->nruns);
    if (err != POSGATE_OK) {
        return err;
    }
    f = fopen(p, "wb");
    if (f == NULL) {
        die_msg("cannot create %s: %s", p, strerror(errno));
        return POSGATE_ERR_IO;
    }
    for (i = 0; i < s->n && err == POSGATE_OK; i++) {
        err = item_write(f, &s->chunk[i]);
    }
    if (fclose(f) != 0 || err != POSGATE_OK) {
        die_msg("cannot write %s", p);
        return POSGATE_ERR_IO;
    }
    s->nruns++;
    s->n = 0;
    return POSGATE_OK;
}

enum posgate_err
sorter_add(struct sorter *s, uint16_t list, uint64_t line, const struct feed_entry *e)
{
    if (s->n == SORT_CHUNK) {
        enum posgate_err err = sorter_flush(s);

        if (err != POSGATE_OK) {
            return err;
        }
    }
    s->chunk[s->n].list = list;
    s->chunk[s->n].line = line;
    s->chunk[s->n].e = *e;
    s->n++;
    return POSGATE_OK;
}

static int
heap_less(const struct sorter *s, size_t a, size_t b)
{
    return item_cmp(&s->heads[a], &s->heads[b]) < 0;
}

static void
heap_down(struct sorter *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i, t;

        if (l < s->heap_n && heap_less(s, s->heap[l], s->heap[m])) {
            m = l;
        }
        if (r < s->heap_n && heap_less(s, s->heap[r], s->heap[m])) {
            m = r;
        }
        if (m == i) {
            return;
        }
        t = s->heap[i];
        s->heap[i] = s->heap[m];
        s->heap[m] = t;
        i = m;
    }
}

enum posgate_err
sorter_finish(struct sorter *s)
{
    char p[PATH_CAP];
    size_t i;
    enum posgate_err err;

    if (s->nruns == 0) {
        qsort(s->chunk, s->n, sizeof *s->chunk, item_cmp);
        s->mem_pos = 0;
        return POSGATE_OK;
    }
    if (s->n > 0) {
        err = sorter_flush(s);
        if (err != POSGATE_OK) {
            return err;
        }
    }
    plat_free(s->chunk);
    s->chunk = NULL;
    s->runs = plat_calloc(s->nruns, sizeof *s->runs);
    s->heads = plat_calloc(s->nruns, sizeof *s->heads);
    s->heap = plat_calloc(s->nruns, sizeof *s->heap);
    if (s->runs == NULL || s->heads == NULL || s->heap == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    for (i = 0; i < s->nruns; i++) {
        err = pathf(p, sizeof p, "%s/run-%zu", s->dir, i);
        if (err != POSGATE_OK) {
            return err;
        }
        s->runs[i] = fopen(p, "rb");
        if (s->runs[i] == NULL) {
            die_msg("cannot open %s: %s", p, strerror(errno));
            return POSGATE_ERR_IO;
        }
        err = item_read(s->runs[i], &s->heads[i]);
        if (err == POSGATE_OK) {
            s->heap[s->heap_n++] = i;
        } else if (err != POSGATE_ERR_NOTFOUND) {
            return err;
        }
    }
    for (i = s->heap_n; i-- > 0;) {
        heap_down(s, i);
    }
    return POSGATE_OK;
}

/* The next item in order: OK, NOTFOUND at the end. */
enum posgate_err
sorter_next(struct sorter *s, struct item *out)
{
    size_t r;
    enum posgate_err err;

    if (s->nruns == 0) {
        if (s->mem_pos == s->n) {
            return POSGATE_ERR_NOTFOUND;
        }
        *out = s->chunk[s->mem_pos++];
        return POSGATE_OK;
    }
    if (s->heap_n == 0) {
        return POSGATE_ERR_NOTFOUND;
    }
    r = s->heap[0];
    *out = s->heads[r];
    err = item_read(s->runs[r], &s->heads[r]);
    if (err == POSGATE_ERR_NOTFOUND) {
        s->heap[0] = s->heap[--s->heap_n];
    } else if (err != POSGATE_OK) {
        die_msg("sort run %zu is damaged", r);
        return err;
    }
    heap_down(s, 0);
    return POSGATE_OK;
}

void
sorter_cleanup(struct sorter *s)
{
    size_t i;

    for (i = 0; s->runs != NULL && i < s->nruns; i++) {
        if (s->runs[i] != NULL) {
            fclose(s->runs[i]);
        }
    }
    plat_free(s->runs);
    plat_free(s->heads);
    plat_free(s->heap);
    plat_free(s->chunk);
    memset(s, 0, sizeof *s);
}
