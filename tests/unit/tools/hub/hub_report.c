/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Device status reports at the collector (tools/hub/hub_report.c, hub_db_report in tools/hub/hub_db.c):
 * the envelope's parser refuses what is not a report (exact errors first), and the store keeps
 * a verified report in the history and the newest as the latest: a replayed older report is
 * not the latest, an edited one and one signed by another device's key do not verify, a
 * device not enrolled is refused. Envelopes are signed here the way agent/core/device_report.c
 * signs them (device_report_message + device_key_sign), on the SQLite store, or on PostgreSQL
 * with POSGATE_TEST_PG_URI (with_pg.sh).
 */
#define _DEFAULT_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto.h"
#include "device_key.h"
#include "device_report.h"
#include "hub_db.h"
#include "hub_report.h"
#include "test.h"

static char dir[] = "/tmp/posgate-hubreport-XXXXXX";

/* An envelope for device id signed by k (NULL: a signature of 70 zero bytes), with a report
 * whose device_id is rid and whose status says feed_version fv, into out. */
static void
envelope(struct device_key *k, const char *id, const char *rid, long long at, int fv,
         struct buf *out)
{
    char rep[512], hex[2 * 512 + 1];
    struct buf msg = BUF_INIT(4096), sig = BUF_INIT(512);

    snprintf(rep, sizeof(rep),
             "{\\\"v\\\":1,\\\"device_id\\\":\\\"%s\\\",\\\"reported_at_us\\\":%lld,"
             "\\\"status\\\":{\\\"feed_version\\\":%d}}",
             rid, at, fv);
    {
        /* the signed text is the report unescaped */
        char plain[512];
        size_t n = 0;

        for (const char *p = rep; *p != 0 && n + 1 < sizeof(plain); p++) {
            if (*p != '\\') {
                plain[n++] = *p;
            }
        }
        plain[n] = 0;
        if (k != NULL) {
            CHECK_OK(device_report_message(id, plain, n, &msg));
            CHECK_OK(device_key_sign(k, msg.data, msg.len, &sig));
        } else {
            memset(hex, '0', 140);
            hex[140] = 0;
        }
    }
    if (k != NULL) {
        crypto_hex(sig.data, sig.len, hex);
    }
    buf_reset(out);
    CHECK_OK(buf_printf(out,
                        "{\"v\":1,\"device_id\":\"%s\",\"report\":\"%s\",\"signature\":\"%s\"}", id,
                        rep, hex));
    buf_free(&msg);
    buf_free(&sig);
}

static void
test_parse(void)
{
    struct hub_report *r = (struct hub_report *)1;
    char msg[512];
    struct buf b = BUF_INIT(HUB_REPORT_MAX + 16);
    const char *id = "0123456789abcdef0123456789abcdef";

    /* safety: oversize, not JSON, members missing or wrong */
    CHECK_OK(buf_reserve(&b, HUB_REPORT_MAX + 1));
    memset(b.data, ' ', HUB_REPORT_MAX + 1);
    CHECK_ERR(hub_report_parse(b.data, HUB_REPORT_MAX + 1, &r, msg, sizeof(msg)),
              POSGATE_ERR_TOOBIG);
    CHECK(r == NULL);
    CHECK_ERR(hub_report_parse("not json", 8, &r, msg, sizeof(msg)), POSGATE_ERR_PARSE);
    CHECK_ERR(hub_report_parse("{\"v\":2}", 7, &r, msg, sizeof(msg)), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "expected a status report");
    envelope(NULL, "0123", "0123", 5, 1, &b);
    CHECK_ERR(hub_report_parse(b.data, b.len, &r, msg, sizeof(msg)), POSGATE_ERR_PARSE);
    envelope(NULL, id, "fedcba9876543210fedcba9876543210", 5, 1, &b);
    CHECK_ERR(hub_report_parse(b.data, b.len, &r, msg, sizeof(msg)), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "envelope's device_id");
    envelope(NULL, id, id, 0, 1, &b);
    CHECK_ERR(hub_report_parse(b.data, b.len, &r, msg, sizeof(msg)), POSGATE_ERR_PARSE);
    buf_reset(&b);
    CHECK_OK(buf_printf(
        &b, "{\"v\":1,\"device_id\":\"%s\",\"report\":\"{}\",\"signature\":\"xyz\"}", id));
    CHECK_ERR(hub_report_parse(b.data, b.len, &r, msg, sizeof(msg)), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "signature");
    /* a well-formed one */
    envelope(NULL, id, id, 1234567, 3, &b);
    CHECK_OK(hub_report_parse(b.data, b.len, &r, msg, sizeof(msg)));
    CHECK(r != NULL);
    if (r != NULL) {
        CHECK_STR(r->device_id, id);
        CHECK_INT(r->reported_at_us, 1234567);
        CHECK_INT(r->sig_len, 70);
        CHECK_CONTAINS(r->report, "\"feed_version\":3");
    }
    hub_report_free(r);
    hub_report_free(NULL);
    buf_free(&b);
}

struct latest {
    int n;
    long long at;
    char text[512];
};

static enum posgate_err
on_latest(void *ctx, const char *id, const char *report, size_t len, int64_t at, int64_t rcv)
{
    struct latest *l = ctx;

    (void)id;
    (void)rcv;
    l->n++;
    l->at = at;
    snprintf(l->text, sizeof(l->text), "%.*s", (int)(len < 500 ? len : 500), report);
    return POSGATE_OK;
}

int
main(void)
{
    struct device_key *ka = NULL, *kb = NULL;
    struct hub_db *db = NULL;
    struct hub_report_result res;
    struct latest l;
    struct buf b = BUF_INIT(HUB_REPORT_MAX), pem = BUF_INIT(65536);
    char path[1200], kp[1200], pp[1200], msg[512], ida[DEVICE_ID_HEX_LEN + 1],
        idb[DEVICE_ID_HEX_LEN + 1];
    bool added;

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_parse();
    snprintf(path, sizeof(path), "%s/hub.db", dir);
    if (getenv("POSGATE_TEST_PG_URI") != NULL) {
        snprintf(path, sizeof(path), "%s", getenv("POSGATE_TEST_PG_URI"));
    }
    CHECK_OK(hub_db_open(path, &db, msg, sizeof(msg)));
    CHECK_ERR(hub_db_report(NULL, "{}", 2, 1, &res), POSGATE_ERR_INVALID);
    CHECK_ERR(hub_db_reports(db, NULL, NULL), POSGATE_ERR_INVALID);
    snprintf(kp, sizeof(kp), "%s/a.key", dir);
    snprintf(pp, sizeof(pp), "%s/a.pub", dir);
    CHECK_OK(device_key_create(kp, pp, msg, sizeof(msg)));
    CHECK_OK(device_key_load(kp, pp, &ka, msg, sizeof(msg)));
    snprintf(kp, sizeof(kp), "%s/b.key", dir);
    snprintf(pp, sizeof(pp), "%s/b.pub", dir);
    CHECK_OK(device_key_create(kp, pp, msg, sizeof(msg)));
    CHECK_OK(device_key_load(kp, pp, &kb, msg, sizeof(msg)));
    if (ka == NULL || kb == NULL || db == NULL) {
        return test_summary("hub_report");
    }
    snprintf(ida, sizeof(ida), "%s", device_key_id(ka));
    snprintf(idb, sizeof(idb), "%s", device_key_id(kb));
    /* not enrolled yet */
    envelope(ka, ida, ida, 2000, 1, &b);
    CHECK_ERR(hub_db_report(db, b.data, b.len, 10, &res), POSGATE_ERR_NOTFOUND);
    CHECK_CONTAINS(res.error, "not enrolled");
    CHECK_OK(buf_append_str(&pem, device_key_pub_pem(ka)));
    CHECK_OK(hub_db_enroll(db, (const char *)pem.data, pem.len, 1, ida, &added, msg, sizeof(msg)));
    /* taken, the latest */
    CHECK_OK(hub_db_report(db, b.data, b.len, 10, &res));
    CHECK(res.latest);
    CHECK_STR(res.device_id, ida);
    /* an older one (a replay): history only; the same again: nothing */
    envelope(ka, ida, ida, 1000, 7, &b);
    CHECK_OK(hub_db_report(db, b.data, b.len, 11, &res));
    CHECK(!res.latest);
    CHECK_OK(hub_db_report(db, b.data, b.len, 11, &res));
    CHECK(!res.latest);
    /* signed by another device's key, in a's name; edited after signing */
    envelope(kb, ida, ida, 9000, 8, &b);
    CHECK_ERR(hub_db_report(db, b.data, b.len, 12, &res), POSGATE_ERR_BADSIG);
    envelope(ka, ida, ida, 9000, 8, &b);
    {
        char *p = strstr((char *)b.data, "\\\"feed_version\\\":8");

        CHECK(p != NULL);
        if (p != NULL) {
            p[strlen("\\\"feed_version\\\":")] = '9';
        }
    }
    CHECK_ERR(hub_db_report(db, b.data, b.len, 12, &res), POSGATE_ERR_BADSIG);
    memset(&l, 0, sizeof(l));
    CHECK_OK(hub_db_reports(db, on_latest, &l));
    CHECK_INT(l.n, 1);
    CHECK_INT(l.at, 2000);
    CHECK_CONTAINS(l.text, "\"feed_version\":1");
    /* a newer one becomes the latest */
    envelope(ka, ida, ida, 3000, 4, &b);
    CHECK_OK(hub_db_report(db, b.data, b.len, 13, &res));
    CHECK(res.latest);
    memset(&l, 0, sizeof(l));
    CHECK_OK(hub_db_reports(db, on_latest, &l));
    CHECK_INT(l.at, 3000);
    CHECK_CONTAINS(l.text, "\"feed_version\":4");
    (void)idb;
    hub_db_close(db);
    device_key_free(ka);
    device_key_free(kb);
    buf_free(&b);
    buf_free(&pem);
    if (test_failures == 0) {
        char cmd[1300];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "could not remove %s\n", dir);
        }
    }
    return test_summary("hub_report");
}
