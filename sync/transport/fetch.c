/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The network fetcher (fetch.h): mirrors in order, spooling so that a body reaches the caller
 * only when complete, resume of targets with Range/If-Range from a part file, conditional GET of
 * timestamp.json with a small cache, Retry-After windows per mirror, capped full-jitter backoff,
 * TLS with a pinned CA and client certificates, and the counters the daemon exports. libcurl is
 * included here and in carrier_http.c only.
 *
 * Conditional-GET cache file "<cache_dir>/<hex of the first 16 bytes of sha256(url)>.cache"
 * (written atomically; read back with every field checked; untrusted like everything fetched):
 *
 *   +------------------------------------------------------------------+
 *   | "posgate-http-cache 1\n"                                         |
 *   | "url " URL "\n"                  must equal the mirror's URL      |
 *   | "etag " ETAG "\n"                value may be empty               |
 *   | "last-modified " DATE "\n"       value may be empty               |
 *   | "length " DECIMAL "\n"           <= FETCH_COND_BODY_MAX           |
 *   | body: exactly length bytes                                       |
 *   +------------------------------------------------------------------+
 *
 * Partial target download "<spool_dir>/<hex16(sha256(name))>.part" (the bytes received so far,
 * locked with flock while a transfer writes it) and its ".meta" beside it:
 *
 *   +------------------------------------------------------------------+
 *   | "posgate-partial 1\n"                                            |
 *   | "name " NAME "\n"                the target's remote name         |
 *   | "etag " ETAG "\n"                validator for If-Range (or empty) |
 *   | "last-modified " DATE "\n"       used when there is no ETag       |
 *   +------------------------------------------------------------------+
 */
#define _DEFAULT_SOURCE
#include "fetch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "buf.h"
#include "crypto.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_log.h"
#include "plat_mem.h"
#include "plat_random.h"

#define FETCH_URL_MAX         4096
#define FETCH_PATH_MAX        4096
#define FETCH_COND_BODY_MAX   (1024 * 1024)
#define FETCH_MEM_SPOOL_MAX   ((uint64_t)512 * 1024 * 1024)
/* metadata bodies: the metadata parser's limit (tuf_meta.h TUF_META_MAX_LEN), whatever length
 * the caller allows, so no signed length can make the memory spool hold more */
#define FETCH_META_MAX ((uint64_t)16 * 1024 * 1024)
#define FETCH_ERRBODY_MAX     512
#define FETCH_HDR_MAX         256
#define FETCH_RETRY_AFTER_MAX 86400
#define FETCH_CHUNK           65536
/* part files left by syncs that never completed: older ones, and all but the newest few, go
 * (prune_stale), so no run of failed updates fills the disk */
#define FETCH_PART_MAX_AGE_S (7 * 86400)
#define FETCH_PARTS_MAX      8

/* Conditional GET state of one URL. */
struct cond_entry {
    int valid;
    char etag[FETCH_HDR_MAX];
    char last_modified[FETCH_HDR_MAX];
    struct buf body;
};

struct mirror {
    char base[FETCH_URL_MAX]; /* ends in '/' */
    int https;
    uint64_t closed_until_ns; /* plat_mono_ns() before which a Retry-After asks us to wait */
    int slow;                 /* timed out in this sync: asked after the others (fetch_sync_begin) */
    struct cond_entry ts;     /* metadata/timestamp.json */
};

struct fetch_carrier {
    struct carrier base; /* first */
    struct fetch *f;
    int targets; /* 0: metadata/, 1: targets/ */
};

struct fetch {
    struct fetch_carrier meta, tgt;
    CURL *curl;
    struct mirror *mirrors;
    size_t n_mirrors;
    char ca_file[FETCH_PATH_MAX];
    char client_cert[FETCH_PATH_MAX];
    char client_key[FETCH_PATH_MAX];
    char proxy[FETCH_URL_MAX];
    char spool_dir[FETCH_PATH_MAX - 64]; /* room for "/<32 hex>.part" */
    char cache_dir[FETCH_PATH_MAX - 64];
    char user_agent[128];
    pthread_mutex_t lock; /* guards stats */
    struct fetch_stats stats;
    long timeout_ms;          /* one transfer */
    long sync_timeout_s;      /* one sync (fetch_sync_begin) */
    uint64_t sync_deadline_ns; /* plat_mono_ns() past which no request starts or runs */
    atomic_int cancelled;      /* fetch_cancel: every transfer stops */
};

/* Where a response body goes while it arrives. */
struct spool {
    int fd; /* the part file, or -1 for memory */
    struct buf mem;
    uint64_t len; /* bytes held */
    char part[FETCH_PATH_MAX];
    char meta[FETCH_PATH_MAX];
    char etag[FETCH_HDR_MAX]; /* validator of the held bytes */
    char last_modified[FETCH_HDR_MAX];
};

/* One request. */
struct xfer {
    struct fetch *f;
    struct spool *sp;
    const char *name;
    long status;
    int started; /* first body byte seen */
    uint64_t max_len;
    uint64_t offset; /* bytes in the spool when the request was sent (resume) */
    enum posgate_err err;
    int restart; /* the resume went wrong: drop the part and ask again */
    int validator_changed; /* ... because a 206 named another validator */
    char etag[FETCH_HDR_MAX];
    char last_modified[FETCH_HDR_MAX];
    char content_range[FETCH_HDR_MAX];
    char retry_after[FETCH_HDR_MAX];
    char errbody[FETCH_ERRBODY_MAX];
    size_t errbody_len;
};

/* How one mirror's attempt ended. */
enum outcome {
    OUT_OK,
    OUT_NOTFOUND,
    OUT_TOOBIG,
    OUT_RETRY,   /* 429/5xx or a Retry-After window */
    OUT_NETWORK, /* transport, TLS, timeout, other statuses */
    OUT_LOCAL    /* a local failure (spool I/O, memory): no point in another mirror */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_ok;

static void
global_init(void)
{
    curl_init_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

/* ---- small helpers ---- */

static enum posgate_err
copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;

    if (n >= cap) {
        return POSGATE_ERR_TOOBIG;
    }
    if (n > 0) {
        memcpy(dst, src, n);
    }
    dst[n] = 0;
    return POSGATE_OK;
}

static void
count_fail(struct fetch *f, enum fetch_fail k)
{
    pthread_mutex_lock(&f->lock);
    f->stats.failures[k]++;
    pthread_mutex_unlock(&f->lock);
}

static void
count(struct fetch *f, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&f->lock);
    *field += n;
    pthread_mutex_unlock(&f->lock);
}

/* Hex of the first 16 bytes of sha256(s): a file name for a URL or a target name. */
static void
hash_name(const char *s, char out[33])
{
    uint8_t h[CRYPTO_SHA256_LEN];

    crypto_sha256(s, strlen(s), h);
    crypto_hex(h, 16, out);
    out[32] = 0;
}

/* Appends to dst (NUL-terminated, capacity cap) without overflowing. */
static void append(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
append(char *dst, size_t cap, const char *fmt, ...)
{
    size_t n = strlen(dst);
    va_list ap;

    if (n + 1 >= cap) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(dst + n, cap - n, fmt, ap);
    va_end(ap);
}

/* snprintf that truncates quietly (messages and paths whose length was checked). */
static void msgf(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
msgf(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (cap == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}

static void
unlink_quiet(const char *path)
{
    if (path[0] != 0 && plat_unlink(path) != POSGATE_OK) {
        plat_log(PLAT_LOG_WARN, "fetch: cannot remove %s", path);
    }
}

/* Appends name to base, percent-encoding what may not stand in a URL path ('%' kept: callers
 * pass already escaped role names). */
static enum posgate_err
make_url(const char *base, const char *dir, const char *name, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    int n = snprintf(out, cap, "%s%s", base, dir);
    size_t o;

    if (n < 0 || (size_t)n >= cap) {
        return POSGATE_ERR_TOOBIG;
    }
    o = (size_t)n;
    for (const unsigned char *p = (const unsigned char *)name; *p != 0; p++) {
        int keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || strchr("-._~/%!$&'()*+,;=:@", *p) != NULL;

        if (o + 4 > cap) {
            return POSGATE_ERR_TOOBIG;
        }
        if (keep) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = 0;
    return POSGATE_OK;
}

/* ---- backoff and Retry-After ---- */

const char *
fetch_fail_name(enum fetch_fail k)
{
    switch (k) {
    case FETCH_FAIL_NETWORK:
        return "network";
    case FETCH_FAIL_HTTP_4XX:
        return "http_4xx";
    case FETCH_FAIL_HTTP_5XX:
        return "http_5xx";
    case FETCH_FAIL_TLS:
        return "tls";
    case FETCH_FAIL_TIMEOUT:
        return "timeout";
    case FETCH_FAIL_TOO_BIG:
        return "too_big";
    case FETCH_FAIL_REJECTED:
        return "rejected";
    case FETCH_FAIL__COUNT:
        break;
    }
    return "unknown";
}

uint64_t
fetch_backoff_s(unsigned attempt, uint64_t base_s, uint64_t cap_s)
{
    uint64_t ceiling, r = 0;

    if (base_s == 0 || cap_s == 0) {
        return 0;
    }
    /* base << attempt <= cap exactly when base <= cap >> attempt; the shift stays below 64 */
    if (attempt >= 63 || base_s > (cap_s >> attempt)) {
        ceiling = cap_s;
    } else {
        ceiling = base_s << attempt;
    }
    if (ceiling == UINT64_MAX) {
        if (plat_random(&r, sizeof(r)) != POSGATE_OK) {
            return ceiling;
        }
        return r;
    }
    if (plat_random_below(ceiling + 1, &r) != POSGATE_OK) {
        return ceiling; /* no randomness: wait the longest, never hammer */
    }
    return r;
}

static int
parse_uint(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > max) {
            return 0;
        }
    }
    *out = v;
    return 1;
}

static int
month_index(const char *s, size_t n)
{
    static const char *const names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                        "jul", "aug", "sep", "oct", "nov", "dec"};

    if (n != 3) {
        return -1;
    }
    for (int i = 0; i < 12; i++) {
        int same = 1;

        for (size_t j = 0; j < 3; j++) {
            char c = s[j];

            if (c >= 'A' && c <= 'Z') {
                c = (char)(c - 'A' + 'a');
            }
            if (c != names[i][j]) {
                same = 0;
            }
        }
        if (same) {
            return i;
        }
    }
    return -1;
}

/* HTTP-date (RFC 9110 5.6.7): IMF-fixdate, RFC 850 or asctime form, always GMT. */
static int
parse_http_date_(const char *s, int64_t *out)
{
    uint64_t nums[2] = {0, 0}, hh = 0, mi = 0, ss = 0, year, day;
    size_t numlen[2] = {0, 0};
    int nnum = 0, month = -1, have_time = 0, nwords = 0;
    const char *p = s;

    while (*p != 0) {
        const char *t;
        size_t n;

        while (*p == ' ' || *p == ',' || *p == '-') {
            p++;
        }
        if (*p == 0) {
            break;
        }
        t = p;
        while (*p != 0 && *p != ' ' && *p != ',' && *p != '-') {
            p++;
        }
        n = (size_t)(p - t);
        if (memchr(t, ':', n) != NULL) {
            if (have_time || n != 8 || t[2] != ':' || t[5] != ':' || !parse_uint(t, 2, 23, &hh) ||
                !parse_uint(t + 3, 2, 59, &mi) || !parse_uint(t + 6, 2, 60, &ss)) {
                return 0;
            }
            have_time = 1;
        } else if (t[0] >= '0' && t[0] <= '9') {
            if (nnum == 2 || n > 4 || !parse_uint(t, n, 9999, &nums[nnum])) {
                return 0;
            }
            numlen[nnum++] = n;
        } else if (month < 0 && month_index(t, n) >= 0) {
            month = month_index(t, n);
        } else if (n == 3 && strncmp(t, "GMT", 3) == 0) {
            continue;
        } else if (nwords++ > 0) {
            return 0; /* one weekday name at most */
        }
    }
    if (!have_time || month < 0 || nnum != 2 || numlen[0] > 2) {
        return 0;
    }
    day = nums[0];
    year = nums[1];
    if (numlen[1] == 2) {
        year += year < 70 ? 2000 : 1900; /* RFC 850 two-digit years */
    } else if (numlen[1] != 4) {
        return 0;
    }
    if (day < 1 || day > 31 || year < 1970) {
        return 0;
    }
    *out = plat_days_from_civil((int64_t)year, (unsigned)month + 1, (unsigned)day) * 86400 +
           (int64_t)(hh * 3600 + mi * 60 + ss);
    return 1;
}

enum posgate_err
fetch_parse_http_date(const char *value, int64_t *out)
{
    char tmp[65];
    size_t n;

    if (value == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    n = strlen(value);
    if (n == 0 || n >= sizeof(tmp)) {
        return POSGATE_ERR_INVALID;
    }
    memcpy(tmp, value, n + 1);
    return parse_http_date_(tmp, out) ? POSGATE_OK : POSGATE_ERR_INVALID;
}

void
fetch_format_http_date(int64_t t, char *out, size_t cap)
{
    static const char *const days[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char iso[32];
    int64_t days_since = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    unsigned mo;

    /* "YYYY-MM-DDTHH:MM:SSZ" from the platform, rearranged */
    plat_time_format(t, iso, sizeof(iso));
    mo = (unsigned)((iso[5] - '0') * 10 + (iso[6] - '0'));
    if (strlen(iso) < 20 || mo < 1 || mo > 12) {
        msgf(out, cap, "%s", "Thu, 01 Jan 1970 00:00:00 GMT");
        return;
    }
    msgf(out, cap, "%s, %.2s %s %.4s %.8s GMT", days[((days_since % 7) + 7) % 7], iso + 8,
         months[mo - 1], iso, iso + 11);
}

enum posgate_err
fetch_parse_retry_after(const char *value, int64_t now, uint64_t *out_s)
{
    size_t n;
    uint64_t v;
    int64_t t;

    if (value == NULL || out_s == NULL) {
        return POSGATE_ERR_INVALID;
    }
    while (*value == ' ' || *value == '\t') {
        value++;
    }
    n = strlen(value);
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t')) {
        n--;
    }
    if (n > 0 && value[0] >= '0' && value[0] <= '9' && strspn(value, "0123456789") >= n) {
        if (n > 19 || !parse_uint(value, n, UINT64_MAX / 10, &v)) {
            v = FETCH_RETRY_AFTER_MAX; /* absurdly long: the cap */
        }
        *out_s = v > FETCH_RETRY_AFTER_MAX ? FETCH_RETRY_AFTER_MAX : v;
        return POSGATE_OK;
    }
    if (n == 0 || n > 64) {
        return POSGATE_ERR_INVALID;
    }
    {
        char tmp[65];

        memcpy(tmp, value, n);
        tmp[n] = 0;
        if (!parse_http_date_(tmp, &t)) {
            return POSGATE_ERR_INVALID;
        }
    }
    if (t <= now) {
        *out_s = 0;
    } else {
        *out_s = (uint64_t)(t - now) > FETCH_RETRY_AFTER_MAX ? FETCH_RETRY_AFTER_MAX
                                                             : (uint64_t)(t - now);
    }
    return POSGATE_OK;
}

/* ---- the conditional-GET cache on disk ---- */

static int
take_line(const uint8_t **p, const uint8_t *end, const char *key, char *val, size_t cap)
{
    size_t kl = strlen(key);
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t vl;

    if (nl == NULL || (size_t)(nl - *p) < kl + 1 || memcmp(*p, key, kl) != 0 || (*p)[kl] != ' ') {
        return 0;
    }
    vl = (size_t)(nl - *p) - kl - 1;
    if (vl >= cap) {
        return 0;
    }
    memcpy(val, *p + kl + 1, vl);
    val[vl] = 0;
    for (size_t i = 0; i < vl; i++) {
        if ((unsigned char)val[i] < 0x20) {
            return 0;
        }
    }
    *p = nl + 1;
    return 1;
}

static void
cache_path(const struct fetch *f, const char *url, char *out, size_t cap)
{
    char h[33];

    hash_name(url, h);
    msgf(out, cap, "%s/%s.cache", f->cache_dir, h);
}

static void
cache_load(struct fetch *f, struct mirror *m)
{
    char url[FETCH_URL_MAX + 32], path[FETCH_PATH_MAX + 64], got_url[FETCH_URL_MAX + 32];
    char lenbuf[32];
    struct buf raw = BUF_INIT(FETCH_COND_BODY_MAX + 3 * FETCH_URL_MAX);
    const uint8_t *p, *end;
    uint64_t len;

    if (f->cache_dir[0] == 0) {
        return;
    }
    snprintf(url, sizeof(url), "%smetadata/timestamp.json", m->base);
    cache_path(f, url, path, sizeof(path));
    if (plat_read_file(path, &raw) != POSGATE_OK) {
        goto out;
    }
    p = raw.data;
    end = raw.data + raw.len;
    if (raw.len < 21 || memcmp(p, "posgate-http-cache 1\n", 21) != 0) {
        goto bad;
    }
    p += 21;
    if (!take_line(&p, end, "url", got_url, sizeof(got_url)) || strcmp(got_url, url) != 0 ||
        !take_line(&p, end, "etag", m->ts.etag, sizeof(m->ts.etag)) ||
        !take_line(&p, end, "last-modified", m->ts.last_modified, sizeof(m->ts.last_modified)) ||
        !take_line(&p, end, "length", lenbuf, sizeof(lenbuf)) ||
        !parse_uint(lenbuf, strlen(lenbuf), FETCH_COND_BODY_MAX, &len) ||
        (uint64_t)(end - p) != len) {
        goto bad;
    }
    buf_reset(&m->ts.body);
    if (buf_append(&m->ts.body, p, (size_t)len) != POSGATE_OK) {
        goto bad;
    }
    m->ts.valid = m->ts.etag[0] != 0 || m->ts.last_modified[0] != 0;
    goto out;
bad:
    plat_log(PLAT_LOG_WARN, "fetch: ignoring the unreadable cache file %s", path);
    m->ts.valid = 0;
    m->ts.etag[0] = 0;
    m->ts.last_modified[0] = 0;
out:
    buf_free(&raw);
}

static void
cache_save(struct fetch *f, const char *url, const struct cond_entry *e)
{
    char path[FETCH_PATH_MAX + 64];
    struct buf out = BUF_INIT(FETCH_COND_BODY_MAX + 3 * FETCH_URL_MAX);

    if (f->cache_dir[0] == 0) {
        return;
    }
    cache_path(f, url, path, sizeof(path));
    if (buf_printf(&out, "posgate-http-cache 1\nurl %s\netag %s\nlast-modified %s\nlength %zu\n",
                   url, e->etag, e->last_modified, e->body.len) != POSGATE_OK ||
        buf_append(&out, e->body.data, e->body.len) != POSGATE_OK ||
        plat_write_atomic(path, out.data, out.len, 0600) != POSGATE_OK) {
        plat_log(PLAT_LOG_WARN, "fetch: cannot write the cache file %s", path);
    }
    buf_free(&out);
}

/* ---- spools ---- */

static void
spool_close(struct spool *sp, int remove_files)
{
    if (sp->fd >= 0) {
        close(sp->fd); /* drops the flock */
        sp->fd = -1;
    }
    if (remove_files && sp->part[0] != 0) {
        unlink_quiet(sp->part);
        unlink_quiet(sp->meta);
    }
    buf_free(&sp->mem);
}

void
fetch_prune_spool(struct fetch *f, unsigned *removed)
{
    DIR *d;
    struct dirent *de;
    unsigned n = 0;

    if (removed != NULL) {
        *removed = 0;
    }
    if (f == NULL || f->spool_dir[0] == 0 || (d = opendir(f->spool_dir)) == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        char part[FETCH_PATH_MAX], meta[FETCH_PATH_MAX];
        int fd;

        if (len != 32 + 5 || strcmp(de->d_name + 32, ".part") != 0) {
            continue; /* only our "<32 hex>.part" names */
        }
        msgf(part, sizeof(part), "%s/%s", f->spool_dir, de->d_name);
        msgf(meta, sizeof(meta), "%s/%.32s.meta", f->spool_dir, de->d_name);
        fd = open(part, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            continue;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) { /* not in a transfer */
            unlink_quiet(meta);
            if (unlink(part) == 0) {
                n++;
            }
        }
        close(fd);
    }
    closedir(d);
    if (n > 0) {
        plat_log(PLAT_LOG_INFO, "fetch: removed %u partial download(s) of targets no longer needed",
                 n);
    }
    if (removed != NULL) {
        *removed = n;
    }
}

/* Removes part files older than FETCH_PART_MAX_AGE_S and all but the FETCH_PARTS_MAX newest,
 * except one a transfer holds (flock); and ".meta" files whose part is gone. */
static void
prune_stale(struct fetch *f)
{
    struct {
        char name[40];
        int64_t mtime;
    } keep[FETCH_PARTS_MAX + 1];
    size_t n_keep = 0;
    unsigned removed = 0;
    int64_t now = plat_wall_s();
    DIR *d;
    struct dirent *de;

    if (f->spool_dir[0] == 0 || (d = opendir(f->spool_dir)) == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        char part[FETCH_PATH_MAX], meta[FETCH_PATH_MAX], victim[40];
        struct stat st;
        int fd;

        if (len == 32 + 5 && strcmp(de->d_name + 32, ".meta") == 0) {
            msgf(part, sizeof(part), "%s/%.32s.part", f->spool_dir, de->d_name);
            msgf(meta, sizeof(meta), "%s/%s", f->spool_dir, de->d_name);
            if (!plat_exists(part)) {
                unlink_quiet(meta);
            }
            continue;
        }
        if (len != 32 + 5 || strcmp(de->d_name + 32, ".part") != 0) {
            continue;
        }
        msgf(part, sizeof(part), "%s/%s", f->spool_dir, de->d_name);
        if (lstat(part, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        victim[0] = 0;
        if (now - (int64_t)st.st_mtime > FETCH_PART_MAX_AGE_S) {
            snprintf(victim, sizeof(victim), "%.39s", de->d_name);
        } else {
            /* keep the newest FETCH_PARTS_MAX: insert by mtime, the oldest falls out */
            size_t at = n_keep;

            while (at > 0 && keep[at - 1].mtime < (int64_t)st.st_mtime) {
                at--;
            }
            memmove(&keep[at + 1], &keep[at], (n_keep - at) * sizeof(keep[0]));
            snprintf(keep[at].name, sizeof(keep[at].name), "%.39s", de->d_name);
            keep[at].mtime = (int64_t)st.st_mtime;
            if (n_keep < FETCH_PARTS_MAX) {
                n_keep++;
            } else {
                snprintf(victim, sizeof(victim), "%s", keep[FETCH_PARTS_MAX].name);
            }
        }
        if (victim[0] == 0) {
            continue;
        }
        msgf(part, sizeof(part), "%s/%s", f->spool_dir, victim);
        msgf(meta, sizeof(meta), "%s/%.32s.meta", f->spool_dir, victim);
        fd = open(part, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            continue;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && unlink(part) == 0) {
            unlink_quiet(meta);
            removed++;
        }
        close(fd);
    }
    closedir(d);
    if (removed > 0) {
        plat_log(PLAT_LOG_INFO,
                 "fetch: removed %u abandoned partial download(s) (older than %d days, or past "
                 "the newest %d)",
                 removed, FETCH_PART_MAX_AGE_S / 86400, FETCH_PARTS_MAX);
    }
}

/* Opens the spool for one fetch: the part file of a target when there is a spool dir (its
 * bytes and validator loaded for a resume), else memory. */
static enum posgate_err
spool_open(struct fetch *f, int targets, const char *name, uint64_t max_len, struct spool *sp)
{
    char h[33], line[FETCH_HDR_MAX + 32];
    struct buf raw = BUF_INIT(4 * FETCH_HDR_MAX + CARRIER_NAME_MAX + 64);
    struct stat st;

    memset(sp, 0, sizeof(*sp));
    sp->fd = -1;
    buf_init(&sp->mem, (size_t)(max_len < FETCH_MEM_SPOOL_MAX ? max_len : FETCH_MEM_SPOOL_MAX));
    if (!targets || f->spool_dir[0] == 0) {
        return POSGATE_OK;
    }
    hash_name(name, h);
    msgf(sp->part, sizeof(sp->part), "%s/%s.part", f->spool_dir, h);
    msgf(sp->meta, sizeof(sp->meta), "%s/%s.meta", f->spool_dir, h);
    sp->fd = open(sp->part, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (sp->fd < 0) {
        plat_log(PLAT_LOG_WARN, "fetch: cannot open %s (%s); downloading into memory", sp->part,
                 strerror(errno));
        sp->part[0] = 0;
        return POSGATE_OK;
    }
    if (flock(sp->fd, LOCK_EX | LOCK_NB) != 0) {
        /* another process resumes this file right now: do not touch it */
        close(sp->fd);
        sp->fd = -1;
        sp->part[0] = 0;
        return POSGATE_OK;
    }
    if (fstat(sp->fd, &st) != 0) {
        return POSGATE_ERR_IO;
    }
    sp->len = (uint64_t)st.st_size;
    if (sp->len > 0) {
        const uint8_t *p, *end;
        int ok = plat_read_file(sp->meta, &raw) == POSGATE_OK;

        p = raw.data;
        end = raw.data + raw.len;
        ok = ok && raw.len >= 18 && memcmp(p, "posgate-partial 1\n", 18) == 0;
        if (ok) {
            p += 18;
            ok = take_line(&p, end, "name", line, sizeof(line)) && strcmp(line, name) == 0 &&
                 take_line(&p, end, "etag", sp->etag, sizeof(sp->etag)) &&
                 take_line(&p, end, "last-modified", sp->last_modified, sizeof(sp->last_modified));
        }
        /* resume only with a validator, and only when something is left to fetch */
        if (!ok || (sp->etag[0] == 0 && sp->last_modified[0] == 0) || sp->len >= max_len) {
            if (ftruncate(sp->fd, 0) != 0) {
                buf_free(&raw);
                return POSGATE_ERR_IO;
            }
            sp->len = 0;
            sp->etag[0] = 0;
            sp->last_modified[0] = 0;
        }
    }
    buf_free(&raw);
    if (lseek(sp->fd, (off_t)sp->len, SEEK_SET) < 0) {
        return POSGATE_ERR_IO;
    }
    return POSGATE_OK;
}

static enum posgate_err
spool_truncate(struct spool *sp)
{
    sp->len = 0;
    sp->etag[0] = 0;
    sp->last_modified[0] = 0;
    buf_reset(&sp->mem);
    if (sp->fd >= 0) {
        unlink_quiet(sp->meta);
        if (ftruncate(sp->fd, 0) != 0 || lseek(sp->fd, 0, SEEK_SET) < 0) {
            return POSGATE_ERR_IO;
        }
    }
    return POSGATE_OK;
}

static enum posgate_err
spool_write(struct spool *sp, const void *data, size_t n)
{
    const uint8_t *p = data;

    if (sp->fd < 0) {
        enum posgate_err err = buf_append(&sp->mem, data, n);

        if (err == POSGATE_OK) {
            sp->len += n;
        }
        return err;
    }
    while (n > 0) {
        ssize_t w = write(sp->fd, p, n);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return POSGATE_ERR_IO;
        }
        p += w;
        n -= (size_t)w;
        sp->len += (uint64_t)w;
    }
    return POSGATE_OK;
}

/* Records the validator of the bytes now being written (the start of a 200). */
static void
spool_set_validator(struct spool *sp, const char *name, const char *etag, const char *lm)
{
    struct buf out = BUF_INIT(4 * FETCH_HDR_MAX + CARRIER_NAME_MAX + 64);

    snprintf(sp->etag, sizeof(sp->etag), "%s", etag);
    snprintf(sp->last_modified, sizeof(sp->last_modified), "%s", lm);
    if (sp->fd < 0) {
        return;
    }
    if (buf_printf(&out, "posgate-partial 1\nname %s\netag %s\nlast-modified %s\n", name, etag,
                   lm) != POSGATE_OK ||
        plat_write_atomic(sp->meta, out.data, out.len, 0600) != POSGATE_OK) {
        plat_log(PLAT_LOG_WARN, "fetch: cannot write %s; this download cannot be resumed",
                 sp->meta);
    }
    buf_free(&out);
}

/* Feeds the complete spool into the caller's sink. */
static enum posgate_err
spool_replay(struct spool *sp, const struct carrier_sink *sink)
{
    uint8_t *chunk;
    enum posgate_err err = POSGATE_OK;
    uint64_t left = sp->len;

    if (sp->fd < 0) {
        return sp->len > 0 ? sink->write(sink->ctx, sp->mem.data, sp->mem.len) : POSGATE_OK;
    }
    if (lseek(sp->fd, 0, SEEK_SET) < 0) {
        return POSGATE_ERR_IO;
    }
    chunk = plat_malloc(FETCH_CHUNK);
    if (chunk == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    while (left > 0 && err == POSGATE_OK) {
        size_t want = left < FETCH_CHUNK ? (size_t)left : FETCH_CHUNK;
        ssize_t r = read(sp->fd, chunk, want);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            err = POSGATE_ERR_IO;
            break;
        }
        err = sink->write(sink->ctx, chunk, (size_t)r);
        left -= (uint64_t)r;
    }
    plat_free(chunk);
    return err;
}

/* ---- one request ---- */

static void
trim_value(const char *v, size_t n, char *out, size_t cap)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t')) {
        n--;
    }
    if (n >= cap) {
        out[0] = 0; /* too long to be a validator we would send back */
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] == 0x7f) {
            out[0] = 0;
            return;
        }
    }
    memcpy(out, v, n);
    out[n] = 0;
}

static size_t
on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    const char *colon;
    size_t kl;

    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        /* a new response (after a 100 or a proxy's CONNECT): forget the last one's headers */
        x->etag[0] = x->last_modified[0] = x->content_range[0] = x->retry_after[0] = 0;
        return n;
    }
    colon = memchr(ptr, ':', n);
    if (colon == NULL) {
        return n;
    }
    kl = (size_t)(colon - ptr);
    if (kl == 4 && strncasecmp(ptr, "etag", 4) == 0) {
        trim_value(colon + 1, n - kl - 1, x->etag, sizeof(x->etag));
    } else if (kl == 13 && strncasecmp(ptr, "last-modified", 13) == 0) {
        trim_value(colon + 1, n - kl - 1, x->last_modified, sizeof(x->last_modified));
    } else if (kl == 13 && strncasecmp(ptr, "content-range", 13) == 0) {
        trim_value(colon + 1, n - kl - 1, x->content_range, sizeof(x->content_range));
    } else if (kl == 11 && strncasecmp(ptr, "retry-after", 11) == 0) {
        trim_value(colon + 1, n - kl - 1, x->retry_after, sizeof(x->retry_after));
    }
    return n;
}

/* "bytes FIRST-LAST/TOTAL" (TOTAL may be '*'). */
static int
parse_content_range(const char *s, uint64_t *first, uint64_t *total, int *total_known)
{
    const char *dash, *slash;
    uint64_t last;

    if (strncmp(s, "bytes ", 6) != 0) {
        return 0;
    }
    s += 6;
    dash = strchr(s, '-');
    slash = dash != NULL ? strchr(dash, '/') : NULL;
    if (dash == NULL || slash == NULL ||
        !parse_uint(s, (size_t)(dash - s), UINT64_MAX / 10, first) ||
        !parse_uint(dash + 1, (size_t)(slash - dash - 1), UINT64_MAX / 10, &last) ||
        last < *first) {
        return 0;
    }
    if (strcmp(slash + 1, "*") == 0) {
        *total_known = 0;
        return 1;
    }
    *total_known = 1;
    return parse_uint(slash + 1, strlen(slash + 1), UINT64_MAX / 10, total) && *total > last;
}

/* libcurl calls this at least once a second during a transfer: fetch_cancel stops it. */
static int
on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load(&((struct fetch *)ud)->cancelled) ? 1 : 0;
}

static size_t
on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;

    if (!x->started) {
        x->started = 1;
        curl_easy_getinfo(x->f->curl, CURLINFO_RESPONSE_CODE, &x->status);
        if (x->status == 200) {
            if (x->offset > 0 || x->sp->len > 0) {
                /* the server ignored the Range or the file changed (If-Range): start over */
                if (spool_truncate(x->sp) != POSGATE_OK) {
                    x->err = POSGATE_ERR_IO;
                    return 0;
                }
                x->offset = 0;
            }
            spool_set_validator(x->sp, x->name, x->etag, x->etag[0] != 0 ? "" : x->last_modified);
        } else if (x->status == 206) {
            uint64_t first = 0, total = 0;
            int known = 0;

            if (x->offset == 0 || !parse_content_range(x->content_range, &first, &total, &known) ||
                first != x->offset) {
                x->restart = 1;
                return 0;
            }
            /* the rest must be of the same file as the held bytes: a 206 with another validator
             * (or none) would splice two versions together */
            if (x->sp->etag[0] != 0 ? strcmp(x->etag, x->sp->etag) != 0
                                    : strcmp(x->last_modified, x->sp->last_modified) != 0) {
                x->restart = 1;
                x->validator_changed = 1;
                return 0;
            }
            if (known && total > x->max_len) {
                x->err = POSGATE_ERR_TOOBIG;
                return 0;
            }
        }
    }
    if (x->status != 200 && x->status != 206) {
        size_t room = sizeof(x->errbody) - 1 - x->errbody_len;
        size_t take = n < room ? n : room;

        memcpy(x->errbody + x->errbody_len, ptr, take);
        x->errbody_len += take;
        x->errbody[x->errbody_len] = 0;
        return n; /* an error page: read and drop it (bounded by the timeouts) */
    }
    if ((uint64_t)n > x->max_len || x->sp->len > x->max_len - (uint64_t)n) {
        x->err = POSGATE_ERR_TOOBIG;
        return 0;
    }
    x->err = spool_write(x->sp, ptr, n);
    if (x->err != POSGATE_OK) {
        return 0;
    }
    count(x->f, &x->f->stats.bytes, n);
    return n;
}

/* A short, printable summary of an error page: its <title> when it has one, else the text
 * with tags dropped; blanks collapsed. */
static void
page_text(const char *page, char *out, size_t cap)
{
    size_t o = 0;
    int in_tag = 0, space = 1;
    const char *title = strstr(page, "<title>"), *end = NULL;

    if (title != NULL) {
        title += 7;
        end = strstr(title, "</title>");
    }
    if (end == NULL) {
        title = page;
    }
    for (const char *p = title; *p != 0 && p != end && o + 1 < cap; p++) {
        unsigned char c = (unsigned char)*p;

        if (c == '<') {
            in_tag = 1;
        } else if (c == '>') {
            in_tag = 0;
            c = ' ';
        }
        if (in_tag) {
            continue;
        }
        if (c < 0x20 || c >= 0x7f || c == ' ') {
            if (!space) {
                out[o++] = ' ';
            }
            space = 1;
            continue;
        }
        out[o++] = (char)c;
        space = 0;
    }
    while (o > 0 && out[o - 1] == ' ') {
        o--;
    }
    out[o] = 0;
}

static int
is_tls_error(CURLcode rc)
{
    static const CURLcode tls[] = {
        CURLE_SSL_CONNECT_ERROR,   CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM,
        CURLE_SSL_CIPHER,          CURLE_SSL_CACERT_BADFILE,       CURLE_SSL_ISSUER_ERROR,
        CURLE_SSL_CRL_BADFILE,     CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS,
        CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED,     CURLE_SSL_ENGINE_INITFAILED,
        CURLE_SSL_SHUTDOWN_FAILED, CURLE_USE_SSL_FAILED,
    };

    for (size_t i = 0; i < sizeof(tls) / sizeof(tls[0]); i++) {
        if (rc == tls[i]) {
            return 1;
        }
    }
    return 0;
}

/* Says what a failed transfer means, counts it and picks the outcome. */
static enum outcome
transport_failure(struct fetch *f, struct mirror *m, const char *url, CURLcode rc, const char *cerr,
                  char *msg, size_t cap)
{
    const char *detail = cerr[0] != 0 ? cerr : curl_easy_strerror(rc);

    if (rc == CURLE_PEER_FAILED_VERIFICATION ||
        (rc == CURLE_SSL_CONNECT_ERROR && strstr(detail, "certificate verify") != NULL)) {
        count_fail(f, FETCH_FAIL_TLS);
        if (f->ca_file[0] != 0) {
            msgf(msg, cap, "GET %.300s: TLS: certificate not trusted by ca_file %.200s (%.150s)",
                 url, f->ca_file, detail);
        } else {
            msgf(msg, cap,
                 "GET %.300s: TLS: certificate not trusted by the system CA store "
                 "(%.150s)",
                 url, detail);
        }
        return OUT_NETWORK;
    }
    if (rc == CURLE_SSL_CERTPROBLEM) {
        count_fail(f, FETCH_FAIL_TLS);
        msgf(msg, cap,
             "GET %.300s: TLS: cannot use the client certificate %.150s with key "
             "%.150s (%.150s)",
             url, f->client_cert, f->client_key, detail);
        return OUT_NETWORK;
    }
    if (rc == CURLE_SSL_CACERT_BADFILE) {
        count_fail(f, FETCH_FAIL_TLS);
        msgf(msg, cap, "GET %.300s: TLS: cannot read ca_file %.200s (%.150s)", url, f->ca_file,
             detail);
        return OUT_NETWORK;
    }
    if (is_tls_error(rc) || strstr(detail, "SSL") != NULL || strstr(detail, "alert") != NULL) {
        count_fail(f, FETCH_FAIL_TLS);
        msgf(msg, cap, "GET %.300s: TLS: handshake failed (%.200s)%s", url, detail,
             (m->https && f->client_cert[0] == 0)
                 ? "; the server may require a client certificate (none configured)"
                 : "");
        return OUT_NETWORK;
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        count_fail(f, FETCH_FAIL_TIMEOUT);
        msgf(msg, cap, "GET %.300s: timed out (%.200s)", url, detail);
        return OUT_NETWORK;
    }
    count_fail(f, FETCH_FAIL_NETWORK);
    msgf(msg, cap, "GET %.300s: %.250s", url, detail);
    return OUT_NETWORK;
}

/* One mirror's attempt at name: at most two requests (a failed resume is retried once from
 * the start). On OUT_OK the complete body is in sp, or cached (use_cache set: a 304). */
static enum outcome
try_mirror(struct fetch *f, struct mirror *m, int targets, const char *name, uint64_t max_len,
           struct spool *sp, int *use_cache, char *msg, size_t cap)
{
    char url[FETCH_URL_MAX + 4 * CARRIER_NAME_MAX];
    char cerr[CURL_ERROR_SIZE], range[32], text[160], hdr[FETCH_HDR_MAX + 32];
    int conditional = !targets && strcmp(name, "timestamp.json") == 0;
    enum outcome out = OUT_NETWORK;

    *use_cache = 0;
    if (make_url(m->base, targets ? "targets/" : "metadata/", name, url, sizeof(url)) !=
        POSGATE_OK) {
        msgf(msg, cap, "URL for %.200s is too long", name);
        return OUT_LOCAL;
    }
    for (int round = 0; round < 2; round++) {
        struct xfer x;
        struct curl_slist *headers = NULL, *h2;
        CURLcode rc;
        int ok_headers = 1;

        if (sp->len > 0 && sp->etag[0] == 0 && sp->last_modified[0] == 0 &&
            spool_truncate(sp) != POSGATE_OK) {
            msgf(msg, cap, "cannot reset the partial file %.200s", sp->part);
            return OUT_LOCAL;
        }
        memset(&x, 0, sizeof(x));
        x.f = f;
        x.sp = sp;
        x.name = name;
        x.max_len = max_len;
        x.offset = sp->len;
        cerr[0] = 0;
        if (x.offset > 0) {
            snprintf(range, sizeof(range), "%llu-", (unsigned long long)x.offset);
            snprintf(hdr, sizeof(hdr), "If-Range: %s",
                     sp->etag[0] != 0 ? sp->etag : sp->last_modified);
            h2 = curl_slist_append(headers, hdr);
            ok_headers = h2 != NULL;
            headers = h2 != NULL ? h2 : headers;
        }
        if (conditional && m->ts.valid) {
            if (m->ts.etag[0] != 0) {
                snprintf(hdr, sizeof(hdr), "If-None-Match: %s", m->ts.etag);
                h2 = curl_slist_append(headers, hdr);
                ok_headers = ok_headers && h2 != NULL;
                headers = h2 != NULL ? h2 : headers;
            }
            if (m->ts.last_modified[0] != 0) {
                snprintf(hdr, sizeof(hdr), "If-Modified-Since: %s", m->ts.last_modified);
                h2 = curl_slist_append(headers, hdr);
                ok_headers = ok_headers && h2 != NULL;
                headers = h2 != NULL ? h2 : headers;
            }
        }
        if (!ok_headers) {
            curl_slist_free_all(headers);
            msgf(msg, cap, "GET %.300s: out of memory", url);
            return OUT_LOCAL;
        }
        curl_easy_setopt(f->curl, CURLOPT_URL, url);
        curl_easy_setopt(f->curl, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(f->curl, CURLOPT_RANGE, x.offset > 0 ? range : NULL);
        curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(f->curl, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(f->curl, CURLOPT_HEADERDATA, &x);
        curl_easy_setopt(f->curl, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, &x);
        curl_easy_setopt(f->curl, CURLOPT_ERRORBUFFER, cerr);
        curl_easy_setopt(f->curl, CURLOPT_MAXFILESIZE_LARGE,
                         (curl_off_t)(max_len > (uint64_t)INT64_MAX ? INT64_MAX : max_len));
        {
            /* one transfer never outlasts the sync's budget */
            uint64_t now = plat_mono_ns();
            long left_ms = f->timeout_ms;

            if (f->sync_deadline_ns != 0) {
                if (now >= f->sync_deadline_ns) {
                    curl_slist_free_all(headers);
                    count_fail(f, FETCH_FAIL_TIMEOUT);
                    msgf(msg, cap, "GET %.300s: not sent, the sync used its whole budget of %ld s",
                         url, f->sync_timeout_s);
                    return OUT_NETWORK;
                }
                if ((f->sync_deadline_ns - now) / 1000000u < (uint64_t)left_ms) {
                    left_ms = (long)((f->sync_deadline_ns - now) / 1000000u) + 1;
                }
            }
            curl_easy_setopt(f->curl, CURLOPT_TIMEOUT_MS, left_ms);
        }
        count(f, &f->stats.attempts, 1);
        rc = curl_easy_perform(f->curl);
        curl_easy_setopt(f->curl, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(f->curl, CURLOPT_RANGE, NULL);
        curl_slist_free_all(headers);
        if (x.status == 0) {
            curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &x.status);
        }
        plat_log(PLAT_LOG_DEBUG, "fetch: GET %s%s -> %ld (curl %d)", url,
                 x.offset > 0 ? " (resume)" : "", x.status, (int)rc);
        if (x.restart || (x.status == 416 && x.offset > 0)) {
            plat_log(PLAT_LOG_INFO,
                     "fetch: GET %s: cannot resume at byte %llu (HTTP %ld%s); "
                     "starting over",
                     url, (unsigned long long)x.offset, x.status,
                     x.validator_changed ? ", the 206 names another validator than the held bytes"
                     : x.restart         ? ", unexpected Content-Range"
                                         : "");
            if (spool_truncate(sp) != POSGATE_OK) {
                msgf(msg, cap, "GET %.300s: cannot reset the partial file %.200s", url, sp->part);
                return OUT_LOCAL;
            }
            continue;
        }
        if (rc == CURLE_FILESIZE_EXCEEDED ||
            (rc == CURLE_WRITE_ERROR && x.err == POSGATE_ERR_TOOBIG)) {
            count_fail(f, FETCH_FAIL_TOO_BIG);
            (void)spool_truncate(sp);
            msgf(msg, cap, "GET %.300s: body longer than the %llu bytes allowed", url,
                 (unsigned long long)max_len);
            return OUT_TOOBIG;
        }
        if (rc == CURLE_WRITE_ERROR && x.err != POSGATE_OK) {
            msgf(msg, cap, "GET %.300s: cannot keep the body (%s)", url, posgate_strerror(x.err));
            return OUT_LOCAL;
        }
        if (rc == CURLE_ABORTED_BY_CALLBACK && atomic_load(&f->cancelled)) {
            msgf(msg, cap, "GET %.300s: stopped (the sync was cancelled)", url);
            return OUT_LOCAL;
        }
        if (rc != CURLE_OK) {
            if (rc == CURLE_OPERATION_TIMEDOUT) {
                m->slow = 1; /* later files of this sync ask the other mirrors first */
                if (f->sync_deadline_ns != 0 && plat_mono_ns() >= f->sync_deadline_ns) {
                    count_fail(f, FETCH_FAIL_TIMEOUT);
                    msgf(msg, cap, "GET %.300s: cut, the sync used its whole budget of %ld s", url,
                         f->sync_timeout_s);
                    return OUT_NETWORK;
                }
            }
            return transport_failure(f, m, url, rc, cerr, msg, cap);
        }
        if (x.status == 304 && conditional && m->ts.valid) {
            if (m->ts.body.len > max_len) {
                count_fail(f, FETCH_FAIL_TOO_BIG);
                msgf(msg, cap, "GET %.300s: cached body longer than the %llu bytes allowed", url,
                     (unsigned long long)max_len);
                return OUT_TOOBIG;
            }
            count(f, &f->stats.not_modified, 1);
            *use_cache = 1;
            return OUT_OK;
        }
        if (x.status == 200 || (x.status == 206 && x.offset > 0)) {
            if (x.status == 206) {
                count(f, &f->stats.resumed, 1);
            }
            count(f, &f->stats.ok, 1);
            if (conditional && sp->len <= FETCH_COND_BODY_MAX &&
                (x.etag[0] != 0 || x.last_modified[0] != 0)) {
                buf_reset(&m->ts.body);
                m->ts.valid = buf_append(&m->ts.body, sp->mem.data, sp->mem.len) == POSGATE_OK;
                snprintf(m->ts.etag, sizeof(m->ts.etag), "%s", x.etag);
                snprintf(m->ts.last_modified, sizeof(m->ts.last_modified), "%s", x.last_modified);
                if (m->ts.valid) {
                    cache_save(f, url, &m->ts);
                }
            }
            return OUT_OK;
        }
        page_text(x.errbody, text, sizeof(text));
        if (x.status == 404 || x.status == 410) {
            count(f, &f->stats.not_found, 1);
            msgf(msg, cap, "GET %.300s: HTTP %ld (not found)", url, x.status);
            return OUT_NOTFOUND;
        }
        if (x.status == 429 || x.status == 503) {
            uint64_t wait = 0;

            if (x.retry_after[0] != 0 &&
                fetch_parse_retry_after(x.retry_after, plat_wall_s(), &wait) == POSGATE_OK &&
                wait > 0) {
                m->closed_until_ns = plat_mono_ns() + wait * 1000000000ull;
            }
            count_fail(f, x.status == 429 ? FETCH_FAIL_HTTP_4XX : FETCH_FAIL_HTTP_5XX);
            msgf(msg, cap, "GET %.300s: HTTP %ld%s%s%s, retry after %llu s", url, x.status,
                 text[0] != 0 ? " (" : "", text, text[0] != 0 ? ")" : "", (unsigned long long)wait);
            return OUT_RETRY;
        }
        if (x.status >= 500) {
            count_fail(f, FETCH_FAIL_HTTP_5XX);
            out = OUT_RETRY;
        } else {
            count_fail(f, x.status >= 400 && x.status < 500 ? FETCH_FAIL_HTTP_4XX
                                                            : FETCH_FAIL_NETWORK);
            out = OUT_NETWORK;
        }
        msgf(msg, cap, "GET %.300s: HTTP %ld%s%s%s, expected 200", url, x.status,
             text[0] != 0 ? " (" : "", text, text[0] != 0 ? ")" : "");
        if (m->https && f->client_cert[0] == 0 &&
            (x.status == 400 || x.status == 401 || x.status == 403 || x.status == 495 ||
             x.status == 496)) {
            append(msg, cap, "; the server may require a client certificate (none configured)");
        }
        return out;
    }
    msgf(msg, cap, "GET %.300s: the server cannot resume the download, even from the start", url);
    count_fail(f, FETCH_FAIL_NETWORK);
    return OUT_NETWORK;
}

/* ---- the carrier ---- */

void
fetch_sync_begin(struct fetch *f)
{
    if (f == NULL) {
        return;
    }
    f->sync_deadline_ns = plat_mono_ns() + (uint64_t)f->sync_timeout_s * 1000000000ull;
    prune_stale(f);
    for (size_t i = 0; i < f->n_mirrors; i++) {
        f->mirrors[i].slow = 0;
    }
}

void
fetch_cancel(struct fetch *f)
{
    if (f != NULL) {
        atomic_store(&f->cancelled, 1);
    }
}

static enum posgate_err
fetch_carrier_fetch(struct carrier *c, const char *name, uint64_t max_len,
                    const struct carrier_sink *sink, uint64_t *got)
{
    struct fetch_carrier *fc = (struct fetch_carrier *)c;
    struct fetch *f = fc->f;
    struct spool sp;
    char one[CARRIER_ERRMSG_MAX];
    int any_notfound = 0, any_toobig = 0, any_retry = 0, delivered = 0, use_cache = 0;
    int refetched = 0;
    enum posgate_err err, check_err, bad_body = POSGATE_OK;
    enum outcome out = OUT_NETWORK;
    size_t i, order[FETCH_MIRRORS_MAX];
    uint64_t len = 0;

    c->errmsg[0] = 0;
    if (!fc->targets && max_len > FETCH_META_MAX) {
        max_len = FETCH_META_MAX;
    }
    err = spool_open(f, fc->targets, name, max_len, &sp);
    if (err != POSGATE_OK) {
        msgf(c->errmsg, sizeof(c->errmsg), "cannot open the partial download %s: %s", sp.part,
             posgate_strerror(err));
        spool_close(&sp, 0);
        return err;
    }
    if (sp.len > 0) {
        plat_log(PLAT_LOG_INFO, "fetch: resuming %s at byte %llu", name,
                 (unsigned long long)sp.len);
    }
    /* mirrors in order, those that timed out earlier in this sync last */
    for (size_t pass = 0, k = 0; pass < 2; pass++) {
        for (i = 0; i < f->n_mirrors; i++) {
            if (f->mirrors[i].slow == (int)pass) {
                order[k++] = i;
            }
        }
    }
    for (size_t k = 0; k < f->n_mirrors; k++) {
        struct mirror *m = &f->mirrors[order[k]];
        uint64_t now = plat_mono_ns(), start_len = sp.len;

        i = order[k];
        one[0] = 0;
        if (atomic_load(&f->cancelled)) {
            msgf(one, sizeof(one), "%.300s: not asked, the sync was cancelled", m->base);
            out = OUT_LOCAL;
        } else if (m->closed_until_ns > now) {
            msgf(one, sizeof(one), "%.300s: asked to wait %llu s more (Retry-After)", m->base,
                 (unsigned long long)((m->closed_until_ns - now + 999999999ull) / 1000000000ull));
            out = OUT_RETRY;
        } else {
            m->closed_until_ns = 0;
            out = try_mirror(f, m, fc->targets, name, max_len, &sp, &use_cache, one, sizeof(one));
        }
        if (out == OUT_OK) {
            const struct cond_entry *ce = &m->ts;

            len = use_cache ? ce->body.len : sp.len;
            err = use_cache
                      ? (len > 0 ? sink->write(sink->ctx, ce->body.data, ce->body.len) : POSGATE_OK)
                      : spool_replay(&sp, sink);
            if (err != POSGATE_OK) {
                spool_close(&sp, 1);
                msgf(c->errmsg, sizeof(c->errmsg), "%s: the receiver refused the data (%s)", name,
                     posgate_err_name(err));
                return err;
            }
            check_err = sink->check != NULL ? sink->check(sink->ctx) : POSGATE_OK;
            if (check_err == POSGATE_OK) {
                delivered = 1;
                break;
            }
            /* wrong bytes from this mirror (any length, garbage, an encoded body): counted
             * against it, forgotten, and the next mirror asked */
            sink->reset(sink->ctx);
            count_fail(f, FETCH_FAIL_REJECTED);
            bad_body = check_err;
            if (use_cache) {
                m->ts.valid = 0;
            }
            if (spool_truncate(&sp) != POSGATE_OK) {
                out = OUT_LOCAL;
                msgf(one, sizeof(one), "cannot reset the partial file %.200s", sp.part);
            } else if (start_len > 0 && !refetched) {
                /* a resumed body may hold bytes of an older file: once more from byte 0 */
                refetched = 1;
                plat_log(PLAT_LOG_WARN,
                         "fetch: %s%s from %s (resumed at byte %llu) fails verification (%s); "
                         "fetching it again from byte 0",
                         fc->targets ? "targets/" : "metadata/", name, m->base,
                         (unsigned long long)start_len, posgate_err_name(check_err));
                k--;
                continue;
            } else {
                msgf(one, sizeof(one), "%.300s: the body of %.200s fails verification (%s)",
                     m->base, name, posgate_err_name(check_err));
                out = OUT_NETWORK;
            }
        }
        append(c->errmsg, sizeof(c->errmsg), "%s%s", c->errmsg[0] != 0 ? "; " : "", one);
        if (out == OUT_LOCAL) {
            break;
        }
        any_notfound |= out == OUT_NOTFOUND;
        any_toobig |= out == OUT_TOOBIG;
        any_retry |= out == OUT_RETRY;
        if (out != OUT_NOTFOUND && k + 1 < f->n_mirrors) {
            plat_log(PLAT_LOG_WARN, "fetch: %s; trying the next mirror", one);
        }
    }
    if (delivered) {
        spool_close(&sp, 1); /* complete: the part file has served its purpose */
        if (got != NULL) {
            *got = len;
        }
        c->errmsg[0] = 0;
        return POSGATE_OK;
    }
    /* a part file with a validator stays for the next attempt; an empty one goes */
    spool_close(&sp, sp.len == 0);
    if (out == OUT_LOCAL) {
        return atomic_load(&f->cancelled) ? POSGATE_ERR_NETWORK : POSGATE_ERR_IO;
    }
    if (any_notfound) {
        return POSGATE_ERR_NOTFOUND;
    }
    if (bad_body != POSGATE_OK) {
        return bad_body;
    }
    if (any_toobig) {
        return POSGATE_ERR_TOOBIG;
    }
    return any_retry ? POSGATE_ERR_RETRY : POSGATE_ERR_NETWORK;
}

static void
fetch_carrier_destroy(struct carrier *c)
{
    (void)c; /* borrowed from the fetcher: fetch_free releases it */
}

static const struct carrier_ops fetch_carrier_ops = {"fetch", fetch_carrier_fetch,
                                                     fetch_carrier_destroy};

/* ---- life cycle ---- */

enum posgate_err
fetch_new(const struct fetch_options *opt, struct fetch **out, char *errmsg, size_t errcap)
{
    struct fetch *f = NULL;
    enum posgate_err err = POSGATE_ERR_INVALID;
    char e[512] = "";

    if (out != NULL) {
        *out = NULL;
    }
    if (opt == NULL || out == NULL) {
        snprintf(e, sizeof(e), "NULL argument");
        goto out;
    }
    if (opt->n_mirrors == 0 || opt->mirrors == NULL) {
        snprintf(e, sizeof(e), "expected at least one feed URL, got none");
        goto out;
    }
    if (opt->n_mirrors > FETCH_MIRRORS_MAX) {
        snprintf(e, sizeof(e), "expected at most %d feed URLs, got %zu", FETCH_MIRRORS_MAX,
                 opt->n_mirrors);
        goto out;
    }
    if ((opt->client_cert == NULL) != (opt->client_key == NULL)) {
        snprintf(e, sizeof(e),
                 "a client certificate needs its key and the other way round "
                 "(got %s without %s)",
                 opt->client_cert != NULL ? "client_cert" : "client_key",
                 opt->client_cert != NULL ? "client_key" : "client_cert");
        goto out;
    }
    pthread_once(&curl_once, global_init);
    if (!curl_init_ok) {
        snprintf(e, sizeof(e), "libcurl failed to initialise");
        err = POSGATE_ERR_NETWORK;
        goto out;
    }
    f = plat_calloc(1, sizeof(*f));
    if (f == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    pthread_mutex_init(&f->lock, NULL);
    f->mirrors = plat_calloc(opt->n_mirrors, sizeof(*f->mirrors));
    if (f->mirrors == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    f->n_mirrors = opt->n_mirrors;
    for (size_t i = 0; i < opt->n_mirrors; i++) {
        struct mirror *m = &f->mirrors[i];
        const char *u = opt->mirrors[i];
        size_t n = u != NULL ? strlen(u) : 0;

        buf_init(&m->ts.body, FETCH_COND_BODY_MAX);
        if (u == NULL || (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) ||
            n < 9) {
            snprintf(e, sizeof(e),
                     "feed URL \"%.300s\": expected http://HOST/... or "
                     "https://HOST/...",
                     u != NULL ? u : "(null)");
            goto out;
        }
        if (n + 2 > sizeof(m->base) || strpbrk(u, " \t\r\n\"<>\\^`{|}?#") != NULL) {
            snprintf(e, sizeof(e),
                     "feed URL \"%.300s\": too long, or holds a character not "
                     "allowed in a base URL (space, quote, ?, # ...)",
                     u);
            goto out;
        }
        memcpy(m->base, u, n + 1);
        if (u[n - 1] != '/') {
            m->base[n] = '/';
            m->base[n + 1] = 0;
        }
        m->https = strncmp(u, "https://", 8) == 0;
    }
    if (copy_str(f->ca_file, sizeof(f->ca_file), opt->ca_file) != POSGATE_OK ||
        copy_str(f->client_cert, sizeof(f->client_cert), opt->client_cert) != POSGATE_OK ||
        copy_str(f->client_key, sizeof(f->client_key), opt->client_key) != POSGATE_OK ||
        copy_str(f->proxy, sizeof(f->proxy), opt->proxy) != POSGATE_OK ||
        copy_str(f->spool_dir, sizeof(f->spool_dir), opt->spool_dir) != POSGATE_OK ||
        copy_str(f->cache_dir, sizeof(f->cache_dir), opt->cache_dir) != POSGATE_OK ||
        copy_str(f->user_agent, sizeof(f->user_agent),
                 opt->user_agent != NULL ? opt->user_agent : "posgate/0.1") != POSGATE_OK) {
        snprintf(e, sizeof(e), "an option string is too long");
        goto out;
    }
    if (f->spool_dir[0] != 0 && plat_mkdir_p(f->spool_dir, 0700) != POSGATE_OK) {
        snprintf(e, sizeof(e), "cannot create the spool directory %.300s", f->spool_dir);
        err = POSGATE_ERR_IO;
        goto out;
    }
    if (f->cache_dir[0] != 0 && plat_mkdir_p(f->cache_dir, 0700) != POSGATE_OK) {
        snprintf(e, sizeof(e), "cannot create the cache directory %.300s", f->cache_dir);
        err = POSGATE_ERR_IO;
        goto out;
    }
    for (size_t i = 0; i < f->n_mirrors; i++) {
        cache_load(f, &f->mirrors[i]);
    }
    f->curl = curl_easy_init();
    if (f->curl == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    curl_easy_setopt(f->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(f->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(f->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(f->curl, CURLOPT_CONNECTTIMEOUT,
                     opt->connect_timeout_s > 0 ? opt->connect_timeout_s : 10L);
    f->timeout_ms = (opt->timeout_s > 0 ? opt->timeout_s : 300L) * 1000L;
    f->sync_timeout_s = opt->sync_timeout_s > 0 ? opt->sync_timeout_s : FETCH_SYNC_TIMEOUT_S;
    fetch_sync_begin(f);
    curl_easy_setopt(f->curl, CURLOPT_TIMEOUT_MS, f->timeout_ms);
    curl_easy_setopt(f->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(f->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(f->curl, CURLOPT_XFERINFODATA, f);
    curl_easy_setopt(f->curl, CURLOPT_LOW_SPEED_LIMIT,
                     opt->low_speed_bytes_per_s > 0 ? opt->low_speed_bytes_per_s : 1L);
    curl_easy_setopt(f->curl, CURLOPT_LOW_SPEED_TIME,
                     opt->low_speed_time_s > 0 ? opt->low_speed_time_s : 30L);
    if (opt->max_recv_bytes_per_s > 0) {
        curl_easy_setopt(f->curl, CURLOPT_MAX_RECV_SPEED_LARGE,
                         (curl_off_t)(opt->max_recv_bytes_per_s > (uint64_t)INT64_MAX
                                          ? INT64_MAX
                                          : opt->max_recv_bytes_per_s));
    }
    curl_easy_setopt(f->curl, CURLOPT_USERAGENT, f->user_agent);
    curl_easy_setopt(f->curl, CURLOPT_ACCEPT_ENCODING, NULL); /* the caps count wire bytes */
    fetch_curl_tls(f->curl, f->ca_file, f->client_cert, f->client_key);
    /* "" disables the *_proxy environment variables: the proxy comes from configuration */
    curl_easy_setopt(f->curl, CURLOPT_PROXY, f->proxy);
    f->meta.base.ops = &fetch_carrier_ops;
    f->meta.f = f;
    f->meta.targets = 0;
    f->tgt.base.ops = &fetch_carrier_ops;
    f->tgt.f = f;
    f->tgt.targets = 1;
    *out = f;
    f = NULL;
    err = POSGATE_OK;
out:
    if (err != POSGATE_OK && errmsg != NULL && errcap > 0) {
        snprintf(errmsg, errcap, "%s", e[0] != 0 ? e : posgate_strerror(err));
    }
    fetch_free(f);
    return err;
}

void
fetch_free(struct fetch *f)
{
    if (f == NULL) {
        return;
    }
    if (f->curl != NULL) {
        curl_easy_cleanup(f->curl);
    }
    if (f->mirrors != NULL) {
        for (size_t i = 0; i < f->n_mirrors; i++) {
            buf_free(&f->mirrors[i].ts.body);
        }
        plat_free(f->mirrors);
    }
    pthread_mutex_destroy(&f->lock);
    plat_free(f);
}

struct carrier *
fetch_metadata_carrier(struct fetch *f)
{
    return f != NULL ? &f->meta.base : NULL;
}

struct carrier *
fetch_targets_carrier(struct fetch *f)
{
    return f != NULL ? &f->tgt.base : NULL;
}

void
fetch_stats_get(struct fetch *f, struct fetch_stats *out)
{
    if (out == NULL) {
        return;
    }
    if (f == NULL) {
        memset(out, 0, sizeof(*out));
        return;
    }
    pthread_mutex_lock(&f->lock);
    *out = f->stats;
    pthread_mutex_unlock(&f->lock);
}

void
fetch_note_rejected(struct fetch *f)
{
    if (f != NULL) {
        count_fail(f, FETCH_FAIL_REJECTED);
    }
}

uint64_t
fetch_retry_after_s(struct fetch *f)
{
    uint64_t now = plat_mono_ns(), best = UINT64_MAX;

    if (f == NULL) {
        return 0;
    }
    for (size_t i = 0; i < f->n_mirrors; i++) {
        uint64_t until = f->mirrors[i].closed_until_ns;

        if (until <= now) {
            return 0;
        }
        if (until - now < best) {
            best = until - now;
        }
    }
    return best == UINT64_MAX ? 0 : (best + 999999999ull) / 1000000000ull;
}

void
fetch_curl_tls(void *curl, const char *ca_file, const char *client_cert, const char *client_key)
{
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca_file != NULL && ca_file[0] != 0) {
        /* the pinned CA is the only trust: no CA directory, no built-in bundle */
        curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
        curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
    }
    if (client_cert != NULL && client_cert[0] != 0) {
        curl_easy_setopt(curl, CURLOPT_SSLCERT, client_cert);
        curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(curl, CURLOPT_SSLKEY, client_key);
        curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
    }
}

const char *
fetch_curl_version(void)
{
    return curl_version_info(CURLVERSION_NOW)->version;
}
