/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sorted runs: the rows of an update's snapshots wait in a scratch file, one run per list, and
 * go into entries in one merge by primary key (store_runs_flush) before the update commits.
 *
 * Why: entries is keyed by the keyed hash, so the lists' keys interleave. Each snapshot comes
 * in key order, but inserted one list after another, the second list's rows land between the
 * first list's on random pages (at 5M entries in three lists, 0.5 us an entry for the first
 * list and 1.4 us for each later one: page splits and seeks). Merged, every row of the update
 * appends in key order, as a raw sorted bulk insert does.
 *
 * The scratch file is created beside the store and unlinked at once (a crash leaves nothing),
 * never synced: a crash loses the update anyway. Each run is checked against the CRC-32 of
 * its bytes as written, so a row that changed on disk fails the update (IO) instead of being
 * installed. A run takes rows only in key order (rows of one key in any order: the feed orders
 * them by listing id, entries by template and number), as the feed reader hands a snapshot
 * over; the first row of a lower key sends every waiting row into entries and the rest of the
 * update inserts directly. A row given twice fails on entries' primary key when the runs are
 * merged (REJECTED, as when inserted directly, only later). The runs are merged into entries before
 * anything else of the update reads or changes rows: a delta, a drop, a second snapshot of a list
 * that has a run, and the commit.
 *
 * The key filter (keyfilter.h) takes a run's keys as they are merged: in key order, a new
 * filter fills from its start to its end, so the pages it maps stay few (with hundreds of
 * lists, one list's keys span the whole filter: added list by list at 50M entries in 300
 * lists, the writer's mapping held 36 MB of the import's 75 MB).
 *
 * The merge keeps both cores busy: a reader thread reads the runs back, checks their CRCs,
 * merges them and adds the keys to the filter, while the update's thread inserts the rows it
 * hands over (SQLite, ~90% of the merge's CPU, stays on the one thread that owns the
 * connection). Without a thread the update's thread does both.
 *
 * A row in the file:
 *
 *   +---------+---------+---------+---------+---------+-------+----------+-----+-----------+
 *   | k 16 B  | t       | n       | a       | f       | flags | u        | len | scope     |
 *   |         | uvarint | uvarint | uvarint | svarint | 1 B   | svarint, | 1 B | len bytes |
 *   |         |         |         |         |         | bit 0 | absent   |     | (u16 BE   |
 *   |         |         |         |         |         | open u| when open|     |  each)    |
 *   +---------+---------+---------+---------+---------+-------+----------+-----+-----------+
 *   uvarint: LEB128; svarint: LEB128 of the zigzag of the value.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <zlib.h>

#include "plat_mem.h"
#include "store_internal.h"

#define RUN_WBUF     (256 * 1024)
#define RUN_REC_MAX  (FEED_KEY_LEN + 5 * 10 + 2 + 2 * FEED_SCOPE_MAX)
#define RUN_RBUF_MIN (4 * 1024)
#define RUN_RBUF_MAX (64 * 1024)
#define RUN_RBUF_ALL (4 * 1024 * 1024) /* read buffers of all runs together, at most */
#define RUN_SUFFIX   ".rows.tmp"

/* ---------------------------------------------------------------- encoding */

static size_t
put_uvarint(uint8_t *p, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static size_t
put_svarint(uint8_t *p, int64_t v)
{
    return put_uvarint(p, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

/* false when the bytes [*off, len) hold no whole varint */
static bool
get_uvarint(const uint8_t *p, size_t len, size_t *off, uint64_t *out)
{
    uint64_t v = 0;

    for (unsigned shift = 0; shift < 64 && *off < len; shift += 7) {
        uint8_t b = p[(*off)++];

        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = v;
            return true;
        }
    }
    return false;
}

static bool
get_svarint(const uint8_t *p, size_t len, size_t *off, int64_t *out)
{
    uint64_t z;

    if (!get_uvarint(p, len, off, &z)) {
        return false;
    }
    *out = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
    return true;
}

static size_t
encode_row(const struct pending_row *r, uint8_t *p)
{
    size_t n = FEED_KEY_LEN;

    memcpy(p, r->key, FEED_KEY_LEN);
    n += put_uvarint(p + n, (uint64_t)r->tid);
    n += put_uvarint(p + n, (uint64_t)r->num);
    n += put_uvarint(p + n, (uint64_t)r->attrs);
    n += put_svarint(p + n, r->from);
    p[n++] = r->open_until ? 1 : 0;
    if (!r->open_until) {
        n += put_svarint(p + n, r->until);
    }
    p[n++] = r->scope_len;
    memcpy(p + n, r->scope, r->scope_len);
    return n + r->scope_len;
}

/* Decodes the row at p[*off..len); false when the bytes are not a whole row. */
static bool
decode_row(const uint8_t *p, size_t len, size_t *off, struct pending_row *r)
{
    uint64_t tid, num, attrs;
    size_t o = *off;

    if (len - o < FEED_KEY_LEN) {
        return false;
    }
    memcpy(r->key, p + o, FEED_KEY_LEN);
    o += FEED_KEY_LEN;
    if (!get_uvarint(p, len, &o, &tid) || !get_uvarint(p, len, &o, &num) ||
        !get_uvarint(p, len, &o, &attrs) || !get_svarint(p, len, &o, &r->from) || o >= len ||
        tid > INT64_MAX || num > INT64_MAX || attrs > INT64_MAX || p[o] > 1) {
        return false;
    }
    r->open_until = p[o++] == 1;
    r->until = 0;
    if (!r->open_until && !get_svarint(p, len, &o, &r->until)) {
        return false;
    }
    if (o >= len || p[o] > 2 * FEED_SCOPE_MAX || len - o - 1 < p[o]) {
        return false;
    }
    r->scope_len = p[o++];
    memcpy(r->scope, p + o, r->scope_len);
    o += r->scope_len;
    r->tid = (int64_t)tid;
    r->num = (int64_t)num;
    r->attrs = (int64_t)attrs;
    r->listing_id[0] = 0; /* a merged row is named by its key in messages */
    *off = o;
    return true;
}

/* The primary key order of entries: k (memcmp), then t, then n. */
static int
row_cmp(const uint8_t *ka, int64_t ta, int64_t na, const uint8_t *kb, int64_t tb, int64_t nb)
{
    int c = memcmp(ka, kb, FEED_KEY_LEN);

    if (c != 0) {
        return c;
    }
    if (ta != tb) {
        return ta < tb ? -1 : 1;
    }
    return na < nb ? -1 : (na > nb ? 1 : 0);
}

/* ---------------------------------------------------------------- writing */

static void
runs_reset(struct store_runs *w)
{
    w->n_seg = 0;
    w->in_seg = false;
    w->size = 0;
    w->wlen = 0;
    w->crc_done = 0;
}

void
store_runs_close(struct store_runs *w)
{
    if (w->fd >= 0) {
        close(w->fd);
    }
    w->fd = -1;
    plat_free(w->wbuf);
    plat_free(w->seg);
    w->wbuf = NULL;
    w->seg = NULL;
    w->cap_seg = 0;
    runs_reset(w);
}

/* Opens the scratch file beside the store; false (rows then go straight to entries) when it
 * cannot be had. */
static bool
runs_open(struct store_update *u)
{
    struct store_runs *w = &u->runs;
    const char *db = sqlite3_db_filename(u->s->db, "main");
    size_t len = db != NULL ? strlen(db) : 0;
    char *path;

    if (len == 0) {
        return false;
    }
    w->wbuf = plat_malloc(RUN_WBUF);
    path = plat_malloc(len + sizeof(RUN_SUFFIX));
    if (w->wbuf == NULL || path == NULL) {
        plat_free(path);
        return false;
    }
    memcpy(path, db, len);
    memcpy(path + len, RUN_SUFFIX, sizeof(RUN_SUFFIX));
    w->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->fd < 0 && errno == EEXIST && unlink(path) == 0) { /* left by a crash */
        w->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (w->fd >= 0) {
        (void)unlink(path);
    }
    plat_free(path);
    return w->fd >= 0;
}

/* Adds the buffered bytes not yet summed to the last run's CRC (they are all its bytes). */
static void
crc_catch_up(struct store_runs *w)
{
    if (w->n_seg > 0 && w->crc_done < w->wlen) {
        struct run_seg *s = &w->seg[w->n_seg - 1];

        s->crc = (uint32_t)crc32_z(s->crc, w->wbuf + w->crc_done, w->wlen - w->crc_done);
    }
    w->crc_done = w->wlen;
}

static enum posgate_err
write_out(struct store_update *u)
{
    struct store_runs *w = &u->runs;
    size_t done = 0;
    off_t at = (off_t)(w->size - w->wlen);

    crc_catch_up(w);

    while (done < w->wlen) {
        ssize_t n = pwrite(w->fd, w->wbuf + done, w->wlen - done, at + (off_t)done);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return store_ufail(u, POSGATE_ERR_IO,
                               "store: cannot write the rows of a snapshot beside the store: %s",
                               n < 0 ? strerror(errno) : "no progress");
        }
        done += (size_t)n;
    }
    w->wlen = 0;
    w->crc_done = 0;
    return POSGATE_OK;
}

enum posgate_err
store_runs_put(struct store_update *u, const struct pending_row *r, bool *taken)
{
    struct store_runs *w = &u->runs;
    struct run_seg *s;
    enum posgate_err err;
    size_t n;

    *taken = false;
    if (w->off) {
        return POSGATE_OK;
    }
    if (w->fd < 0 && !runs_open(u)) {
        w->off = true;
        return POSGATE_OK;
    }
    if (w->in_seg) {
        s = &w->seg[w->n_seg - 1];
        if (s->end > s->start && memcmp(r->key, w->last_key, FEED_KEY_LEN) < 0) {
            /* out of order: the waiting rows go in now, the rest directly */
            err = store_runs_flush(u);
            w->off = true;
            return err;
        }
    } else {
        if (w->n_seg == w->cap_seg) {
            size_t cap = w->cap_seg == 0 ? 8 : 2 * w->cap_seg;
            struct run_seg *seg = plat_realloc(w->seg, cap * sizeof(*seg));

            if (seg == NULL) {
                return store_ufail(u, POSGATE_ERR_NOMEM, "store: out of memory");
            }
            w->seg = seg;
            w->cap_seg = cap;
        }
        crc_catch_up(w); /* the bytes before belong to the run before */
        s = &w->seg[w->n_seg++];
        s->list_no = u->list_no;
        s->start = s->end = w->size;
        s->crc = (uint32_t)crc32_z(0, NULL, 0);
        w->in_seg = true;
    }
    if (RUN_WBUF - w->wlen < RUN_REC_MAX) {
        err = write_out(u);
        if (err != POSGATE_OK) {
            return err;
        }
    }
    n = encode_row(r, w->wbuf + w->wlen);
    w->wlen += n;
    w->size += n;
    s->end = w->size;
    memcpy(w->last_key, r->key, FEED_KEY_LEN);
    *taken = true;
    return POSGATE_OK;
}

void
store_runs_end_list(struct store_update *u)
{
    crc_catch_up(&u->runs);
    u->runs.in_seg = false;
}

bool
store_runs_has_list(const struct store_update *u, int64_t list_no)
{
    for (size_t i = 0; i < u->runs.n_seg; i++) {
        if (u->runs.seg[i].list_no == list_no) {
            return true;
        }
    }
    return false;
}

/* ---------------------------------------------------------------- merging */

struct seg_reader {
    uint64_t pos, end; /* file bytes not yet read */
    uint32_t want, crc;
    size_t off, len, cap;
    uint8_t *buf;
    struct pending_row row;
};

/* The runs read back and merged through a heap of their next rows. Only the thread that reads
 * it touches a merger; its errors carry their message in msg. */
struct merger {
    int fd;
    size_t n; /* readers in the heap */
    struct seg_reader **heap;
    char msg[STORE_ERRMSG_MAX];
};

static enum posgate_err
merge_fail(struct merger *m, const char *what)
{
    snprintf(m->msg, sizeof(m->msg), "store: %s", what);
    return POSGATE_ERR_IO;
}

/* Reads the reader's next row into rd->row; *have false at the end of its run. */
static enum posgate_err
next_row(struct merger *m, struct seg_reader *rd, bool *have)
{
    if (rd->len - rd->off < RUN_REC_MAX && rd->pos < rd->end) {
        size_t keep = rd->len - rd->off;
        size_t want = rd->cap - keep;
        ssize_t n;

        memmove(rd->buf, rd->buf + rd->off, keep);
        if ((uint64_t)want > rd->end - rd->pos) {
            want = (size_t)(rd->end - rd->pos);
        }
        do {
            n = pread(m->fd, rd->buf + keep, want, (off_t)rd->pos);
        } while (n < 0 && errno == EINTR);
        if (n <= 0) {
            snprintf(m->msg, sizeof(m->msg), "store: cannot read back the rows of a snapshot: %s",
                     n < 0 ? strerror(errno) : "file too short");
            return POSGATE_ERR_IO;
        }
        rd->crc = (uint32_t)crc32_z(rd->crc, rd->buf + keep, (size_t)n);
        rd->pos += (uint64_t)n;
        rd->off = 0;
        rd->len = keep + (size_t)n;
    }
    if (rd->off == rd->len) {
        *have = false;
        if (rd->crc != rd->want) {
            return merge_fail(m, "the rows of a snapshot changed on disk before they were "
                                 "installed (checksum differs)");
        }
        return POSGATE_OK;
    }
    if (!decode_row(rd->buf, rd->len, &rd->off, &rd->row)) {
        return merge_fail(m, "the rows of a snapshot are damaged on disk");
    }
    *have = true;
    return POSGATE_OK;
}

static bool
reader_less(const struct seg_reader *a, const struct seg_reader *b)
{
    return row_cmp(a->row.key, a->row.tid, a->row.num, b->row.key, b->row.tid, b->row.num) < 0;
}

static void
sift_down(struct seg_reader **h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;

        if (l < n && reader_less(h[l], h[m])) {
            m = l;
        }
        if (l + 1 < n && reader_less(h[l + 1], h[m])) {
            m = l + 1;
        }
        if (m == i) {
            return;
        }
        struct seg_reader *t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Reads the first row of each of the n_seg readers into the heap. */
static enum posgate_err
merger_start(struct merger *m, struct seg_reader *rds, size_t n_seg)
{
    enum posgate_err err = POSGATE_OK;
    bool have;

    m->n = 0;
    for (size_t i = 0; i < n_seg && err == POSGATE_OK; i++) {
        err = next_row(m, &rds[i], &have);
        if (err == POSGATE_OK && have) {
            m->heap[m->n++] = &rds[i];
        }
    }
    for (size_t i = m->n / 2; i-- > 0;) {
        sift_down(m->heap, m->n, i);
    }
    return err;
}

/* The next row of all runs in key order into *out; *have false when they are all read. */
static enum posgate_err
merger_next(struct merger *m, struct pending_row *out, bool *have)
{
    enum posgate_err err;
    bool more;

    *have = m->n > 0;
    if (m->n == 0) {
        return POSGATE_OK;
    }
    *out = m->heap[0]->row;
    err = next_row(m, m->heap[0], &more);
    if (err == POSGATE_OK && !more) {
        m->heap[0] = m->heap[--m->n];
    }
    sift_down(m->heap, m->n, 0);
    return err;
}

/* The merge on two cores: a reader thread reads the runs back, merges them and adds their keys
 * to the key filter (in key order, as store_kf_note_add would), and hands the rows over
 * PIPE_ROWS at a time through a ring of PIPE_SLOTS; the update's thread inserts them. The
 * reader fills slot (head + queued) % PIPE_SLOTS, the inserter empties slot head and only then
 * dequeues it, as state_digest_async does. Big slots: one wake-up per PIPE_ROWS rows. */
#define PIPE_SLOTS 4
#define PIPE_ROWS  (16 * INS_BATCH)

struct merge_pipe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct merger *m;
    struct keyfilter_writer *kf; /* NULL: the update keeps no filter */
    uint64_t adds;               /* keys the reader added; read after the join */
    unsigned head, queued;
    size_t len[PIPE_SLOTS];
    bool done;               /* the reader has handed over its last slot */
    bool stop;               /* the inserter failed: the reader stops */
    enum posgate_err err;    /* the reader's, its message in m->msg */
    struct pending_row (*rows)[PIPE_ROWS];
};

/* Queues the reader's full slot; false when the inserter stopped. *slot is the next to fill. */
static bool
pipe_hand_over(struct merge_pipe *p, unsigned *slot, size_t fill)
{
    bool go;

    pthread_mutex_lock(&p->mu);
    p->len[*slot] = fill;
    p->queued++;
    pthread_cond_broadcast(&p->cv);
    while (p->queued == PIPE_SLOTS && !p->stop) {
        pthread_cond_wait(&p->cv, &p->mu);
    }
    go = !p->stop;
    *slot = (p->head + p->queued) % PIPE_SLOTS;
    pthread_mutex_unlock(&p->mu);
    return go;
}

static void *
pipe_reader(void *arg)
{
    struct merge_pipe *p = arg;
    enum posgate_err err = POSGATE_OK;
    unsigned slot = 0;
    size_t fill = 0;
    bool have = true, go = true;

    while (go) {
        struct pending_row *r = &p->rows[slot][fill];

        err = merger_next(p->m, r, &have);
        if (err != POSGATE_OK || !have) {
            break;
        }
        if (p->kf != NULL) {
            keyfilter_add(p->kf, r->key);
        }
        p->adds++;
        if (++fill == PIPE_ROWS) {
            go = pipe_hand_over(p, &slot, fill);
            fill = 0;
        }
    }
    if (go && err == POSGATE_OK && fill > 0) {
        (void)pipe_hand_over(p, &slot, fill);
    }
    pthread_mutex_lock(&p->mu);
    p->err = err;
    p->done = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Inserts the slots the reader hands over until it is done or an insert fails. */
static enum posgate_err
pipe_insert(struct store_update *u, struct merge_pipe *p)
{
    enum posgate_err err = POSGATE_OK;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->queued == 0 && !p->done) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
        if (p->queued == 0) {
            break;
        }
        unsigned s = p->head;
        pthread_mutex_unlock(&p->mu);
        err = store_put_rows(u, p->rows[s], p->len[s]);
        pthread_mutex_lock(&p->mu);
        p->head = (p->head + 1) % PIPE_SLOTS;
        p->queued--;
        p->stop = err != POSGATE_OK;
        pthread_cond_broadcast(&p->cv);
        if (p->stop) {
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return err;
}

/* The merge through the reader thread; false (nothing read yet) when the thread cannot run. */
static bool
merge_two_threads(struct store_update *u, struct merger *m, enum posgate_err *err)
{
    struct merge_pipe p;
    pthread_t th;
    bool ok = false;

    memset(&p, 0, sizeof(p));
    p.rows = plat_malloc(PIPE_SLOTS * sizeof(*p.rows));
    if (p.rows == NULL) {
        return false;
    }
    p.m = m;
    p.kf = store_kf_writer(u); /* chosen here: kf_start reads the store */
    if (pthread_mutex_init(&p.mu, NULL) == 0) {
        if (pthread_cond_init(&p.cv, NULL) == 0) {
            if (pthread_create(&th, NULL, pipe_reader, &p) == 0) {
                *err = pipe_insert(u, &p);
                pthread_join(th, NULL);
                u->adds += p.adds;
                if (*err == POSGATE_OK && p.err != POSGATE_OK) {
                    *err = store_ufail(u, p.err, "%s", m->msg);
                }
                ok = true;
            }
            pthread_cond_destroy(&p.cv);
        }
        pthread_mutex_destroy(&p.mu);
    }
    plat_free(p.rows);
    return ok;
}

/* The merge on the update's thread alone: each row goes into entries in key order. */
static enum posgate_err
merge_one_thread(struct store_update *u, struct merger *m)
{
    struct pending_row row;
    enum posgate_err err;
    bool have;

    for (;;) {
        err = merger_next(m, &row, &have);
        if (err != POSGATE_OK) {
            return store_ufail(u, err, "%s", m->msg);
        }
        if (!have) {
            return POSGATE_OK;
        }
        err = store_put_row(u, &row);
        if (err != POSGATE_OK) {
            return err;
        }
        store_kf_note_add(u, row.key);
    }
}

enum posgate_err
store_runs_flush(struct store_update *u)
{
    struct store_runs *w = &u->runs;
    struct seg_reader *rds = NULL;
    struct merger m;
    uint8_t *bufs = NULL;
    size_t cap;
    enum posgate_err err;

    if (w->n_seg == 0) {
        return POSGATE_OK;
    }
    err = store_flush_rows(u); /* rows inserted directly go first */
    if (err == POSGATE_OK) {
        err = write_out(u);
    }
    if (err != POSGATE_OK) {
        return err;
    }
    cap = RUN_RBUF_ALL / w->n_seg;
    cap = cap < RUN_RBUF_MIN ? RUN_RBUF_MIN : (cap > RUN_RBUF_MAX ? RUN_RBUF_MAX : cap);
    memset(&m, 0, sizeof(m));
    m.fd = w->fd;
    rds = plat_calloc(w->n_seg, sizeof(*rds));
    m.heap = plat_calloc(w->n_seg, sizeof(*m.heap));
    bufs = plat_malloc(w->n_seg * cap);
    if (rds == NULL || m.heap == NULL || bufs == NULL) {
        err = store_ufail(u, POSGATE_ERR_NOMEM, "store: out of memory");
        goto out;
    }
    for (size_t i = 0; i < w->n_seg; i++) {
        rds[i].pos = w->seg[i].start;
        rds[i].end = w->seg[i].end;
        rds[i].want = w->seg[i].crc;
        rds[i].crc = (uint32_t)crc32_z(0, NULL, 0);
        rds[i].buf = bufs + i * cap;
        rds[i].cap = cap;
    }
    err = merger_start(&m, rds, w->n_seg);
    if (err != POSGATE_OK) {
        err = store_ufail(u, err, "%s", m.msg);
    } else if (!merge_two_threads(u, &m, &err)) {
        err = merge_one_thread(u, &m);
    }
    if (err == POSGATE_OK) {
        err = store_flush_rows(u);
    }
    if (err == POSGATE_OK && ftruncate(w->fd, 0) != 0) {
        err = store_ufail(u, POSGATE_ERR_IO, "store: cannot empty the rows file: %s",
                          strerror(errno));
    }
    runs_reset(w);
out:
    plat_free(rds);
    plat_free(m.heap);
    plat_free(bufs);
    return err;
}
