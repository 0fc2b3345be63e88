/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The posgated config codec and the POST /v1/check body parser (agent/daemon/daemon_config.c):
 * defaults, every key's type error naming the key, unknown keys, listen addresses (loopback
 * only unless allow_remote, unix: paths), bad URLs, and the check body's field errors, and
 * the direct reader of the common check body against the general parser.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "daemon_config.h"
#include "posgate_admin.h"
#include "test.h"

static char msg[DAEMON_ERRMSG_MAX];

static enum posgate_err
parse(const char *json, struct daemon_config *c)
{
    msg[0] = 0;
    return daemon_config_parse(json, strlen(json), c, msg, sizeof(msg));
}

/* A config with one bad member must fail with INVALID and a message starting with key. */
static void
expect_key_error(const char *json, const char *key)
{
    struct daemon_config c;
    char prefix[64];

    memset(&c, 0x5a, sizeof(c));
    CHECK_ERR(parse(json, &c), POSGATE_ERR_INVALID);
    snprintf(prefix, sizeof(prefix), "%s", key);
    if (strncmp(msg, prefix, strlen(prefix)) != 0) {
        test_failures++;
        fprintf(stderr, "config %s: message \"%s\" does not start with \"%s\"\n", json, msg, key);
    }
    CHECK(((unsigned char *)&c)[0] == 0x5a); /* *out untouched on failure */
}

static void
test_defaults(void)
{
    struct daemon_config c;

    daemon_config_defaults(&c);
    CHECK_STR(c.data_dir, "/var/lib/posgate");
    CHECK_INT(c.n_listen, 1);
    CHECK_STR(c.listen[0].text, "127.0.0.1:8421");
    CHECK_INT(c.listen[0].port, 8421);
    CHECK_INT(c.listen[0].kind, DAEMON_LISTEN_TCP4);
    CHECK_INT(c.listen[0].loopback, 1);
    CHECK_INT(c.allow_remote, 0);
    CHECK_INT(c.n_feed_urls, 0);
    CHECK_INT(c.poll_interval_s, 300);
    CHECK_STR(c.ca_file, "");
    CHECK_STR(c.client_cert, "");
    CHECK_STR(c.client_key, "");
    CHECK_STR(c.proxy, "");
    CHECK_INT(c.max_recv_bytes_per_s, 0);
    CHECK_STR(c.api_token, "");
    CHECK_INT(c.log_level, PLAT_LOG_INFO);

    /* an empty object gives the defaults */
    memset(&c, 0, sizeof(c));
    CHECK_OK(parse("{}", &c));
    CHECK_STR(c.data_dir, "/var/lib/posgate");
    CHECK_INT(c.poll_interval_s, 300);
    CHECK_INT(c.listen[0].port, 8421);
}

static void
test_full(void)
{
    struct daemon_config c;
    const char *json =
        "{\"data_dir\": \"/srv/pg\", \"listen\": [\"127.0.0.1:9000\", \"[::1]:9001\", "
        "\"unix:/run/posgate/api.sock\"], \"allow_remote\": false, \"feed_urls\": "
        "[\"https://feed.example/cn/\", \"http://127.0.0.1:8080\"], \"poll_interval_s\": 60, "
        "\"ca_file\": \"/etc/posgate/ca.pem\", \"client_cert\": \"/etc/posgate/c.pem\", "
        "\"client_key\": \"/etc/posgate/c.key\", \"proxy\": \"http://10.0.0.1:3128\", "
        "\"max_recv_bytes_per_s\": 65536, \"api_token\": \"s3cret-token\", \"log_level\": "
        "\"debug\"}";

    CHECK_OK(parse(json, &c));
    CHECK_STR(c.data_dir, "/srv/pg");
    CHECK_INT(c.n_listen, 3);
    CHECK_INT(c.listen[0].kind, DAEMON_LISTEN_TCP4);
    CHECK_INT(c.listen[0].port, 9000);
    CHECK_INT(c.listen[1].kind, DAEMON_LISTEN_TCP6);
    CHECK_INT(c.listen[1].port, 9001);
    CHECK_INT(c.listen[1].loopback, 1);
    CHECK_INT(c.listen[2].kind, DAEMON_LISTEN_UNIX);
    CHECK_STR(c.listen[2].path, "/run/posgate/api.sock");
    CHECK_INT(c.n_feed_urls, 2);
    CHECK_STR(c.feed_urls[0], "https://feed.example/cn/");
    CHECK_STR(c.feed_urls[1], "http://127.0.0.1:8080");
    CHECK_INT(c.poll_interval_s, 60);
    CHECK_STR(c.ca_file, "/etc/posgate/ca.pem");
    CHECK_STR(c.client_cert, "/etc/posgate/c.pem");
    CHECK_STR(c.client_key, "/etc/posgate/c.key");
    CHECK_STR(c.proxy, "http://10.0.0.1:3128");
    CHECK_INT(c.max_recv_bytes_per_s, 65536);
    CHECK_STR(c.api_token, "s3cret-token");
    CHECK_INT(c.log_level, PLAT_LOG_DEBUG);

    /* null for the nullable keys */
    CHECK_OK(parse("{\"ca_file\": null, \"client_cert\": null, \"client_key\": null, "
                   "\"proxy\": null, \"api_token\": null}",
                   &c));
    CHECK_STR(c.api_token, "");
    CHECK_STR(c.proxy, "");
}

static void
test_type_errors(void)
{
    expect_key_error("{\"data_dir\": 5}", "data_dir");
    expect_key_error("{\"data_dir\": null}", "data_dir");
    expect_key_error("{\"data_dir\": \"\"}", "data_dir");
    expect_key_error("{\"listen\": \"127.0.0.1:8421\"}", "listen");
    expect_key_error("{\"listen\": []}", "listen");
    expect_key_error("{\"listen\": [8421]}", "listen[0]");
    expect_key_error("{\"allow_remote\": \"yes\"}", "allow_remote");
    expect_key_error("{\"allow_remote\": 1}", "allow_remote");
    expect_key_error("{\"feed_urls\": \"http://x/\"}", "feed_urls");
    expect_key_error("{\"feed_urls\": [1]}", "feed_urls[0]");
    expect_key_error("{\"poll_interval_s\": \"300\"}", "poll_interval_s");
    expect_key_error("{\"poll_interval_s\": 0}", "poll_interval_s");
    expect_key_error("{\"poll_interval_s\": 1.5}", "poll_interval_s");
    expect_key_error("{\"poll_interval_s\": -3}", "poll_interval_s");
    expect_key_error("{\"poll_interval_s\": 999999999}", "poll_interval_s");
    expect_key_error("{\"ca_file\": 1}", "ca_file");
    expect_key_error("{\"ca_file\": true}", "ca_file");
    expect_key_error("{\"client_cert\": []}", "client_cert");
    expect_key_error("{\"client_key\": {}}", "client_key");
    expect_key_error("{\"proxy\": 3128}", "proxy");
    expect_key_error("{\"proxy\": \"just-a-host\"}", "proxy");
    expect_key_error("{\"max_recv_bytes_per_s\": -1}", "max_recv_bytes_per_s");
    expect_key_error("{\"max_recv_bytes_per_s\": \"1M\"}", "max_recv_bytes_per_s");
    expect_key_error("{\"api_token\": 12345}", "api_token");
    expect_key_error("{\"api_token\": \"\"}", "api_token");
    expect_key_error("{\"api_token\": \"two words\"}", "api_token");
    expect_key_error("{\"log_level\": \"loud\"}", "log_level");
    expect_key_error("{\"log_level\": 3}", "log_level");
    /* a client certificate needs its key, and the other way round */
    expect_key_error("{\"client_cert\": \"/c.pem\"}", "client_key");
    expect_key_error("{\"client_key\": \"/c.key\"}", "client_cert");
}

static void
test_unknown_and_malformed(void)
{
    struct daemon_config c;

    expect_key_error("{\"poll_interval\": 300}", "poll_interval");
    CHECK_CONTAINS(msg, "unknown key");
    expect_key_error("{\"audit_uri\": \"http://x/\"}", "audit_uri");
    /* the audit uploader's keys: defaults, values, type and range errors naming the key */
    CHECK_OK(parse("{}", &c));
    CHECK_STR(c.audit_url, "");
    CHECK_INT(c.audit_batch_max, 500);
    CHECK_INT(c.audit_upload_interval_s, 10);
    CHECK_INT(c.audit_retention_days, 30);
    CHECK_INT(c.audit_max_bytes, 256 * 1024 * 1024);
    CHECK_INT(c.audit_strict, 0);
    CHECK_INT(c.http_threads, 16);
    CHECK_OK(parse("{\"http_threads\": 32}", &c));
    CHECK_INT(c.http_threads, 32);
    expect_key_error("{\"http_threads\": 0}", "http_threads");
    expect_key_error("{\"http_threads\": 65}", "http_threads");
    expect_key_error("{\"http_threads\": \"8\"}", "http_threads");
    CHECK_OK(parse("{\"audit_url\": \"https://hub:8443/v1/audit\", \"audit_batch_max\": 10000, "
                   "\"audit_upload_interval_s\": 1, \"audit_retention_days\": 0, "
                   "\"audit_max_bytes\": 0, \"audit_durability\": \"strict\"}",
                   &c));
    CHECK_STR(c.audit_url, "https://hub:8443/v1/audit");
    CHECK_INT(c.audit_batch_max, 10000);
    CHECK_INT(c.audit_upload_interval_s, 1);
    CHECK_INT(c.audit_retention_days, 0);
    CHECK_INT(c.audit_max_bytes, 0);
    CHECK_INT(c.audit_strict, 1);
    CHECK_OK(parse("{\"audit_url\": null, \"audit_durability\": \"batched\"}", &c));
    CHECK_INT(c.audit_strict, 0);
    expect_key_error("{\"audit_url\": \"ftp://hub/\"}", "audit_url");
    expect_key_error("{\"audit_url\": 5}", "audit_url");
    expect_key_error("{\"audit_batch_max\": 0}", "audit_batch_max");
    expect_key_error("{\"audit_batch_max\": 10001}", "audit_batch_max");
    expect_key_error("{\"audit_upload_interval_s\": \"10\"}", "audit_upload_interval_s");
    expect_key_error("{\"audit_retention_days\": -1}", "audit_retention_days");
    expect_key_error("{\"audit_max_bytes\": 1.5}", "audit_max_bytes");
    expect_key_error("{\"audit_durability\": \"lazy\"}", "audit_durability");
    CHECK_CONTAINS(msg, "\"lazy\"");
    CHECK_ERR(parse("{\"log_level\": \"info\", \"log_level\": \"debug\"}", &c), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "log_level");
    CHECK_CONTAINS(msg, "twice");
    CHECK_ERR(parse("[]", &c), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "expected a JSON object");
    CHECK(parse("{\"data_dir\": ", &c) != POSGATE_OK);
    CHECK(parse("", &c) != POSGATE_OK);
    CHECK(parse("{} trailing", &c) != POSGATE_OK);
}

static void
test_listen(void)
{
    struct daemon_config c;
    struct daemon_listen l;

    /* non-loopback refused without allow_remote, naming the address */
    expect_key_error("{\"listen\": [\"0.0.0.0:8421\"]}", "listen[0]");
    CHECK_CONTAINS(msg, "allow_remote");
    expect_key_error("{\"listen\": [\"127.0.0.1:1\", \"192.168.1.10:8421\"]}", "listen[1]");
    expect_key_error("{\"listen\": [\"[::]:8421\"]}", "listen[0]");
    CHECK_OK(parse("{\"listen\": [\"0.0.0.0:8421\"], \"allow_remote\": true, \"api_token\": \"t\"}",
                   &c));
    CHECK_INT(c.listen[0].loopback, 0);
    /* order of keys does not matter */
    CHECK_OK(parse("{\"allow_remote\": true, \"api_token\": \"t\", \"listen\": [\"[2001:db8::1]:80\"]}",
                   &c));
    /* remote callers must authenticate; the two credentials must differ */
    expect_key_error("{\"listen\": [\"0.0.0.0:8421\"], \"allow_remote\": true}", "allow_remote");
    CHECK_CONTAINS(msg, "api_token");
    expect_key_error("{\"api_token\": \"a\", \"admin_token\": \"a\"}", "admin_token");
    expect_key_error("{\"allowed_origins\": [\"evil.example\"]}", "allowed_origins[0]");
    expect_key_error("{\"allowed_hosts\": [\"http://x\"]}", "allowed_hosts[0]");
    expect_key_error("{\"socket_group\": \"a b\"}", "socket_group");
    CHECK_OK(parse("{\"admin_token\": \"adm\", \"allowed_hosts\": [\"kiosk.local\"], "
                   "\"allowed_origins\": [\"http://127.0.0.1:8080\"], \"socket_group\": \"posgate\"}",
                   &c));
    CHECK_INT(c.n_allowed_hosts, 1);
    CHECK_INT(c.n_allowed_origins, 1);
    CHECK_OK(parse("{\"listen\": [\"127.10.0.3:8421\"]}", &c));
    CHECK_INT(c.listen[0].loopback, 1);

    /* malformed addresses */
    expect_key_error("{\"listen\": [\"localhost:8421\"]}", "listen[0]");
    CHECK_CONTAINS(msg, "numeric");
    expect_key_error("{\"listen\": [\"127.0.0.1\"]}", "listen[0]");
    expect_key_error("{\"listen\": [\"127.0.0.1:0\"]}", "listen[0]");
    expect_key_error("{\"listen\": [\"127.0.0.1:65536\"]}", "listen[0]");
    expect_key_error("{\"listen\": [\"127.0.0.1:80x\"]}", "listen[0]");
    expect_key_error("{\"listen\": [\"::1:8421\"]}", "listen[0]");
    expect_key_error("{\"listen\": [\"[::1]8421\"]}", "listen[0]");
    expect_key_error("{\"listen\": [\"unix:relative.sock\"]}", "listen[0]");
    expect_key_error("{\"listen\": [\"unix:\"]}", "listen[0]");
    expect_key_error("{\"listen\": [\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]}",
                     "listen");

    /* unix paths: absolute, at most 107 bytes */
    CHECK_OK(daemon_listen_parse("unix:/tmp/a.sock", &l, msg, sizeof(msg)));
    CHECK_INT(l.kind, DAEMON_LISTEN_UNIX);
    CHECK_STR(l.path, "/tmp/a.sock");
    {
        char long_path[160] = "unix:/";

        memset(long_path + 6, 'a', 107);
        long_path[113] = 0;
        CHECK_ERR(daemon_listen_parse(long_path, &l, msg, sizeof(msg)), POSGATE_ERR_INVALID);
        long_path[112] = 0; /* "/" + 106 = 107 bytes */
        CHECK_OK(daemon_listen_parse(long_path, &l, msg, sizeof(msg)));
    }
    CHECK_OK(daemon_listen_parse("[::1]:65535", &l, msg, sizeof(msg)));
    CHECK_INT(l.port, 65535);
    CHECK_INT(l.loopback, 1);
    CHECK_ERR(daemon_listen_parse(NULL, &l, msg, sizeof(msg)), POSGATE_ERR_INVALID);
}

static void
test_urls(void)
{
    struct daemon_config c;

    expect_key_error("{\"feed_urls\": [\"ftp://feed/\"]}", "feed_urls[0]");
    expect_key_error("{\"feed_urls\": [\"feed.example/\"]}", "feed_urls[0]");
    expect_key_error("{\"feed_urls\": [\"http://\"]}", "feed_urls[0]");
    expect_key_error("{\"feed_urls\": [\"http:///path\"]}", "feed_urls[0]");
    expect_key_error("{\"feed_urls\": [\"http://a b/\"]}", "feed_urls[0]");
    expect_key_error("{\"feed_urls\": [\"http://ok/\", \"https://bad url/\"]}", "feed_urls[1]");
    expect_key_error("{\"feed_urls\": [\"\"]}", "feed_urls[0]");
    CHECK_OK(parse("{\"feed_urls\": []}", &c));
    CHECK_INT(c.n_feed_urls, 0);
    CHECK_OK(parse("{\"proxy\": \"socks5://127.0.0.1:1080\"}", &c));
}

static void
test_load(void)
{
    struct daemon_config c;
    char path[] = "/tmp/posgate-dcfg-XXXXXX";
    FILE *f;

    CHECK_ERR(daemon_config_load("/nonexistent/posgated.json", &c, msg, sizeof(msg)),
              POSGATE_ERR_NOTFOUND);
    CHECK_CONTAINS(msg, "/nonexistent/posgated.json");
    CHECK_ERR(daemon_config_load(NULL, &c, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    if (mkdtemp(path) == NULL) {
        CHECK(0);
        return;
    }
    {
        char file[64];

        snprintf(file, sizeof(file), "%s/c.json", path);
        f = fopen(file, "w");
        CHECK(f != NULL);
        if (f != NULL) {
            fputs("{\"poll_interval_s\": 2, \"listen\": [\"unix:/tmp/x.sock\"]}\n", f);
            fclose(f);
        }
        CHECK_OK(daemon_config_load(file, &c, msg, sizeof(msg)));
        CHECK_INT(c.poll_interval_s, 2);
        remove(file);
    }
    remove(path);
}

/* ---- POST /v1/check body ---- */

static enum posgate_err
body(const char *json, struct posgate_request *rq)
{
    msg[0] = 0;
    return daemon_check_body_parse(json, strlen(json), rq, msg, sizeof(msg));
}

static void
expect_body_error(struct posgate_request *rq, const char *json, const char *field)
{
    CHECK_ERR(body(json, rq), POSGATE_ERR_INVALID);
    if (strncmp(msg, field, strlen(field)) != 0) {
        test_failures++;
        fprintf(stderr, "body %s: message \"%s\" does not start with \"%s\"\n", json, msg, field);
    }
}

static void
test_check_body(void)
{
    struct posgate_request *rq = NULL;

    CHECK_ERR(daemon_check_body_parse("{}", 2, NULL, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_OK(posgate_request_new(&rq));
    if (rq == NULL) {
        return;
    }
    CHECK_OK(body("{\"service\": \"air\", \"ids\": [\"cn_rid:11010519491231002X\"]}", rq));
    CHECK_OK(body("{\"service\": \"rail.hsr\", \"ids\": [\"cn_rid:11010519491231002x\", "
                  "\"passport:CHN:E12345678\"], \"operator\": \"clerk-7\", \"at\": "
                  "\"2026-01-02T03:04:05Z\"}",
                  rq));
    CHECK_OK(body("{\"service\": \"air\", \"name\": \"Li Lei\", \"birth_date\": "
                  "\"1980-02-03\"}",
                  rq));
    CHECK_OK(body("{\"service\": \"air\", \"ids\": [], \"name\": \"Li Lei\", \"birth_date\": "
                  "\"1980-02-03\"}",
                  rq));

    expect_body_error(rq, "{\"ids\": [\"cn_rid:11010519491231002X\"]}", "service");
    expect_body_error(rq, "{\"service\": 7, \"ids\": [\"cn_rid:11010519491231002X\"]}", "service");
    expect_body_error(rq, "{\"service\": \"\", \"ids\": [\"cn_rid:11010519491231002X\"]}",
                      "service");
    expect_body_error(rq, "{\"service\": \"air\"}", "ids");
    expect_body_error(rq, "{\"service\": \"air\", \"ids\": []}", "ids");
    expect_body_error(rq, "{\"service\": \"air\", \"ids\": \"cn_rid:11010519491231002X\"}", "ids");
    expect_body_error(rq, "{\"service\": \"air\", \"ids\": [42]}", "ids[0]");
    /* a bad check character names the element and the rule */
    expect_body_error(rq,
                      "{\"service\": \"air\", \"ids\": [\"cn_rid:11010519491231002X\", "
                      "\"cn_rid:110105194912310021\"]}",
                      "ids[1]");
    CHECK_CONTAINS(msg, "check character");
    expect_body_error(rq, "{\"service\": \"air\", \"ids\": [\"nosuchtype:1\"]}", "ids[0]");
    expect_body_error(rq, "{\"service\": \"air\", \"name\": \"Li Lei\"}", "birth_date");
    expect_body_error(rq, "{\"service\": \"air\", \"birth_date\": \"1980-02-03\"}", "name");
    expect_body_error(
        rq, "{\"service\": \"air\", \"name\": \"Li Lei\", \"birth_date\": \"1980-13-45\"}",
        "birth_date");
    expect_body_error(rq,
                      "{\"service\": \"air\", \"ids\": [\"cn_rid:11010519491231002X\"], "
                      "\"at\": \"yesterday\"}",
                      "at");
    expect_body_error(rq,
                      "{\"service\": \"air\", \"ids\": [\"cn_rid:11010519491231002X\"], "
                      "\"operator\": 5}",
                      "operator");
    expect_body_error(rq,
                      "{\"service\": \"air\", \"ids\": [\"cn_rid:11010519491231002X\"], "
                      "\"frobnicate\": 1}",
                      "frobnicate");
    CHECK_CONTAINS(msg, "unknown key");
    CHECK_ERR(body("{\"service\": \"air\", \"service\": \"rail\", \"ids\": "
                   "[\"cn_rid:11010519491231002X\"]}",
                   rq),
              POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "\"service\" twice");
    expect_body_error(rq, "[1, 2]", "body");
    /* a supervisor override comes as a pair of fields */
    CHECK_OK(body("{\"service\": \"air\", \"ids\": [\"cn_rid:11010519491231002X\"], "
                  "\"override_by\": \"sup-1\", \"override_reason\": \"court letter\"}",
                  rq));
    expect_body_error(rq,
                      "{\"service\": \"air\", \"ids\": [\"cn_rid:11010519491231002X\"], "
                      "\"override_by\": \"sup-1\"}",
                      "override_reason");
    expect_body_error(rq,
                      "{\"service\": \"air\", \"ids\": [\"cn_rid:11010519491231002X\"], "
                      "\"override_by\": 1, \"override_reason\": \"x\"}",
                      "override_by");
    CHECK_ERR(body("{\"service\": ", rq), POSGATE_ERR_PARSE);
    CHECK(strncmp(msg, "body", 4) == 0);
    {
        static char big[DAEMON_CHECK_BODY_MAX + 2];

        memset(big, ' ', sizeof(big) - 1);
        big[0] = '{';
        big[sizeof(big) - 2] = '}';
        CHECK_ERR(body(big, rq), POSGATE_ERR_TOOBIG);
    }
    /* nine identifiers: at most eight */
    expect_body_error(rq,
                      "{\"service\": \"air\", \"ids\": [\"cn_rid:11010519491231002X\", "
                      "\"cn_rid:11010519491231002X\", \"cn_rid:11010519491231002X\", "
                      "\"cn_rid:11010519491231002X\", \"cn_rid:11010519491231002X\", "
                      "\"cn_rid:11010519491231002X\", \"cn_rid:11010519491231002X\", "
                      "\"cn_rid:11010519491231002X\", \"cn_rid:11010519491231002X\"]}",
                      "ids[8]");
    posgate_request_free(rq);
}

/* body with its "service" key written "s\u0065rvice": the same JSON, which the direct reader
 * leaves to the general parser. */
static void
escape_service_key(const char *body, char *out, size_t cap)
{
    const char *k = strstr(body, "\"service\"");

    while (k != NULL) {
        const char *q = k + 9;

        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') {
            q++;
        }
        if (*q == ':') {
            break;
        }
        k = strstr(k + 1, "\"service\"");
    }
    CHECK(k != NULL);
    if (k == NULL) {
        out[0] = 0;
        return;
    }
    snprintf(out, cap, "%.*s\"s\\u0065rvice\"%s", (int)(k - body), body, k + 9);
}

/* The direct reader takes text and fills the request byte for byte as the general parser does. */
static void
expect_fast_same(const char *text)
{
    struct posgate_request *a = NULL, *b = NULL;
    char general[512];

    CHECK_OK(posgate_request_new(&a));
    CHECK_OK(posgate_request_new(&b));
    if (a == NULL || b == NULL) {
        posgate_request_free(a);
        posgate_request_free(b);
        return;
    }
    escape_service_key(text, general, sizeof(general));
    CHECK_ERR(daemon_check_body_fast(general, strlen(general), b), POSGATE_ERR_PARSE);
    CHECK_OK(body(general, b));
    CHECK_OK(daemon_check_body_fast(text, strlen(text), a));
    if (!posgated_request_same(a, b)) {
        test_failures++;
        fprintf(stderr, "body %s: the direct reader's request differs from the parser's\n", text);
    }
    posgate_request_free(a);
    posgate_request_free(b);
}

/* The direct reader declines body; the general parser answers err with a message starting with
 * field (NULL: not checked). */
static void
expect_fast_declines(struct posgate_request *rq, const char *body_text, enum posgate_err err,
                     const char *field)
{
    CHECK_ERR(daemon_check_body_fast(body_text, strlen(body_text), rq), POSGATE_ERR_PARSE);
    CHECK_ERR(body(body_text, rq), err);
    if (field != NULL && strncmp(msg, field, strlen(field)) != 0) {
        test_failures++;
        fprintf(stderr, "body %s: message \"%s\" does not start with \"%s\"\n", body_text, msg,
                field);
    }
}

static void
test_check_body_fast(void)
{
    struct posgate_request *rq = NULL;

    CHECK_ERR(daemon_check_body_fast("{}", 2, NULL), POSGATE_ERR_PARSE);
    CHECK_ERR(daemon_check_body_fast(NULL, 0, NULL), POSGATE_ERR_PARSE);
    expect_fast_same("{\"service\":\"rail.hsr\",\"ids\":[\"cn_rid:202215200001275489\"]}");
    expect_fast_same(
        " {\r\n\t\"ids\" : [ \"cn_rid:11010519491231002x\" , \"passport:CHN:E12345678\" ] ,"
        "\n \"service\" :\"air\" } \n");
    expect_fast_same(
        "{\"service\":\"air\",\"ids\":[\"cn_rid:11010519491231002X\",\"cn_rid:"
        "11010519491231002X\",\"cn_rid:11010519491231002X\",\"cn_rid:11010519491231002X"
        "\",\"cn_rid:11010519491231002X\",\"cn_rid:11010519491231002X\",\"cn_rid:"
        "11010519491231002X\",\"cn_rid:11010519491231002X\"]}");
    CHECK_OK(posgate_request_new(&rq));
    if (rq == NULL) {
        return;
    }
    /* each key at most once: the general parser names the second */
    expect_fast_declines(rq,
                         "{\"service\":\"air\",\"service\":\"rail\",\"ids\":[\"cn_rid:"
                         "11010519491231002X\"]}",
                         POSGATE_ERR_PARSE, "body");
    CHECK_CONTAINS(msg, "\"service\" twice");
    expect_fast_declines(rq,
                         "{\"service\":\"air\",\"ids\":[\"cn_rid:11010519491231002X\"],\"ids\":"
                         "[\"cn_rid:11010519491231002X\"]}",
                         POSGATE_ERR_PARSE, "body");
    CHECK_CONTAINS(msg, "\"ids\" twice");
    expect_fast_declines(rq,
                         "{\"service\":\"air\",\"ids\":[\"cn_rid:11010519491231002X\"],"
                         "\"frobnicate\":\"x\"}",
                         POSGATE_ERR_INVALID, "frobnicate");
    expect_fast_declines(rq,
                         "{\"service\":\"air\",\"ids\":[\"cn_rid:11010519491231002X\"],"
                         "\"operator\":\"clerk-7\"}",
                         POSGATE_OK, NULL);
    /* text: bytes below 0x20 and invalid UTF-8 refused with the field named */
    expect_fast_declines(rq, "{\"service\":\"air\",\"ids\":[\"cn_rid:1101051949\t1231002X\"]}",
                         POSGATE_ERR_INVALID, "ids[0]: expected UTF-8 text");
    expect_fast_declines(rq, "{\"service\":\"a\xffir\",\"ids\":[\"cn_rid:11010519491231002X\"]}",
                         POSGATE_ERR_INVALID, "service: expected UTF-8 text");
    expect_fast_declines(rq,
                         "{\"service\":\"air\",\"ids\":[\"cn_rid:11010519491231002X\",\"cn_rid:"
                         "\xc3\x28\"]}",
                         POSGATE_ERR_INVALID, "ids[1]: expected UTF-8 text");
    /* the request's own refusals, named as the general parser names them */
    expect_fast_declines(rq, "{\"service\":\"\",\"ids\":[\"cn_rid:11010519491231002X\"]}",
                         POSGATE_ERR_INVALID, "service");
    expect_fast_declines(rq, "{\"service\":\"air\",\"ids\":[\"cn_rid:110105194912310021\"]}",
                         POSGATE_ERR_INVALID, "ids[0]");
    CHECK_CONTAINS(msg, "check character");
    expect_fast_declines(rq, "{\"service\":\"air\",\"ids\":[]}", POSGATE_ERR_INVALID, "ids");
    expect_fast_declines(rq, "{\"service\":7,\"ids\":[\"cn_rid:11010519491231002X\"]}",
                         POSGATE_ERR_INVALID, "service");
    expect_fast_declines(rq, "{\"service\":\"air\",\"ids\":[\"cn_rid:11010519491231002X\",7]}",
                         POSGATE_ERR_INVALID, "ids[1]");
    expect_fast_declines(rq,
                         "{\"service\":\"air\",\"ids\":[\"cn_rid:11010519491231002X\",\"cn_rid:"
                         "11010519491231002X\",\"cn_rid:11010519491231002X\",\"cn_rid:"
                         "11010519491231002X\",\"cn_rid:11010519491231002X\",\"cn_rid:"
                         "11010519491231002X\",\"cn_rid:11010519491231002X\",\"cn_rid:"
                         "11010519491231002X\",\"cn_rid:11010519491231002X\"]}",
                         POSGATE_ERR_INVALID, "ids[8]");
    /* malformed or unusual JSON is the general parser's */
    expect_fast_declines(rq, "{\"service\":\"air\",\"ids\":[\"cn_rid:11010519491231002X\"]}x",
                         POSGATE_ERR_PARSE, "body");
    expect_fast_declines(rq, "{\"service\":\"air\",\"ids\":[\"cn_rid:11010519491231002X\"]",
                         POSGATE_ERR_PARSE, "body");
    expect_fast_declines(rq, "{\"service\":\"air\",\"ids\":[\"cn_rid:11010519491231002X\",]}",
                         POSGATE_ERR_PARSE, "body");
    expect_fast_declines(rq, "{\"service\":\"air\",\"ids\":[\"cn_rid:11010519491231002\\u0058\"]}",
                         POSGATE_OK, NULL);
    expect_fast_declines(rq, "{\"service\":\"air\",\"ids\":[\"cn_rid:11010519491231002X\"]}\f",
                         POSGATE_ERR_PARSE, "body");
    expect_fast_declines(rq, "{\"service\":\"air\",\f\"ids\":[\"cn_rid:11010519491231002X\"]}",
                         POSGATE_OK, NULL);
    posgate_request_free(rq);
}

static void
test_answers(void)
{
    struct buf b = BUF_INIT(1u << 20);
    struct daemon_health h;
    struct daemon_sync_state s;

    CHECK_OK(daemon_error_json("ids[0]: bad \"quote\"", &b));
    CHECK_STR(buf_cstr(&b), "{\"error\":\"ids[0]: bad \\\"quote\\\"\"}");
    CHECK_OK(daemon_sync_accepted_json(7, 1, &b));
    CHECK_STR(buf_cstr(&b), "{\"sync_id\":7,\"running\":true,\"result\":\"/v1/status "
                            "sync.result, once sync.result.id >= 7\"}");

    CHECK_OK(daemon_health_from_status("{\"feed_version\":0,\"lists\":[]}", &h));
    CHECK_INT(h.ok, 0);
    CHECK_CONTAINS(h.reason, "no verified");
    CHECK_OK(daemon_health_from_status(
        "{\"feed_version\":3,\"metadata_expired\":false,\"clock_fault\":false,\"lists\":["
        "{\"id\":\"a\",\"data_age_s\":10,\"stale\":false},"
        "{\"id\":\"b\",\"data_age_s\":40,\"stale\":false}]}",
        &h));
    CHECK_INT(h.ok, 1);
    CHECK_INT(h.feed_version, 3);
    CHECK_INT(h.data_age_s, 40);
    CHECK_OK(daemon_health_from_status("{\"feed_version\":3,\"metadata_expired\":false,\"lists\":["
                                       "{\"id\":\"a\",\"data_age_s\":10,\"stale\":false},"
                                       "{\"id\":\"b\",\"data_age_s\":900000,\"stale\":true}]}",
                                       &h));
    CHECK_INT(h.ok, 0);
    CHECK_CONTAINS(h.reason, "list b is stale");
    CHECK_OK(daemon_health_from_status("{\"feed_version\":3,\"metadata_expired\":true,"
                                       "\"expires_at\":\"2020-01-01T00:00:00Z\",\"lists\":[]}",
                                       &h));
    CHECK_INT(h.ok, 0);
    CHECK_CONTAINS(h.reason, "expired");
    CHECK_ERR(daemon_health_from_status("not json", &h), POSGATE_ERR_PARSE);
    CHECK_ERR(daemon_health_from_status("{\"lists\":[]}", &h), POSGATE_ERR_PARSE);

    memset(&s, 0, sizeof(s));
    s.last_attempt = 1700000000;
    snprintf(s.last_error, sizeof(s.last_error), "RETRY: HTTP 429");
    CHECK_OK(daemon_status_with_sync("{\"feed_version\":1,\"lists\":[]}", &s, &b));
    CHECK_CONTAINS(buf_cstr(&b), "\"feed_version\":1");
    CHECK_CONTAINS(buf_cstr(&b), "\"sync\":{\"last_attempt\":\"2023-11-14T22:13:20Z\","
                                 "\"last_success\":null,\"last_error\":\"RETRY: HTTP 429\","
                                 "\"next_attempt\":null");
    buf_free(&b);
}

int
main(void)
{
    test_defaults();
    test_full();
    test_type_errors();
    test_unknown_and_malformed();
    test_listen();
    test_urls();
    test_load();
    test_check_body();
    test_check_body_fast();
    test_answers();
    return test_summary("daemon_config");
}
