/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of agent/keyfilter on real files in a temporary directory: sizing, every added key
 * passing, the share of absent keys passing near the 0.1% the sizing aims at, a filter larger than
 * the writer's page-drop interval, tokens (a new file appears at its path only when installed,
 * whole with its token; a writer opens only the file of the token it expects), and files that
 * are not filters. The store's use of the filter (versions, crashes, rebuilds) is tested in
 * unit/store and the crash harness.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keyfilter.h"
#include "plat_file.h"
#include "test.h"
#include "test_files.h"

static char tmpdir[256];

static uint64_t
mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* A 16-byte key standing in for an HMAC output. */
static void
key_of(uint64_t i, uint8_t key[KEYFILTER_KEY_LEN])
{
    uint64_t a = mix(i), b = mix(i ^ 0xabcdef);

    for (int j = 0; j < 8; j++) {
        key[j] = (uint8_t)(a >> (8 * j));
        key[8 + j] = (uint8_t)(b >> (8 * j));
    }
}

/* A filter of keys 0..n-1 installed at path with token t. */
static void
make_filter(const char *path, uint64_t n, const uint8_t t[KEYFILTER_TOKEN_LEN])
{
    struct keyfilter_writer w;
    uint8_t key[KEYFILTER_KEY_LEN];
    char msg[256];

    CHECK_OK(keyfilter_create(&w, path, n, msg, sizeof(msg)));
    for (uint64_t i = 0; i < n; i++) {
        key_of(i, key);
        keyfilter_add(&w, key);
    }
    CHECK_OK(keyfilter_install(&w, t, msg, sizeof(msg)));
    keyfilter_close(&w);
}

static unsigned
files_in_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    unsigned n = 0;

    while (d != NULL && (e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

static void
test_sizing(void)
{
    CHECK_INT(keyfilter_blocks_for(0), 64);
    CHECK_INT(keyfilter_blocks_for(1000), 64);
    /* 16 bits a key, rounded up to whole 512-bit blocks */
    CHECK_INT(keyfilter_blocks_for(15000000), (15000000ull * 16 + 511) / 512);
    /* full past one key per 12 bits: a filter made at 10 bits a key is due for a rebuild */
    CHECK(!keyfilter_is_full(64, 64 * 512 / 12));
    CHECK(keyfilter_is_full(64, 64 * 512 / 12 + 1));
    CHECK(keyfilter_is_full((15000000ull * 10 + 511) / 512, 15000000));
}

static void
test_fill_and_probe(void)
{
    struct keyfilter_writer w;
    struct keyfilter_map m;
    char p[400], msg[256];
    uint8_t key[KEYFILTER_KEY_LEN], token[KEYFILTER_TOKEN_LEN];
    const uint64_t n = 200000; /* past the writer's page-drop interval (65,536 keys) */
    uint64_t missed = 0, passed = 0;

    snprintf(p, sizeof(p), "%s/f.filter", tmpdir);
    memset(token, 0x11, sizeof(token));
    CHECK_OK(keyfilter_create(&w, p, n, msg, sizeof(msg)));
    CHECK_INT(files_in_tmpdir(), 1); /* the temporary file only */
    for (uint64_t i = 0; i < n; i++) {
        key_of(i, key);
        keyfilter_add(&w, key);
    }
    CHECK_INT(w.keys, n);
    CHECK(!plat_exists(p)); /* nothing at the path until it is installed, whole */
    CHECK_OK(keyfilter_install(&w, token, msg, sizeof(msg)));
    CHECK(plat_exists(p));
    keyfilter_close(&w);
    CHECK_INT(files_in_tmpdir(), 1);
    CHECK_OK(keyfilter_map_open(&m, p, msg, sizeof(msg)));
    CHECK(keyfilter_map_token_is(&m, token));
    {
        uint8_t zero[KEYFILTER_TOKEN_LEN] = {0};

        CHECK(!keyfilter_map_token_is(&m, zero)); /* no token matches the all-zero one */
    }
    CHECK_INT(keyfilter_map_keys(&m), n);
    for (uint64_t i = 0; i < n; i++) {
        key_of(i, key);
        missed += !keyfilter_maybe(&m, key);
        key_of(n + 1000000 + i, key);
        passed += keyfilter_maybe(&m, key);
    }
    CHECK_INT(missed, 0);
    /* ~0.1% at 16 bits a key with 7 probes in 512-bit blocks; 0.25% leaves room for chance */
    printf("keyfilter: %llu of %llu absent keys pass (%.2f%%)\n", (unsigned long long)passed,
           (unsigned long long)n, 100.0 * (double)passed / (double)n);
    CHECK(passed * 400 < n);
    CHECK(passed > 0); /* a filter that says "no" to everything would pass this test otherwise */

    /* a writer adding in place opens only the file of the token it expects */
    {
        uint8_t other[KEYFILTER_TOKEN_LEN];

        memset(other, 0x22, sizeof(other));
        CHECK_ERR(keyfilter_open_rw(&w, p, other, msg, sizeof(msg)), POSGATE_ERR_STATE);
        CHECK_CONTAINS(msg, "another version");
        CHECK_OK(keyfilter_open_rw(&w, p, token, msg, sizeof(msg)));
        CHECK_INT(w.keys, n);
        key_of(5 * n, key);
        keyfilter_add(&w, key);
        CHECK_OK(keyfilter_install(&w, other, msg, sizeof(msg)));
        keyfilter_close(&w);
        CHECK(keyfilter_maybe(&m, key)); /* the old mapping sees the bits added in place */
        CHECK(keyfilter_map_token_is(&m, other));
        CHECK_INT(keyfilter_map_keys(&m), n + 1);
    }
    keyfilter_map_close(&m);

    /* a new filter closed without install leaves nothing behind */
    CHECK_OK(keyfilter_create(&w, p, 10, msg, sizeof(msg)));
    CHECK_INT(files_in_tmpdir(), 2);
    keyfilter_close(&w);
    CHECK_INT(files_in_tmpdir(), 1);
    CHECK_OK(plat_unlink(p));
}

static void
test_not_filters(void)
{
    struct keyfilter_map m;
    struct keyfilter_writer w;
    char p[400], msg[256];
    uint8_t token[KEYFILTER_TOKEN_LEN] = {1};
    uint8_t head[KEYFILTER_HEADER];

    snprintf(p, sizeof(p), "%s/bad.filter", tmpdir);
    CHECK_ERR(keyfilter_map_open(&m, p, msg, sizeof(msg)), POSGATE_ERR_NOTFOUND);
    CHECK_ERR(keyfilter_open_rw(&w, p, token, msg, sizeof(msg)), POSGATE_ERR_NOTFOUND);
    CHECK_OK(plat_write_atomic(p, "short", 5, 0644));
    CHECK_ERR(keyfilter_map_open(&m, p, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
    CHECK_CONTAINS(msg, "header");
    /* a header of the right magic whose size does not match its block count */
    memset(head, 0, sizeof(head));
    memcpy(head, "PGKFLT02", 8);
    head[8] = 64;
    head[12] = 7;
    head[16] = 64;
    CHECK_OK(plat_write_atomic(p, head, sizeof(head), 0644));
    CHECK_ERR(keyfilter_map_open(&m, p, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
    CHECK_CONTAINS(msg, "64 blocks in 4096 bytes");
    CHECK_ERR(keyfilter_open_rw(&w, p, token, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
    /* a file of the older format (no checksum) is refused as such, to be rebuilt */
    memcpy(head, "PGKFLT01", 8);
    CHECK_OK(plat_write_atomic(p, head, sizeof(head), 0644));
    CHECK_ERR(keyfilter_map_open(&m, p, msg, sizeof(msg)), POSGATE_ERR_UNSUPPORTED);
    CHECK_CONTAINS(msg, "older posgate (format PGKFLT01");
    memcpy(head, "PGKFLT03", 8);
    CHECK_OK(plat_write_atomic(p, head, sizeof(head), 0644));
    CHECK_ERR(keyfilter_map_open(&m, p, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
    CHECK_CONTAINS(msg, "not a key filter file");
    CHECK_OK(plat_unlink(p));
}

/* The checksum of the blocks: one bit lost on disk is found; a writer adding in place makes
 * the file busy (not damaged) until it installs or closes; a file that fails its checksum is
 * not added to (its loss would be sealed by the new checksum). */
static void
test_checksum(void)
{
    struct keyfilter_writer w, w2;
    struct keyfilter_map m, m2;
    char p[400], msg[256];
    uint8_t key[KEYFILTER_KEY_LEN], t1[KEYFILTER_TOKEN_LEN], t2[KEYFILTER_TOKEN_LEN];
    uint64_t h, off;

    snprintf(p, sizeof(p), "%s/sum.filter", tmpdir);
    memset(t1, 0x31, sizeof(t1));
    memset(t2, 0x32, sizeof(t2));
    make_filter(p, 1000, t1);
    CHECK_OK(keyfilter_map_open(&m, p, msg, sizeof(msg)));
    CHECK_INT(keyfilter_map_verify(&m, false), KEYFILTER_SUM_OK);

    /* in place: busy from open to install, then good for the new token with the new key */
    CHECK_OK(keyfilter_open_rw(&w, p, t1, msg, sizeof(msg)));
    CHECK_INT(keyfilter_map_verify(&m, false), KEYFILTER_SUM_BUSY);
    key_of(5000, key);
    keyfilter_add(&w, key);
    CHECK_OK(keyfilter_install(&w, t2, msg, sizeof(msg)));
    keyfilter_close(&w);
    CHECK_INT(keyfilter_map_verify(&m, true), KEYFILTER_SUM_OK); /* dropping its pages */
    CHECK(keyfilter_map_token_is(&m, t2));
    CHECK(keyfilter_maybe(&m, key)); /* ... which a probe maps again */

    /* an in-place update that does not install leaves the file good for its old token */
    CHECK_OK(keyfilter_open_rw(&w, p, t2, msg, sizeof(msg)));
    key_of(6000, key);
    keyfilter_add(&w, key);
    keyfilter_close(&w);
    CHECK_INT(keyfilter_map_verify(&m, false), KEYFILTER_SUM_OK);
    CHECK(keyfilter_map_token_is(&m, t2));

    /* a file left in flux (a crash while adding in place) is neither used nor added to */
    test_flip_bit(p, 52, 0);
    CHECK_INT(keyfilter_map_verify(&m, false), KEYFILTER_SUM_BUSY);
    CHECK_ERR(keyfilter_open_rw(&w2, p, t2, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
    CHECK_CONTAINS(msg, "in flux");
    test_flip_bit(p, 52, 0);
    CHECK_INT(keyfilter_map_verify(&m, false), KEYFILTER_SUM_OK);

    /* one bit of a stored key's block lost: the spot checks of a few keys would likely miss it,
     * the checksum does not; and the writer will not add to the file */
    key_of(17, key);
    off = keyfilter_block_offset(m.n_blocks, key, &h);
    test_flip_bit(p, (long)(off + ((h & 511u) >> 3)), (unsigned)(h & 7u));
    CHECK(!keyfilter_maybe(&m, key)); /* the loss a reader must not trust */
    CHECK_INT(keyfilter_map_verify(&m, true), KEYFILTER_SUM_BAD);
    CHECK_OK(keyfilter_map_open(&m2, p, msg, sizeof(msg)));
    CHECK_INT(keyfilter_map_verify(&m2, false), KEYFILTER_SUM_BAD);
    keyfilter_map_close(&m2);
    CHECK_ERR(keyfilter_open_rw(&w2, p, t2, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
    CHECK_CONTAINS(msg, "checksum");
    CHECK_INT(keyfilter_map_verify(&m, false), KEYFILTER_SUM_BAD); /* still: nothing sealed it */
    keyfilter_map_close(&m);
    CHECK_OK(plat_unlink(p));
}

/* As the readers of a store use the shared verdict (store_reader.c): taken when it names the
 * file, its header and the version; otherwise the blocks are read and an OK recorded. */
static enum keyfilter_sum
shared_sum(const struct keyfilter_map *m, struct keyfilter_seen *seen, const int64_t tag[2])
{
    struct keyfilter_seen got;
    enum keyfilter_sum sum;

    if (keyfilter_seen_matches(m, seen, tag)) {
        return KEYFILTER_SUM_OK;
    }
    sum = keyfilter_map_verify_as(m, tag, &got);
    CHECK(got.valid == (sum == KEYFILTER_SUM_OK));
    if (sum == KEYFILTER_SUM_OK) {
        *seen = got;
    }
    return sum;
}

/* The sum shared by the readers of a store: a file's blocks are read once for a header and a
 * version; a new header (an in-place update), another file (a rebuild renamed over) or another
 * version has them read again. */
static void
test_checksum_seen(void)
{
    struct keyfilter_writer w;
    struct keyfilter_map m, m2;
    struct keyfilter_seen seen, fresh;
    char p[400], p2[400], msg[256], cmd[900];
    uint8_t key[KEYFILTER_KEY_LEN], t1[KEYFILTER_TOKEN_LEN], t2[KEYFILTER_TOKEN_LEN];
    const int64_t v1[2] = {7, 1700000000}, v2[2] = {8, 1700000000};
    uint64_t h, off;
    long bit_at;
    unsigned bit;

    snprintf(p, sizeof(p), "%s/seen.filter", tmpdir);
    snprintf(p2, sizeof(p2), "%s/seen2.filter", tmpdir);
    memset(t1, 0x41, sizeof(t1));
    memset(t2, 0x42, sizeof(t2));
    memset(&seen, 0, sizeof(seen));
    memset(&fresh, 0, sizeof(fresh));
    make_filter(p, 1000, t1);
    CHECK_OK(keyfilter_map_open(&m, p, msg, sizeof(msg)));
    CHECK(!keyfilter_seen_matches(&m, &seen, v1));
    CHECK_INT(shared_sum(&m, &seen, v1), KEYFILTER_SUM_OK);
    CHECK(seen.valid);
    CHECK(keyfilter_seen_matches(&m, &seen, v1));
    CHECK(!keyfilter_seen_matches(&m, &seen, v2));

    /* a bit lost after the sum matched, the header unchanged: the shared sum is not read again
     * (the blocks of that header matched once); a reader without it reads them and finds the
     * loss, and records nothing */
    key_of(17, key);
    off = keyfilter_block_offset(m.n_blocks, key, &h);
    bit_at = (long)(off + ((h & 511u) >> 3));
    bit = (unsigned)(h & 7u);
    test_flip_bit(p, bit_at, bit);
    CHECK_INT(shared_sum(&m, &seen, v1), KEYFILTER_SUM_OK);
    CHECK_INT(shared_sum(&m, &fresh, v1), KEYFILTER_SUM_BAD);
    CHECK(!fresh.valid);

    /* the same bytes in another file (a copy renamed over: another inode) are read again */
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", p, p2);
    CHECK_INT(system(cmd), 0);
    CHECK_OK(keyfilter_map_open(&m2, p2, msg, sizeof(msg)));
    CHECK_INT(shared_sum(&m2, &seen, v1), KEYFILTER_SUM_BAD);
    keyfilter_map_close(&m2);
    CHECK_OK(plat_unlink(p2));
    /* ... and the same file for another version of the store */
    CHECK_INT(shared_sum(&m, &seen, v2), KEYFILTER_SUM_BAD);
    CHECK_INT(shared_sum(&m, &seen, v1), KEYFILTER_SUM_OK); /* not recorded */

    /* restored, then updated in place: the new header has the blocks read again, so a bit lost
     * after the update is found although the file matched before */
    test_flip_bit(p, bit_at, bit);
    CHECK_OK(keyfilter_open_rw(&w, p, t1, msg, sizeof(msg)));
    CHECK(!keyfilter_seen_matches(&m, &seen, v1)); /* in flux */
    CHECK_INT(shared_sum(&m, &seen, v1), KEYFILTER_SUM_BUSY);
    key_of(5000, key);
    keyfilter_add(&w, key);
    CHECK_OK(keyfilter_install(&w, t2, msg, sizeof(msg)));
    keyfilter_close(&w);
    test_flip_bit(p, bit_at, bit);
    CHECK_INT(shared_sum(&m, &seen, v1), KEYFILTER_SUM_BAD);
    test_flip_bit(p, bit_at, bit);
    CHECK_INT(shared_sum(&m, &seen, v1), KEYFILTER_SUM_OK);
    CHECK(keyfilter_map_token_is(&m, t2));
    keyfilter_map_close(&m);
    CHECK_OK(plat_unlink(p));
}

int
main(void)
{
    if (!test_mkdtemp(tmpdir, sizeof(tmpdir), "keyfilter")) {
        return 1;
    }
    test_sizing();
    test_fill_and_probe();
    test_not_filters();
    test_checksum();
    test_checksum_seen();
    if (test_failures == 0) {
        rmdir(tmpdir);
    }
    return test_summary("keyfilter");
}
