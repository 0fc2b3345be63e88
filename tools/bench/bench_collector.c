/* SPDX-License-Identifier: Apache-2.0 */
/*
 * "fleet" and "upload" of posgate-bench: the kiosks of the collector's benchmark
 * (tools/bench/collector-bench) and their uploads.
 *
 * fleet makes devices FIRST .. FIRST+COUNT-1 (bench_fleet.h) in a scratch directory, keeps each
 * one's device.pub as PUB/dNNNNNN.pub (for `posgate-hub enroll`) and its batches, as the
 * uploader sends them (gzip of audit_batch_json's bytes, with the batch's idempotency key), in
 * one shard file: the E events in batches of B (a backlog sent at once), and with --trickle K,
 * in a second shard, seqs 1..K again as K batches of one event each (a kiosk at its usual pace,
 * one decision between two upload rounds). The key, the queue and the reserve are removed as
 * soon as the batches are cut. The shard is a cache read back on the same machine, so its integers
 * are in the machine's byte order:
 *
 *   +--------------- one record per batch; devices in order, a device's batches in order ---+
 *   | "PGFB" | device  | batch   | n_events | last_seq | key_len | body_len | key   | body     |
 *   | 4 B    | u32     | u32     | u32      | u64      | u32     | u32      | key_  | gzip,    |
 *   |        |         |         |          |          |         |          | len B | body_len |
 *   +--------+---------+---------+----------+----------+---------+----------+-------+----------+
 *
 * upload posts every batch of every shard in DIR (--set shard: DIR/shard-*.bin, trickle:
 * DIR/trickle-*.bin; --max-devices N: those of the first N devices only) to one or more
 * collectors, as a kiosk's uploader does (POST /v1/audit, Content-Type application/json,
 * Content-Encoding gzip, Idempotency-Key), over --connections keep-alive connections spread over
 * --ports in turn. A connection takes the next device and sends its batches in order, each after
 * the previous one's answer (an uploader sends from the acknowledged seq), so batches of different
 * devices are judged at once and no device has two in flight. The answer is classified by the
 * uploader's own uploader_classify; a batch counts when it is a 200 whose acked_seq is the
 * batch's last seq. 429 and 503 are retried after a short pause (counted), a lost connection
 * is reopened (counted). The ack latency of a batch runs from its first byte sent to its 200.
 *
 * Prints PREFIX_devices, PREFIX_events, PREFIX_batches, PREFIX_wall_s, PREFIX_events_per_s,
 * PREFIX_batches_per_s, PREFIX_p50_us, PREFIX_p99_us, PREFIX_p999_us, PREFIX_max_us,
 * PREFIX_throttled, PREFIX_reconnects, PREFIX_errors, PREFIX_body_bytes, PREFIX_client_cpu_s.
 */
#define _DEFAULT_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "bench_fleet.h"
#include "hub_batch.h"
#include "plat_file.h"
#include "uploader.h"

#define REC_MAGIC  "PGFB"
#define REC_HEAD   32
#define KEY_MAX    128 /* the collector's bound on an idempotency key */
#define FLUSH_AT   (1u << 20)
#define PORTS_MAX  16
#define CONNS_MAX  256
#define ANSWER_MAX 65536
#define TRIES_MAX  50

/* ---- fleet ---- */

struct shard {
    struct plat_atomic_file f;
    struct buf out;
    uint32_t device;
    uint64_t batches, events, json_bytes, body_bytes;
    struct buf gz;
};

static int
flush_shard(struct shard *s)
{
    if (s->out.len > 0 && plat_atomic_write(&s->f, s->out.data, s->out.len) != POSGATE_OK) {
        return 1;
    }
    s->out.len = 0;
    return 0;
}

static int
put_u32(struct buf *b, uint32_t v)
{
    return buf_append(b, &v, sizeof(v)) != POSGATE_OK;
}

static int
add_batch(void *ctx, unsigned long index, const struct buf *json,
          const struct audit_batch_info *info)
{
    struct shard *s = ctx;
    char key[KEY_MAX + 1];
    uint64_t last = info->last_seq;
    size_t klen;

    if (uploader_batch_key(json->data, json->len, key, sizeof(key)) != POSGATE_OK ||
        uploader_gzip(json->data, json->len, &s->gz) != POSGATE_OK) {
        return 1;
    }
    klen = strlen(key);
    if (buf_append(&s->out, REC_MAGIC, 4) != POSGATE_OK || put_u32(&s->out, s->device) ||
        put_u32(&s->out, (uint32_t)index) || put_u32(&s->out, (uint32_t)info->n_events) ||
        buf_append(&s->out, &last, sizeof(last)) != POSGATE_OK ||
        put_u32(&s->out, (uint32_t)klen) || put_u32(&s->out, (uint32_t)s->gz.len) ||
        buf_append(&s->out, key, klen) != POSGATE_OK ||
        buf_append(&s->out, s->gz.data, s->gz.len) != POSGATE_OK) {
        return 1;
    }
    s->batches++;
    s->events += info->n_events;
    s->json_bytes += json->len;
    s->body_bytes += s->gz.len;
    return s->out.len >= FLUSH_AT ? flush_shard(s) : 0;
}

/* Moves dir/device.pub to pub/dNNNNNN.pub (another file system, perhaps) and removes dir. */
static int
keep_pub(const char *dir, const char *pubdir, unsigned long d)
{
    char from[4200], to[4200];
    struct buf pem = BUF_INIT(16384);
    int bad;

    snprintf(from, sizeof(from), "%s/device.pub", dir);
    snprintf(to, sizeof(to), "%s/d%06lu.pub", pubdir, d);
    bad = plat_read_file(from, &pem) != POSGATE_OK ||
          plat_write_atomic(to, pem.data, pem.len, 0644) != POSGATE_OK ||
          plat_remove_dir_files(dir) != POSGATE_OK;
    buf_free(&pem);
    return bad;
}

static void
shard_open(struct shard *s, const char *path)
{
    memset(s, 0, sizeof(*s));
    buf_init(&s->out, 2u * FLUSH_AT + 64u * 1024u * 1024u);
    buf_init(&s->gz, 64u * 1024u * 1024u);
    if (plat_atomic_open(&s->f, path, 0644) != POSGATE_OK) {
        bench_die("%s: cannot create", path);
    }
}

static void
shard_close(struct shard *s, const char *path, const char *prefix)
{
    if (flush_shard(s) != 0 || plat_atomic_commit(&s->f) != POSGATE_OK) {
        plat_atomic_abort(&s->f);
        bench_die("%s: cannot write the shard", path);
    }
    printf("%s_batches=%" PRIu64 "\n%s_events=%" PRIu64 "\n%s_json_bytes=%" PRIu64
           "\n%s_body_bytes=%" PRIu64 "\n",
           prefix, s->batches, prefix, s->events, prefix, s->json_bytes, prefix, s->body_bytes);
    buf_free(&s->out);
    buf_free(&s->gz);
}

/* One device: made, cut into its bulk and its trickle batches, its public key kept. */
static void
one_device(const char *dir, unsigned long d, uint64_t events, uint64_t chunk, uint64_t trickle,
           struct shard *bulk, struct shard *single, const char *pubdir)
{
    struct bench_fleet_dev *dev = NULL;
    char msg[512] = "";
    enum posgate_err err = bench_fleet_make(dir, d, (unsigned long)events, &dev, msg, sizeof(msg));

    bulk->device = (uint32_t)d;
    if (single != NULL) {
        single->device = (uint32_t)d;
    }
    if (err == POSGATE_OK) {
        err = bench_fleet_cut(dev, (unsigned long)events, (unsigned long)chunk, add_batch, bulk,
                              msg, sizeof(msg));
    }
    if (err == POSGATE_OK && single != NULL) {
        err = bench_fleet_cut(dev, (unsigned long)trickle, 1, add_batch, single, msg, sizeof(msg));
    }
    bench_fleet_free(dev);
    if (err != POSGATE_OK) {
        bench_die("device %lu: %s", d, msg);
    }
    if (keep_pub(dir, pubdir, d) != 0) {
        bench_die("device %lu: cannot keep its device.pub or clear %s", d, dir);
    }
}

int
bench_cmd_fleet(int argc, char **argv)
{
    const char *out = bench_arg(argc, argv, "--out", NULL);
    const char *tout = bench_arg(argc, argv, "--trickle-out", NULL);
    const char *pubdir = bench_arg(argc, argv, "--pub-dir", NULL);
    const char *work = bench_arg(argc, argv, "--work", NULL);
    uint64_t first = bench_arg_u64(argc, argv, "--first", 0);
    uint64_t count = bench_arg_u64(argc, argv, "--count", 0);
    uint64_t events = bench_arg_u64(argc, argv, "--events", 0);
    uint64_t chunk = bench_arg_u64(argc, argv, "--batch", 0);
    uint64_t trickle = bench_arg_u64(argc, argv, "--trickle", 0);
    struct shard bulk, single;
    char dir[4096];

    if (out == NULL || pubdir == NULL || work == NULL || count == 0 || events == 0 || chunk == 0 ||
        chunk > 10000 || first + count > UINT32_MAX || trickle > events ||
        (trickle > 0 && tout == NULL)) {
        bench_die("usage: fleet --out SHARD --pub-dir DIR --work DIR --first F --count C "
                  "--events E --batch B (1..10000) [--trickle K (<= E) --trickle-out SHARD]");
    }
    if (plat_mkdir_p(pubdir, 0755) != POSGATE_OK || plat_mkdir_p(work, 0700) != POSGATE_OK) {
        bench_die("cannot make %s or %s", pubdir, work);
    }
    shard_open(&bulk, out);
    if (trickle > 0) {
        shard_open(&single, tout);
    }
    for (uint64_t d = first; d < first + count; d++) {
        snprintf(dir, sizeof(dir), "%s/d%06" PRIu64, work, d);
        one_device(dir, (unsigned long)d, events, chunk, trickle, &bulk,
                   trickle > 0 ? &single : NULL, pubdir);
    }
    printf("fleet_devices=%" PRIu64 "\n", count);
    shard_close(&bulk, out, "fleet");
    if (trickle > 0) {
        shard_close(&single, tout, "fleet_trickle");
    }
    return 0;
}

/* ---- upload ---- */

struct rec {
    const char *key, *body;
    uint32_t device, key_len, body_len, n_events;
    uint64_t last_seq;
};

struct devrange {
    size_t first, n; /* records of one device, in batch order */
};

struct up_shared {
    struct rec *recs;
    size_t nrec;
    struct devrange *devs;
    size_t ndev;
    atomic_size_t next;
    uint16_t ports[PORTS_MAX];
    size_t nports;
    const char *path;
};

struct up_worker {
    pthread_t th;
    struct up_shared *sh;
    unsigned index;
    int fd;
    struct bench_hist *h;
    uint64_t events, batches, throttled, reconnects, errors;
    char first_err[256];
    char answer[ANSWER_MAX];
};

static uint32_t
get_u32(const char *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

/* Appends the records of one mapped shard to sh->recs; 0 on success. */
static int
index_shard(struct up_shared *sh, const struct bench_map *m, size_t *cap)
{
    size_t pos = 0;

    while (pos < m->len) {
        const char *p = m->data + pos;
        struct rec r;

        if (m->len - pos < REC_HEAD || memcmp(p, REC_MAGIC, 4) != 0) {
            return 1;
        }
        r.device = get_u32(p + 4);
        r.n_events = get_u32(p + 12);
        memcpy(&r.last_seq, p + 16, sizeof(r.last_seq));
        r.key_len = get_u32(p + 24);
        r.body_len = get_u32(p + 28);
        if (r.key_len > KEY_MAX || m->len - pos - REC_HEAD < (size_t)r.key_len + r.body_len) {
            return 1;
        }
        r.key = p + REC_HEAD;
        r.body = r.key + r.key_len;
        pos += REC_HEAD + r.key_len + r.body_len;
        if (sh->nrec == *cap) {
            struct rec *grown;

            *cap = *cap > 0 ? *cap * 2 : 4096;
            grown = realloc(sh->recs, *cap * sizeof(*grown));
            if (grown == NULL) {
                return 1;
            }
            sh->recs = grown;
        }
        sh->recs[sh->nrec++] = r;
    }
    return 0;
}

static const char *shard_prefix = "shard-"; /* upload --set */

static int
is_shard(const char *name)
{
    size_t n = strlen(name), p = strlen(shard_prefix);

    return strncmp(name, shard_prefix, p) == 0 && n > p + 4 && strcmp(name + n - 4, ".bin") == 0;
}

/* Maps DIR/shard-*.bin (maps[] kept open for the run) and groups the records by device. */
static void
load_fleet(struct up_shared *sh, const char *dir, struct bench_map **maps, size_t *nmaps)
{
    struct plat_names names = {NULL, 0};
    size_t cap = 0, dcap = 0;

    if (plat_dir_names(dir, is_shard, 100000, &names) != POSGATE_OK || names.n == 0) {
        bench_die("%s: no %s*.bin (run posgate-bench fleet first)", dir, shard_prefix);
    }
    *maps = calloc(names.n, sizeof(**maps));
    if (*maps == NULL) {
        bench_die("out of memory");
    }
    for (size_t i = 0; i < names.n; i++) {
        char path[4200];

        snprintf(path, sizeof(path), "%s/%s", dir, names.v[i]);
        if (bench_map_open(&(*maps)[i], path) != 0 || index_shard(sh, &(*maps)[i], &cap) != 0) {
            bench_die("%s: not a shard of posgate-bench fleet, or truncated", path);
        }
    }
    *nmaps = names.n;
    plat_names_free(&names);
    for (size_t i = 0; i < sh->nrec; i++) {
        if (i > 0 && sh->recs[i].device == sh->recs[i - 1].device) {
            sh->devs[sh->ndev - 1].n++;
            continue;
        }
        if (sh->ndev == dcap) {
            struct devrange *grown;

            dcap = dcap > 0 ? dcap * 2 : 1024;
            grown = realloc(sh->devs, dcap * sizeof(*grown));
            if (grown == NULL) {
                bench_die("out of memory");
            }
            sh->devs = grown;
        }
        sh->devs[sh->ndev].first = i;
        sh->devs[sh->ndev++].n = 1;
    }
}

static void up_fail(struct up_worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
up_fail(struct up_worker *w, const char *fmt, ...)
{
    va_list ap;

    if (w->errors++ == 0) {
        va_start(ap, fmt);
        vsnprintf(w->first_err, sizeof(w->first_err), fmt, ap);
        va_end(ap);
    }
}

static void
pause_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Sends one request and reads its answer on w->fd (opened when closed): 0 with *status, or -1
 * when the connection failed (then closed). */
static int
exchange(struct up_worker *w, const char *head, size_t hlen, const struct rec *r, unsigned *status,
         size_t *body_off)
{
    if (w->fd < 0) {
        w->fd = bench_connect_local(w->sh->ports[w->index % w->sh->nports]);
        if (w->fd < 0) {
            return -1;
        }
    }
    if (bench_send_all(w->fd, head, hlen, 1) == 0 &&
        bench_send_all(w->fd, r->body, r->body_len, 0) == 0 &&
        bench_read_http(w->fd, w->answer, sizeof(w->answer), status, body_off) == 0) {
        return 0;
    }
    close(w->fd);
    w->fd = -1;
    return -1;
}

/* Posts one batch until a final answer: 0 when it was acknowledged to its last seq. */
static int
post_batch(struct up_worker *w, const struct rec *r)
{
    char head[512];
    int hlen = snprintf(head, sizeof(head),
                        "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        "Content-Encoding: gzip\r\nIdempotency-Key: %.*s\r\n"
                        "Content-Length: %" PRIu32 "\r\n\r\n",
                        w->sh->path, (int)r->key_len, r->key, r->body_len);
    uint64_t t0 = plat_mono_ns();

    for (unsigned tries = 1; tries <= TRIES_MAX; tries++) {
        unsigned status = 0;
        size_t off = 0;
        struct uploader_result res;

        if (exchange(w, head, (size_t)hlen, r, &status, &off) != 0) {
            w->reconnects++;
            pause_ms(20);
            continue;
        }
        if (status == 429 || status == 503) {
            w->throttled++;
            pause_ms(10u * (tries < 10 ? tries : 10));
            continue;
        }
        memset(&res, 0, sizeof(res));
        uploader_classify((long)status, w->answer + off, strlen(w->answer + off), NULL, 0, &res);
        if (res.kind != UPLOAD_OK || res.acked_seq != r->last_seq) {
            up_fail(w,
                    "device %" PRIu32 " batch to seq %" PRIu64 ": HTTP %u, acked_seq %" PRIu64
                    ": %.160s",
                    r->device, r->last_seq, status, res.acked_seq, w->answer + off);
            return -1;
        }
        bench_hist_add(w->h, plat_mono_ns() - t0);
        w->events += r->n_events;
        w->batches++;
        return 0;
    }
    up_fail(w, "device %" PRIu32 " batch to seq %" PRIu64 ": no answer after %d tries", r->device,
            r->last_seq, TRIES_MAX);
    return -1;
}

static void *
run_uploads(void *arg)
{
    struct up_worker *w = arg;
    struct up_shared *sh = w->sh;

    for (;;) {
        size_t d = atomic_fetch_add(&sh->next, 1);

        if (d >= sh->ndev) {
            break;
        }
        for (size_t i = 0; i < sh->devs[d].n; i++) {
            if (post_batch(w, &sh->recs[sh->devs[d].first + i]) != 0) {
                break; /* the device's later batches would only open a gap */
            }
        }
    }
    if (w->fd >= 0) {
        close(w->fd);
    }
    return NULL;
}

static size_t
parse_ports(const char *s, uint16_t *ports)
{
    size_t n = 0;

    while (s != NULL && *s != '\0' && n < PORTS_MAX) {
        char *end;
        unsigned long p = strtoul(s, &end, 10);

        if (end == s || p == 0 || p > 65535 || (*end != ',' && *end != '\0')) {
            return 0;
        }
        ports[n++] = (uint16_t)p;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

static double
cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void
report(const char *prefix, const struct up_shared *sh, struct up_worker *w, uint64_t conns,
       uint64_t wall_ns)
{
    struct bench_hist *all = malloc(sizeof(*all));
    uint64_t ev = 0, ba = 0, th = 0, rc = 0, er = 0, bytes = 0;
    const char *first = "";
    double s = (double)wall_ns / 1e9;

    if (all == NULL) {
        bench_die("out of memory");
    }
    bench_hist_init(all);
    for (uint64_t i = 0; i < conns; i++) {
        bench_hist_merge(all, w[i].h);
        ev += w[i].events;
        ba += w[i].batches;
        th += w[i].throttled;
        rc += w[i].reconnects;
        if (w[i].errors > 0 && er == 0) {
            first = w[i].first_err;
        }
        er += w[i].errors;
    }
    for (size_t i = 0; i < sh->nrec; i++) {
        bytes += sh->recs[i].body_len;
    }
    printf("%s_devices=%zu\n%s_events=%" PRIu64 "\n%s_batches=%" PRIu64 "\n%s_wall_s=%.3f\n",
           prefix, sh->ndev, prefix, ev, prefix, ba, prefix, s);
    printf("%s_events_per_s=%.0f\n%s_batches_per_s=%.0f\n", prefix, (double)ev / s, prefix,
           (double)ba / s);
    bench_hist_print(all, prefix);
    printf("%s_throttled=%" PRIu64 "\n%s_reconnects=%" PRIu64 "\n%s_errors=%" PRIu64
           "\n%s_body_bytes=%" PRIu64 "\n%s_client_cpu_s=%.2f\n",
           prefix, th, prefix, rc, prefix, er, prefix, bytes, prefix, cpu_seconds());
    if (er > 0) {
        fprintf(stderr, "posgate-bench upload: %" PRIu64 " errors; first: %s\n", er, first);
    }
    free(all);
}

int
bench_cmd_upload(int argc, char **argv)
{
    const char *dir = bench_arg(argc, argv, "--fleet", NULL);
    const char *prefix = bench_arg(argc, argv, "--prefix", "upload");
    const char *set = bench_arg(argc, argv, "--set", "shard");
    uint64_t max_devices = bench_arg_u64(argc, argv, "--max-devices", 0);
    uint64_t conns = bench_arg_u64(argc, argv, "--connections", 32);
    struct up_shared sh;
    struct up_worker *w;
    struct bench_map *maps = NULL;
    size_t nmaps = 0;
    uint64_t t0, errors = 0;

    memset(&sh, 0, sizeof(sh));
    sh.path = bench_arg(argc, argv, "--path", "/v1/audit");
    sh.nports = parse_ports(bench_arg(argc, argv, "--ports", NULL), sh.ports);
    if (dir == NULL || sh.nports == 0 || conns == 0 || conns > CONNS_MAX ||
        (strcmp(set, "shard") != 0 && strcmp(set, "trickle") != 0)) {
        bench_die("usage: upload --fleet DIR --ports P[,P...] [--set shard|trickle] "
                  "[--max-devices N] [--connections 1..%d] [--path /v1/audit] [--prefix NAME]",
                  CONNS_MAX);
    }
    shard_prefix = strcmp(set, "shard") == 0 ? "shard-" : "trickle-";
    load_fleet(&sh, dir, &maps, &nmaps);
    if (max_devices > 0 && max_devices < sh.ndev) {
        sh.ndev = (size_t)max_devices;
        sh.nrec = sh.devs[sh.ndev - 1].first + sh.devs[sh.ndev - 1].n;
    }
    atomic_init(&sh.next, 0);
    w = calloc(conns, sizeof(*w));
    if (w == NULL) {
        bench_die("out of memory");
    }
    t0 = plat_mono_ns();
    for (uint64_t i = 0; i < conns; i++) {
        w[i].sh = &sh;
        w[i].index = (unsigned)i;
        w[i].fd = -1;
        w[i].h = malloc(sizeof(*w[i].h));
        if (w[i].h == NULL) {
            bench_die("out of memory");
        }
        bench_hist_init(w[i].h);
        if (pthread_create(&w[i].th, NULL, run_uploads, &w[i]) != 0) {
            bench_die("pthread_create failed");
        }
    }
    for (uint64_t i = 0; i < conns; i++) {
        pthread_join(w[i].th, NULL);
    }
    report(prefix, &sh, w, conns, plat_mono_ns() - t0);
    for (uint64_t i = 0; i < conns; i++) {
        errors += w[i].errors;
        free(w[i].h);
    }
    free(w);
    for (size_t i = 0; i < nmaps; i++) {
        bench_map_close(&maps[i]);
    }
    free(maps);
    free(sh.recs);
    free(sh.devs);
    return errors > 0 ? 1 : 0;
}

/* ---- hubparse: the hub's parse of one batch, in a loop ---- */

static int
keep_batch(void *ctx, unsigned long index, const struct buf *json,
           const struct audit_batch_info *info)
{
    (void)index;
    (void)info;
    return buf_append(ctx, json->data, json->len) == POSGATE_OK ? 0 : -1;
}

int
bench_cmd_hubparse(int argc, char **argv)
{
    const char *work = bench_arg(argc, argv, "--work", NULL);
    uint64_t events = bench_arg_u64(argc, argv, "--events", 25);
    uint64_t rounds = bench_arg_u64(argc, argv, "--rounds", 20000);
    struct bench_fleet_dev *dev = NULL;
    struct buf json = BUF_INIT(HUB_BATCH_JSON_MAX);
    struct timespec t0, t1;
    char msg[512], dir[4096];
    double s;

    if (work == NULL || events == 0 || events > 10000 || rounds == 0) {
        bench_die("usage: hubparse --work DIR [--events E (1..10000, default 25)] "
                  "[--rounds R (default 20000)]");
    }
    snprintf(dir, sizeof(dir), "%s/hubparse", work);
    if (plat_mkdir_p(work, 0700) != POSGATE_OK) {
        bench_die("hubparse: cannot make %s", work);
    }
    if (bench_fleet_make(dir, 1, (unsigned long)events, &dev, msg, sizeof(msg)) != POSGATE_OK) {
        bench_die("hubparse: %s", msg);
    }
    /* one batch of every event */
    if (bench_fleet_cut(dev, (unsigned long)events, (unsigned long)events, keep_batch, &json, msg,
                        sizeof(msg)) != POSGATE_OK) {
        bench_die("hubparse: %s", msg);
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    for (uint64_t i = 0; i < rounds; i++) {
        struct hub_batch *b = NULL;

        if (hub_batch_parse(json.data, json.len, &b, msg, sizeof(msg)) != POSGATE_OK) {
            bench_die("hubparse: %s", msg);
        }
        hub_batch_free(b);
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("hubparse_batch_bytes=%zu\n", json.len);
    printf("hubparse_events=%" PRIu64 "\n", events);
    printf("hubparse_cpu_us_per_event=%.2f\n", s * 1e6 / (double)(rounds * events));
    bench_fleet_free(dev);
    buf_free(&json);
    return 0;
}
