/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the snapshot and delta reader. Any input must end in OK or a parse error with
 * a message, never a crash or a read past the data; and since every encoding is canonical, a
 * body that reads cleanly must come out of the writer byte for byte the same.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "feed_records.h"
#include "posgate_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
die(const char *what, const char *detail)
{
    fprintf(stderr, "feed_records_fuzz: %s: %s\n", what, detail);
    abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct feed_source src;
    struct feed_mem m;
    struct feed_reader *r = NULL;
    struct feed_writer *w = NULL;
    struct feed_sink sink;
    struct buf out = BUF_INIT((size_t)1 << 26);
    const struct feed_header *h;
    enum feed_item item;
    struct feed_entry e;
    enum posgate_err err, werr = POSGATE_OK;

    feed_source_mem(&src, &m, data, size);
    feed_sink_buf(&sink, &out);
    if (feed_reader_new(&src, FEED_READ_VERIFY_DIGEST, &r) != POSGATE_OK) {
        return 0;
    }
    err = feed_reader_header(r, &h);
    if (err == POSGATE_OK) {
        werr = feed_writer_new(&sink, &w);
        if (werr == POSGATE_OK) {
            werr = feed_writer_begin(w, h, 0);
        }
    }
    while (err == POSGATE_OK) {
        err = feed_reader_next(r, &item, &e);
        if (err != POSGATE_OK || item == FEED_ITEM_END) {
            break;
        }
        if (werr == POSGATE_OK) {
            werr = item == FEED_ITEM_REMOVE ? feed_writer_remove(w, &e) : feed_writer_add(w, &e);
        }
    }
    if (err == POSGATE_OK) {
        if (werr == POSGATE_OK) {
            werr = feed_writer_finish(w, NULL);
        }
        if (werr != POSGATE_OK) {
            die("writer refused what the reader accepted", feed_writer_errmsg(w));
        }
        if (out.len != size || memcmp(out.data, data, size) != 0) {
            die("re-encoding differs", "a valid body has two byte forms");
        }
        if (feed_reader_offset(r) != size) {
            die("offset", "END before the end of the data");
        }
    } else if (err != POSGATE_ERR_PARSE && err != POSGATE_ERR_TOOBIG &&
               err != POSGATE_ERR_BADHASH) {
        die("unexpected error", posgate_err_name(err));
    } else if (feed_reader_errmsg(r)[0] == '\0') {
        die("error without a message", posgate_err_name(err));
    }
    feed_writer_free(w);
    feed_reader_free(r);
    buf_free(&out);
    return 0;
}
