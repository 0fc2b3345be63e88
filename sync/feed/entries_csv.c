/* SPDX-License-Identifier: Apache-2.0 */
/*
 * entries.csv: the RFC 4180 tokenizer (its own read buffer, one record at a time, every field
 * and record bounded) and the row rules of entries_csv.h, checked against the feed config and
 * the identifier module so that one bad row stops a publication with its line number.
 */
#define _POSIX_C_SOURCE 200809L
#include "entries_csv.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* feed_config.h and feed_records.h both name a FEED_SCOPE_MAX (services per reason, services
 * per entry); this file needs the entry's, which feed_entry.scope is sized by. */
#include "feed_records.h"
#undef FEED_SCOPE_MAX
#include "feed_config.h"
#undef FEED_SCOPE_MAX
#define FEED_SCOPE_MAX (sizeof(((struct feed_entry *)0)->scope) / sizeof(uint16_t))

#include "ident.h"
#include "plat_clock.h"
#include "plat_mem.h"

#define READ_CHUNK 65536
#define LABEL_MAX  128

struct csv_reader {
    FILE *f;
    char label[LABEL_MAX];
    size_t field_max;
    size_t record_max;
    uint8_t *in; /* read buffer */
    size_t in_len;
    size_t in_pos;
    int eof;
    int err_sticky;
    uint64_t line;     /* current physical line */
    uint64_t rec_line; /* line where the last record started */
    char *rec;         /* record bytes, fields NUL-separated */
    size_t rec_len;
    size_t nfields;
    size_t starts[CSV_MAX_FIELDS];
    char *fields[CSV_MAX_FIELDS];
    size_t lens[CSV_MAX_FIELDS];
    char errmsg[ENTRIES_CSV_ERRMSG_MAX];
};

static void rmsg(struct csv_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
rmsg(struct csv_reader *r, const char *fmt, ...)
{
    va_list ap;
    int n;

    n = snprintf(r->errmsg, sizeof r->errmsg, "%s line %llu: ", r->label,
                 (unsigned long long)r->rec_line);
    if (n < 0 || (size_t)n >= sizeof r->errmsg) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(r->errmsg + n, sizeof r->errmsg - (size_t)n, fmt, ap);
    va_end(ap);
}

enum posgate_err
csv_reader_new(FILE *f, const char *label, size_t field_max, size_t record_max,
               struct csv_reader **out)
{
    struct csv_reader *r;

    if (f == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    r = plat_calloc(1, sizeof *r);
    if (r == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    r->f = f;
    snprintf(r->label, sizeof r->label, "%s", label != NULL ? label : "csv");
    r->field_max = field_max != 0 ? field_max : ENTRIES_CSV_FIELD_MAX;
    r->record_max = record_max != 0 ? record_max : ENTRIES_CSV_RECORD_MAX;
    r->in = plat_malloc(READ_CHUNK);
    /* one NUL per field besides the bytes */
    r->rec = plat_malloc(r->record_max + CSV_MAX_FIELDS + 1);
    if (r->in == NULL || r->rec == NULL) {
        csv_reader_free(r);
        return POSGATE_ERR_NOMEM;
    }
    r->line = 1;
    *out = r;
    return POSGATE_OK;
}

void
csv_reader_free(struct csv_reader *r)
{
    if (r == NULL) {
        return;
    }
    plat_free(r->in);
    plat_free(r->rec);
    plat_free(r);
}

uint64_t
csv_reader_line(const struct csv_reader *r)
{
    return r != NULL ? r->rec_line : 0;
}

const char *
csv_reader_errmsg(const struct csv_reader *r)
{
    return r != NULL ? r->errmsg : "";
}

/* The next byte, or -1 at the end of input, -2 on a read error. */
static int
getbyte(struct csv_reader *r)
{
    if (r->in_pos == r->in_len) {
        size_t n;

        if (r->eof) {
            return -1;
        }
        n = fread(r->in, 1, READ_CHUNK, r->f);
        if (n == 0) {
            r->eof = 1;
            return ferror(r->f) ? -2 : -1;
        }
        r->in_len = n;
        r->in_pos = 0;
    }
    return r->in[r->in_pos++];
}

static int
peekbyte(struct csv_reader *r)
{
    int c = getbyte(r);

    if (c >= 0) {
        r->in_pos--;
    }
    return c;
}

enum field_state {
    ST_START,  /* at the start of a field */
    ST_PLAIN,  /* inside an unquoted field */
    ST_QUOTED, /* inside a quoted field */
    ST_AFTERQ  /* just after a quote inside a quoted field */
};

static enum posgate_err
push_byte(struct csv_reader *r, int c)
{
    size_t flen = r->rec_len - r->starts[r->nfields];

    if (flen >= r->field_max) {
        rmsg(r, "field %zu is longer than %zu bytes", r->nfields + 1, r->field_max);
        return POSGATE_ERR_TOOBIG;
    }
    if (r->rec_len - r->nfields >= r->record_max) {
        rmsg(r, "record is longer than %zu bytes", r->record_max);
        return POSGATE_ERR_TOOBIG;
    }
    r->rec[r->rec_len++] = (char)c;
    return POSGATE_OK;
}

static enum posgate_err
end_field(struct csv_reader *r)
{
    r->lens[r->nfields] = r->rec_len - r->starts[r->nfields];
    r->rec[r->rec_len++] = '\0';
    r->nfields++;
    if (r->nfields == CSV_MAX_FIELDS) {
        rmsg(r, "more than %d fields", CSV_MAX_FIELDS - 1);
        return POSGATE_ERR_TOOBIG;
    }
    r->starts[r->nfields] = r->rec_len;
    return POSGATE_OK;
}

enum posgate_err
csv_reader_next(struct csv_reader *r, size_t *nfields, char *const **fields, const size_t **lens)
{
    enum field_state st = ST_START;
    enum posgate_err err = POSGATE_OK;
    int any = 0;
    size_t i;

    if (r == NULL || nfields == NULL || fields == NULL || lens == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (r->err_sticky) {
        return POSGATE_ERR_STATE;
    }
    r->errmsg[0] = '\0';
    for (;;) {
        int c;

        r->rec_len = 0;
        r->nfields = 0;
        r->starts[0] = 0;
        r->rec_line = r->line;
        st = ST_START;
        any = 0;
        for (;;) {
            c = getbyte(r);
            if (c == -2) {
                rmsg(r, "read error");
                err = POSGATE_ERR_IO;
                goto fail;
            }
            if (c == 0) {
                rmsg(r, "NUL byte in field %zu", r->nfields + 1);
                err = POSGATE_ERR_PARSE;
                goto fail;
            }
            if (st == ST_QUOTED) {
                if (c == -1) {
                    rmsg(r, "quoted field %zu is not closed before the end of the file",
                         r->nfields + 1);
                    err = POSGATE_ERR_PARSE;
                    goto fail;
                }
                if (c == '"') {
                    st = ST_AFTERQ;
                    continue;
                }
                if (c == '\n') {
                    r->line++;
                }
                err = push_byte(r, c);
                if (err != POSGATE_OK) {
                    goto fail;
                }
                continue;
            }
            if (st == ST_AFTERQ && c == '"') {
                err = push_byte(r, '"');
                if (err != POSGATE_OK) {
                    goto fail;
                }
                st = ST_QUOTED;
                continue;
            }
            if (c == ',') {
                err = end_field(r);
                if (err != POSGATE_OK) {
                    goto fail;
                }
                st = ST_START;
                any = 1;
                continue;
            }
            if (c == '\r') {
                if (peekbyte(r) != '\n') {
                    rmsg(r, "carriage return not followed by a line feed (field %zu)",
                         r->nfields + 1);
                    err = POSGATE_ERR_PARSE;
                    goto fail;
                }
                continue; /* the LF ends the record */
            }
            if (c == '\n' || c == -1) {
                if (c == '\n') {
                    r->line++;
                }
                if (!any && st == ST_START) {
                    if (c == -1) {
                        return POSGATE_ERR_NOTFOUND;
                    }
                    /* an empty line: skip it */
                    r->rec_line = r->line;
                    continue;
                }
                err = end_field(r);
                if (err != POSGATE_OK) {
                    goto fail;
                }
                break;
            }
            if (st == ST_AFTERQ) {
                rmsg(r,
                     "'%c' after the closing quote of field %zu (expected ',' or the end of "
                     "the line)",
                     c >= 0x20 && c < 0x7f ? c : '?', r->nfields + 1);
                err = POSGATE_ERR_PARSE;
                goto fail;
            }
            if (c == '"') {
                if (st == ST_PLAIN) {
                    rmsg(r,
                         "quote inside unquoted field %zu (quote the whole field and double "
                         "the quote)",
                         r->nfields + 1);
                    err = POSGATE_ERR_PARSE;
                    goto fail;
                }
                st = ST_QUOTED;
                any = 1;
                continue;
            }
            err = push_byte(r, c);
            if (err != POSGATE_OK) {
                goto fail;
            }
            st = ST_PLAIN;
            any = 1;
        }
        break;
    }
    for (i = 0; i < r->nfields; i++) {
        r->fields[i] = r->rec + r->starts[i];
    }
    *nfields = r->nfields;
    *fields = r->fields;
    *lens = r->lens;
    return POSGATE_OK;
fail:
    r->err_sticky = 1;
    return err;
}

/* ---- entries.csv ---- */

static const char *const columns[ENTRIES_CSV_FIELDS] = {"list",       "listing_id",  "kind",
                                                        "id_type",    "id_value",    "reason",
                                                        "valid_from", "valid_until", "scope"};

enum col { C_LIST, C_LISTING, C_KIND, C_IDTYPE, C_IDVALUE, C_REASON, C_FROM, C_UNTIL, C_SCOPE };

struct entries_csv {
    struct csv_reader *csv;
    const struct feed_config *cfg;
    const struct crypto_hmac_key *key;
    char errmsg[ENTRIES_CSV_ERRMSG_MAX];
};

static void emsg(struct entries_csv *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
emsg(struct entries_csv *r, const char *fmt, ...)
{
    va_list ap;
    int n;

    n = snprintf(r->errmsg, sizeof r->errmsg, "%s line %llu: ", r->csv->label,
                 (unsigned long long)r->csv->rec_line);
    if (n < 0 || (size_t)n >= sizeof r->errmsg) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(r->errmsg + n, sizeof r->errmsg - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Copies s[0..len) for a message: printable ASCII kept, others as '?', cut at 64 bytes. */
static void
shown(char *out, size_t cap, const char *s, size_t len)
{
    size_t i, o = 0;

    for (i = 0; i < len && o + 4 < cap && i < 64; i++) {
        unsigned char c = (unsigned char)s[i];

        out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (i < len && o + 4 < cap) {
        out[o++] = '.';
        out[o++] = '.';
        out[o++] = '.';
    }
    out[o] = '\0';
}

void
entries_csv_set_key(struct entries_csv *r, const struct crypto_hmac_key *key)
{
    if (r != NULL) {
        r->key = key;
    }
}

const char *
entries_csv_errmsg(const struct entries_csv *r)
{
    return r != NULL ? r->errmsg : "";
}

void
entries_csv_free(struct entries_csv *r)
{
    if (r == NULL) {
        return;
    }
    csv_reader_free(r->csv);
    plat_free(r);
}

enum posgate_err
entries_csv_open(FILE *f, const char *label, const struct feed_config *cfg,
                 struct entries_csv **out, char *errmsg, size_t errcap)
{
    enum posgate_err err;
    struct entries_csv *r = NULL;
    size_t n, i;
    char *const *fields;
    const size_t *lens;
    char shown_buf[96];

    if (errmsg != NULL && errcap > 0) {
        errmsg[0] = '\0';
    }
    if (f == NULL || cfg == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    r = plat_calloc(1, sizeof *r);
    if (r == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    r->cfg = cfg;
    err = csv_reader_new(f, label != NULL ? label : "entries.csv", 0, 0, &r->csv);
    if (err != POSGATE_OK) {
        goto out;
    }
    /* a UTF-8 byte order mark (spreadsheet exports) before the header */
    if (peekbyte(r->csv) == 0xef) {
        int a = getbyte(r->csv), b = getbyte(r->csv), c = getbyte(r->csv);

        if (a != 0xef || b != 0xbb || c != 0xbf) {
            r->csv->rec_line = 1;
            emsg(r, "header: expected \"%s\", found bytes that are not text", ENTRIES_CSV_HEADER);
            err = POSGATE_ERR_PARSE;
            goto out;
        }
    }
    err = csv_reader_next(r->csv, &n, &fields, &lens);
    if (err == POSGATE_ERR_NOTFOUND) {
        r->csv->rec_line = 1;
        emsg(r, "the file is empty; expected the header row \"%s\"", ENTRIES_CSV_HEADER);
        err = POSGATE_ERR_INVALID;
        goto out;
    }
    if (err != POSGATE_OK) {
        snprintf(r->errmsg, sizeof r->errmsg, "%s", csv_reader_errmsg(r->csv));
        goto out;
    }
    for (i = 0; i < n && i < ENTRIES_CSV_FIELDS; i++) {
        if (strcmp(fields[i], columns[i]) != 0) {
            shown(shown_buf, sizeof shown_buf, fields[i], lens[i]);
            emsg(r,
                 "header column %zu is \"%s\", expected \"%s\" (the header must be exactly "
                 "\"%s\")",
                 i + 1, shown_buf, columns[i], ENTRIES_CSV_HEADER);
            err = POSGATE_ERR_INVALID;
            goto out;
        }
    }
    if (n != ENTRIES_CSV_FIELDS) {
        emsg(r, "header has %zu columns, expected %d: \"%s\"", n, ENTRIES_CSV_FIELDS,
             ENTRIES_CSV_HEADER);
        err = POSGATE_ERR_INVALID;
        goto out;
    }
    *out = r;
    r = NULL;
out:
    if (err != POSGATE_OK && r != NULL && errmsg != NULL && errcap > 0) {
        snprintf(errmsg, errcap, "%s", r->errmsg);
    }
    entries_csv_free(r);
    return err;
}

/* "a", "b", "c" ... of n names, cut to fit out. */
static void
name_list(char *out, size_t cap, const char *(*name)(const struct feed_config *, unsigned),
          const struct feed_config *cfg, unsigned n)
{
    size_t o = 0;
    unsigned i;

    out[0] = '\0';
    for (i = 0; i < n; i++) {
        const char *s = name(cfg, i);
        size_t need = strlen(s) + 4;

        if (o + need + 5 >= cap) {
            snprintf(out + o, cap - o, "%s...", i > 0 ? ", " : "");
            return;
        }
        o += (size_t)snprintf(out + o, cap - o, "%s\"%s\"", i > 0 ? ", " : "", s);
    }
}

static const char *
list_name(const struct feed_config *cfg, unsigned i)
{
    return cfg->lists[i].id;
}

static const char *
reason_name(const struct feed_config *cfg, unsigned i)
{
    return cfg->reasons[i].id;
}

/* A bound of the row: an RFC 3339 timestamp as given, or a date (YYYY-MM-DD) as a whole day in
 * the list's timezone (feed_config.h): valid_from from the start of that day, valid_until to
 * the start of the next (the day itself included). */
static enum posgate_err
parse_time(struct entries_csv *r, const char *col, const char *s, size_t len, int32_t tz_offset_s,
           int until, int64_t *out)
{
    char shown_buf[96];
    enum posgate_err err = plat_time_parse(s, out);

    if (err == POSGATE_OK && len == 10) {
        *out += (until ? 86400 : 0) - (int64_t)tz_offset_s;
    }
    if (err != POSGATE_OK || *out < 0 || *out > FEED_TIME_MAX) {
        shown(shown_buf, sizeof shown_buf, s, len);
        emsg(r,
             "%s \"%s\" is not a date: expected YYYY-MM-DD or RFC 3339 "
             "(2026-01-02T03:04:05Z) between 1970 and 9999",
             col, shown_buf);
        return POSGATE_ERR_INVALID;
    }
    return POSGATE_OK;
}

static int
u16_cmp(const void *a, const void *b)
{
    uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;

    return x < y ? -1 : x > y;
}

static enum posgate_err
parse_scope(struct entries_csv *r, const char *s, size_t len, unsigned reason, struct feed_entry *e)
{
    const struct feed_reason *rs = &r->cfg->reasons[reason];
    size_t pos = 0, k, w;
    char shown_buf[96];

    e->scope_count = 0;
    if (len == 0) {
        return POSGATE_OK;
    }
    while (pos <= len) {
        const char *p = s + pos;
        const char *semi = memchr(p, ';', len - pos);
        size_t n = semi != NULL ? (size_t)(semi - p) : len - pos;
        int idx;

        /* spaces around a name are forgiven */
        while (n > 0 && p[0] == ' ') {
            p++;
            n--;
            pos++;
        }
        while (n > 0 && p[n - 1] == ' ') {
            n--;
        }
        if (n == 0) {
            emsg(r, "scope has an empty service name (services are joined by ';')");
            return POSGATE_ERR_INVALID;
        }
        shown(shown_buf, sizeof shown_buf, p, n);
        idx = feed_config_service_find_n(r->cfg, p, n);
        if (idx < 0) {
            emsg(r,
                 "scope: unknown service \"%s\"; expected a service of the taxonomy in "
                 "feed.json",
                 shown_buf);
            return POSGATE_ERR_INVALID;
        }
        if (!feed_config_service_within_any(r->cfg, (unsigned)idx, rs->scope, rs->n_scope)) {
            emsg(r,
                 "scope: service \"%s\" is outside the scope of reason \"%s\" (%s%s%s); a row "
                 "may only narrow its reason's scope",
                 shown_buf, rs->id, r->cfg->services[rs->scope[0]].name,
                 rs->n_scope > 1 ? ", " : "", rs->n_scope > 1 ? "..." : "");
            return POSGATE_ERR_INVALID;
        }
        if (e->scope_count == FEED_SCOPE_MAX) {
            emsg(r, "scope lists more than %zu services", (size_t)FEED_SCOPE_MAX);
            return POSGATE_ERR_INVALID;
        }
        e->scope[e->scope_count++] = (uint16_t)idx;
        if (semi == NULL) {
            break;
        }
        pos = (size_t)(semi - s) + 1;
        if (pos == len) {
            emsg(r, "scope ends with ';'");
            return POSGATE_ERR_INVALID;
        }
    }
    qsort(e->scope, e->scope_count, sizeof e->scope[0], u16_cmp);
    for (k = 1, w = 1; k < e->scope_count; k++) {
        if (e->scope[k] != e->scope[w - 1]) {
            e->scope[w++] = e->scope[k];
        }
    }
    e->scope_count = (uint8_t)w;
    return POSGATE_OK;
}

enum posgate_err
entries_csv_next(struct entries_csv *r, struct entries_row *row)
{
    enum posgate_err err;
    size_t n;
    char *const *fv;
    const size_t *lv;
    struct feed_entry *e;
    struct ident id;
    char shown_buf[96];
    char names[320];
    char imsg[256];
    int li, ri;

    if (r == NULL || row == NULL) {
        return POSGATE_ERR_INVALID;
    }
    r->errmsg[0] = '\0';
    err = csv_reader_next(r->csv, &n, &fv, &lv);
    if (err == POSGATE_ERR_NOTFOUND) {
        return err;
    }
    if (err != POSGATE_OK) {
        snprintf(r->errmsg, sizeof r->errmsg, "%s", csv_reader_errmsg(r->csv));
        return err;
    }
    memset(row, 0, sizeof *row);
    row->line = r->csv->rec_line;
    e = &row->entry;
    if (n != ENTRIES_CSV_FIELDS) {
        emsg(r, "%zu fields, expected %d (%s)", n, ENTRIES_CSV_FIELDS, ENTRIES_CSV_HEADER);
        return POSGATE_ERR_INVALID;
    }

    li = feed_config_list_find(r->cfg, fv[C_LIST]);
    if (li < 0 || strlen(fv[C_LIST]) != lv[C_LIST]) {
        shown(shown_buf, sizeof shown_buf, fv[C_LIST], lv[C_LIST]);
        name_list(names, sizeof names, list_name, r->cfg, r->cfg->n_lists);
        emsg(r, "unknown list \"%s\"; expected one of %s", shown_buf, names);
        return POSGATE_ERR_INVALID;
    }
    row->list = (uint16_t)li;

    if (lv[C_LISTING] == 0 || feed_entry_set_listing_id(e, fv[C_LISTING]) != POSGATE_OK) {
        shown(shown_buf, sizeof shown_buf, fv[C_LISTING], lv[C_LISTING]);
        emsg(r, "listing_id \"%s\": expected 1 to %d printable ASCII characters", shown_buf,
             FEED_LISTING_ID_MAX);
        return POSGATE_ERR_INVALID;
    }

    if (strcmp(fv[C_KIND], "restrict") == 0) {
        e->kind = FEED_KIND_RESTRICT;
    } else if (strcmp(fv[C_KIND], "exempt") == 0) {
        e->kind = FEED_KIND_EXEMPT;
    } else {
        shown(shown_buf, sizeof shown_buf, fv[C_KIND], lv[C_KIND]);
        emsg(r, "kind \"%s\": expected \"restrict\" or \"exempt\"", shown_buf);
        return POSGATE_ERR_INVALID;
    }

    if (ident_parse(fv[C_IDTYPE], fv[C_IDVALUE], lv[C_IDVALUE], &id, imsg, sizeof imsg) !=
        POSGATE_OK) {
        emsg(r, "id_value: %s", imsg);
        return POSGATE_ERR_INVALID;
    }
    e->id_type = (uint8_t)id.type;
    if (r->key != NULL) {
        ident_entry_key(r->key, &id, e->key);
    }

    ri = feed_config_reason_find(r->cfg, fv[C_REASON]);
    if (ri < 0 || strlen(fv[C_REASON]) != lv[C_REASON]) {
        shown(shown_buf, sizeof shown_buf, fv[C_REASON], lv[C_REASON]);
        name_list(names, sizeof names, reason_name, r->cfg, r->cfg->n_reasons);
        emsg(r, "unknown reason \"%s\"; expected one of %s", shown_buf, names);
        return POSGATE_ERR_INVALID;
    }
    e->reason = (uint16_t)ri;

    if (lv[C_FROM] == 0) {
        emsg(r, "valid_from is empty; expected YYYY-MM-DD or RFC 3339");
        return POSGATE_ERR_INVALID;
    }
    err = parse_time(r, "valid_from", fv[C_FROM], lv[C_FROM], r->cfg->lists[li].tz_offset_s, 0,
                     &e->valid_from);
    if (err != POSGATE_OK) {
        return err;
    }
    if (lv[C_UNTIL] == 0) {
        e->valid_until = FEED_UNTIL_OPEN;
    } else {
        err = parse_time(r, "valid_until", fv[C_UNTIL], lv[C_UNTIL], r->cfg->lists[li].tz_offset_s,
                         1, &e->valid_until);
        if (err != POSGATE_OK) {
            return err;
        }
        if (e->valid_until <= e->valid_from) {
            emsg(r, "valid_until %s is not later than valid_from %s", fv[C_UNTIL], fv[C_FROM]);
            return POSGATE_ERR_INVALID;
        }
    }

    err = parse_scope(r, fv[C_SCOPE], lv[C_SCOPE], (unsigned)ri, e);
    if (err != POSGATE_OK) {
        return err;
    }
    if (feed_entry_check(e, imsg, sizeof imsg) != POSGATE_OK) {
        emsg(r, "%s", imsg);
        return POSGATE_ERR_INVALID;
    }
    return POSGATE_OK;
}
