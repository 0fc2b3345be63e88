/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One list in a posgate-publish update (publish_internal.h): the merge walk of its sorted new
 * rows against its last published snapshot, which writes the new snapshot and stages the
 * removals and additions; the delta written from them; the custom metadata of its targets; and
 * whether its keys are of an older identifier format.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ident.h"
#include "plat_clock.h"
#include "publish_internal.h"

static void
time_text(int64_t t, char out[32])
{
    plat_time_format(t, out, 32);
}

/* Opens the previous snapshot of a list for reading (NULL reader when never published). */
static enum posgate_err
open_prev(const struct pub_state *s, const struct list_work *lw, FILE **f, struct feed_source *src,
          struct feed_reader **r)
{
    char p[PATH_CAP];
    const struct feed_header *h;
    enum posgate_err err;

    *f = NULL;
    *r = NULL;
    if (lw->first) {
        return POSGATE_OK;
    }
    err = pathf(p, sizeof p, "%s/lists/%s/snapshot.pgs", s->dir, lw->id);
    if (err != POSGATE_OK) {
        return err;
    }
    *f = fopen(p, "rb");
    if (*f == NULL) {
        die_msg("the last snapshot of list %s (%s) is missing: %s", lw->id, p, strerror(errno));
        return POSGATE_ERR_CORRUPT;
    }
    feed_source_file(src, *f);
    err = feed_reader_new(src, 0, r);
    if (err == POSGATE_OK) {
        err = feed_reader_header(*r, &h);
    }
    if (err == POSGATE_OK && (h->body != FEED_BODY_SNAPSHOT || h->seq != lw->pl->seq)) {
        die_msg("the last snapshot of list %s (%s) is seq %" PRIu64 ", the state says %" PRIu64,
                lw->id, p, h->seq, lw->pl->seq);
        err = POSGATE_ERR_CORRUPT;
    }
    if (err != POSGATE_OK && *r != NULL) {
        die_msg("the last snapshot of list %s (%s): %s", lw->id, p, feed_reader_errmsg(*r));
    }
    return err;
}

static enum posgate_err
prev_next(struct feed_reader *r, struct feed_entry *e, int *have)
{
    enum feed_item item;
    enum posgate_err err;

    *have = 0;
    if (r == NULL) {
        return POSGATE_OK;
    }
    err = feed_reader_next(r, &item, e);
    if (err != POSGATE_OK) {
        die_msg("reading the last snapshot: %s", feed_reader_errmsg(r));
        return err;
    }
    if (item == FEED_ITEM_ENTRY) {
        *have = 1;
    } else if (item != FEED_ITEM_END) {
        die_msg("the last snapshot holds a delta record");
        return POSGATE_ERR_CORRUPT;
    }
    return POSGATE_OK;
}

static enum posgate_err
stage_write(FILE *f, uint16_t list, const struct feed_entry *e)
{
    struct item it;

    it.list = list;
    it.line = 0;
    it.e = *e;
    return item_write(f, &it);
}

/* Begins the list's new snapshot in w, and its new state digest. */
static enum posgate_err
begin_snapshot(struct feed_writer *w, struct list_work *lw, int64_t now)
{
    struct feed_header h;
    enum posgate_err err;

    memset(&h, 0, sizeof h);
    h.body = FEED_BODY_SNAPSHOT;
    h.version = FEED_FORMAT_VERSION;
    snprintf(h.list_id, sizeof h.list_id, "%s", lw->id);
    h.seq = lw->new_seq;
    h.count = lw->rows;
    h.issued_at = now;
    /* A republished list's state is updated in O(delta) from the last one; a first snapshot's
     * state is computed by the writer from its entries. */
    err = feed_writer_begin(w, &h, lw->first ? 0 : FEED_WRITE_CALLER_STATE);
    if (err != POSGATE_OK) {
        die_msg("list %s: %s", lw->id, feed_writer_errmsg(w));
        return err;
    }
    if (lw->first) {
        state_digest_init(&lw->new_state);
    } else {
        lw->new_state = lw->pl->state;
    }
    return POSGATE_OK;
}

/*
 * Pass 1 for one list: merges the sorted new rows of the list (pulled from the sorter; *pending
 * holds the first item of the list, or of the next list afterwards) with the previous snapshot,
 * writes the new snapshot into staging and the removals and additions into staging files.
 */
enum posgate_err
list_pass(struct pub_state *s, struct list_work *lw, uint16_t li, struct sorter *so,
          struct item *pending, int *have_pending, int64_t now, const char *label)
{
    FILE *pf = NULL, *sf = NULL, *af = NULL, *rf = NULL;
    struct feed_source psrc;
    struct feed_reader *pr = NULL;
    struct feed_sink sink;
    struct feed_writer *w = NULL;
    struct feed_entry old;
    struct item cur, prev_new;
    int have_old = 0, have_new, have_prev_new = 0;
    enum posgate_err err;

    err = open_prev(s, lw, &pf, &psrc, &pr);
    if (err != POSGATE_OK) {
        goto out;
    }
    sf = fopen(lw->snap_path, "wb");
    af = fopen(lw->adds_path, "wb");
    rf = fopen(lw->rems_path, "wb");
    if (sf == NULL || af == NULL || rf == NULL) {
        die_msg("cannot create staging files in %s/work: %s", s->dir, strerror(errno));
        err = POSGATE_ERR_IO;
        goto out;
    }
    feed_sink_file(&sink, sf);
    err = feed_writer_new(&sink, &w);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = begin_snapshot(w, lw, now);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = prev_next(pr, &old, &have_old);
    if (err != POSGATE_OK) {
        goto out;
    }
    for (;;) {
        int c = 0;

        have_new = *have_pending && pending->list == li;
        if (have_new) {
            cur = *pending;
            err = sorter_next(so, pending);
            if (err == POSGATE_ERR_NOTFOUND) {
                *have_pending = 0;
                err = POSGATE_OK;
            } else if (err != POSGATE_OK) {
                goto out;
            }
            if (have_prev_new && feed_entry_compare(&prev_new.e, &cur.e) == 0) {
                die_msg("%s lines %" PRIu64 " and %" PRIu64 ": the same subject with listing id "
                        "\"%s\" twice in list %s (expected one row per subject and listing)",
                        label, prev_new.line, cur.line, cur.e.listing_id, lw->id);
                err = POSGATE_ERR_INVALID;
                goto out;
            }
            prev_new = cur;
            have_prev_new = 1;
            err = feed_writer_add(w, &cur.e);
            if (err != POSGATE_OK) {
                die_msg("%s line %" PRIu64 ": %s", label, cur.line, feed_writer_errmsg(w));
                goto out;
            }
        }
        if (!have_new && !have_old) {
            break;
        }
        /* merge walk: new rows against the old snapshot */
        for (;;) {
            c = !have_old ? 1 : !have_new ? -1 : feed_entry_compare(&old, &cur.e);
            if (c >= 0) {
                break;
            }
            /* old < new (or no new left): a removal */
            err = stage_write(rf, li, &old);
            if (err != POSGATE_OK) {
                goto out;
            }
            lw->removals++;
            if (!lw->first) {
                state_digest_remove(&lw->new_state, &old);
            }
            err = prev_next(pr, &old, &have_old);
            if (err != POSGATE_OK) {
                goto out;
            }
            if (!have_old && !have_new) {
                break;
            }
        }
        if (!have_new) {
            break;
        }
        if (c == 0) {
            if (!feed_entry_equal(&old, &cur.e)) {
                /* same subject and listing, other terms: replace */
                err = stage_write(rf, li, &old);
                if (err == POSGATE_OK) {
                    err = stage_write(af, li, &cur.e);
                }
                if (err != POSGATE_OK) {
                    goto out;
                }
                lw->removals++;
                lw->additions++;
                if (!lw->first) {
                    state_digest_remove(&lw->new_state, &old);
                    state_digest_add(&lw->new_state, &cur.e);
                }
            }
            err = prev_next(pr, &old, &have_old);
            if (err != POSGATE_OK) {
                goto out;
            }
        } else {
            /* a first publication has no delta: its additions are only counted */
            if (!lw->first) {
                err = stage_write(af, li, &cur.e);
                if (err != POSGATE_OK) {
                    goto out;
                }
            }
            lw->additions++;
            if (!lw->first) {
                state_digest_add(&lw->new_state, &cur.e);
            }
        }
    }
    err = feed_writer_finish(w, lw->first ? NULL : &lw->new_state);
    if (err != POSGATE_OK) {
        die_msg("list %s: %s", lw->id, feed_writer_errmsg(w));
        goto out;
    }
    if (lw->first) {
        lw->new_state = *feed_writer_state(w);
    }
out:
    feed_writer_free(w);
    feed_reader_free(pr);
    if (pf != NULL) {
        fclose(pf);
    }
    if (sf != NULL && fclose(sf) != 0 && err == POSGATE_OK) {
        err = POSGATE_ERR_IO;
    }
    if (af != NULL && fclose(af) != 0 && err == POSGATE_OK) {
        err = POSGATE_ERR_IO;
    }
    if (rf != NULL && fclose(rf) != 0 && err == POSGATE_OK) {
        err = POSGATE_ERR_IO;
    }
    return err;
}

/* Writes the staged delta of a list: header, removals, additions. */
enum posgate_err
write_delta(struct list_work *lw, int64_t now)
{
    FILE *df = NULL, *in = NULL;
    struct feed_sink sink;
    struct feed_writer *w = NULL;
    struct feed_header h;
    struct item it;
    enum posgate_err err;
    int pass;

    memset(&h, 0, sizeof h);
    df = fopen(lw->delta_path, "wb");
    if (df == NULL) {
        die_msg("cannot create %s: %s", lw->delta_path, strerror(errno));
        return POSGATE_ERR_IO;
    }
    feed_sink_file(&sink, df);
    err = feed_writer_new(&sink, &w);
    if (err != POSGATE_OK) {
        goto out;
    }
    h.body = FEED_BODY_DELTA;
    h.version = FEED_FORMAT_VERSION;
    snprintf(h.list_id, sizeof h.list_id, "%s", lw->id);
    h.base_seq = lw->pl->seq;
    h.seq = lw->new_seq;
    h.removals = lw->removals;
    h.additions = lw->additions;
    h.issued_at = now;
    state_digest_finish(&lw->pl->state, h.base_digest);
    state_digest_finish(&lw->new_state, h.result_digest);
    err = feed_writer_begin(w, &h, 0);
    for (pass = 0; pass < 2 && err == POSGATE_OK; pass++) {
        in = fopen(pass == 0 ? lw->rems_path : lw->adds_path, "rb");
        if (in == NULL) {
            err = POSGATE_ERR_IO;
            break;
        }
        while ((err = item_read(in, &it)) == POSGATE_OK) {
            err = pass == 0 ? feed_writer_remove(w, &it.e) : feed_writer_add(w, &it.e);
            if (err != POSGATE_OK) {
                break;
            }
        }
        if (err == POSGATE_ERR_NOTFOUND) {
            err = POSGATE_OK;
        }
        fclose(in);
        in = NULL;
    }
    if (err == POSGATE_OK) {
        err = feed_writer_finish(w, NULL);
    }
    if (err != POSGATE_OK) {
        die_msg("list %s: writing the delta: %s", lw->id,
                w != NULL ? feed_writer_errmsg(w) : posgate_strerror(err));
    }
out:
    feed_writer_free(w);
    if (fclose(df) != 0 && err == POSGATE_OK) {
        err = POSGATE_ERR_IO;
    }
    return err;
}

/* A list last published with older identifier spellings (IDENT_FORMAT) is republished, changed
 * or not (its delta replaces the keys whose spelling changed): kiosks refuse its old keys,
 * which no longer match what they compute. */
int
ident_format_old(const struct pub_list *pl)
{
    if (pl->published && pl->ident_format < IDENT_FORMAT) {
        fprintf(stderr,
                "%s: list %s: keys of identifier format %d, republishing it in format "
                "%d\n",
                prog, pl->id, pl->ident_format, IDENT_FORMAT);
        return 1;
    }
    return 0;
}

enum posgate_err
custom_json(char *out, size_t cap, const struct list_work *lw, int delta, int64_t now)
{
    char hex[STATE_DIGEST_HEX_LEN + 1], ts[32];
    int n;

    state_digest_hex(&lw->new_state, hex);
    time_text(now, ts);
    /* keys in canonical (byte) order */
    if (delta) {
        n = snprintf(out, cap,
                     "{\"additions\":%" PRIu64 ",\"base_seq\":%" PRIu64 ",\"digest\":\"%s\","
                     "\"entries\":%" PRIu64 ",\"ident_format\":%d,\"issued_at\":\"%s\","
                     "\"list\":\"%s\",\"removals\":%" PRIu64 ",\"seq\":%" PRIu64
                     ",\"type\":\"delta\"}",
                     lw->additions, lw->pl->seq, hex, lw->rows, IDENT_FORMAT, ts, lw->id,
                     lw->removals, lw->new_seq);
    } else {
        n = snprintf(out, cap,
                     "{\"digest\":\"%s\",\"entries\":%" PRIu64 ",\"ident_format\":%d,"
                     "\"issued_at\":\"%s\",\"list\":\"%s\",\"seq\":%" PRIu64
                     ",\"type\":\"snapshot\"}",
                     hex, lw->rows, IDENT_FORMAT, ts, lw->id, lw->new_seq);
    }
    return n > 0 && (size_t)n < cap ? POSGATE_OK : POSGATE_ERR_TOOBIG;
}
