/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The insides of posgate-publish shared by its files (publish_main.c says what the tool does):
 * the publisher state as loaded from publish.json, the keys of a run, the sort items, one list's
 * work in an update, and the helpers the commands have in common. Included only from
 * tools/publish/. The key commands (publish_keys.c) and status (publish_status.c) read the state
 * their own way and do not include it.
 *
 * State directory:
 *
 *   +------------------------------+---------------------------------------------------+
 *   | publish.json                 | key paths, per list: seq, entries, state digest,  |
 *   |                              | role, targets listed (snapshot, kept deltas),     |
 *   |                              | pending (a run stopped before its publication),   |
 *   |                              | ident_format (IDENT_FORMAT of its last keys)      |
 *   | feed.json                    | the feed configuration, published as config/...   |
 *   | lists/<id>/snapshot.pgs      | the last published snapshot body of the list      |
 *   | tuf/                         | the TUF writer's state (tuf_writer.h)             |
 *   | work/                        | temporary files of a run (sort runs, staging)     |
 *   +------------------------------+---------------------------------------------------+
 */
#ifndef POSGATE_PUBLISH_INTERNAL_H
#define POSGATE_PUBLISH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "crypto.h"
#include "entries_csv.h"
#include "feed_config.h"
#include "posgate_err.h"
#include "publish_opts.h"
#include "state_digest.h"
#include "tuf_writer.h"

#define EXIT_OK      0
#define EXIT_USAGE   2
#define EXIT_REFUSED 4
#define EXIT_IO      5

#define PATH_CAP       4096
#define LIST_KEY_LEN   32
#define MAX_ROOT_KEYS  OPT_VALUES_MAX /* --root-key may be given this many times */
#define MAX_AUTH_KEYS  16
#define KEEP_DELTAS    10 /* deltas listed per list; a kiosk further behind takes a snapshot */
#define SORT_CHUNK     262144
#define STATE_JSON_MAX (16u << 20)
#define ROLE_PREFIX    "list-"
#define AUTH_FIELD     "x-posgate-authorities" /* the root's record of list authorities */

extern const char *const prog; /* "posgate-publish", the first word of every message */

/* ---- helpers (publish_util.c) -------------------------------------------------------------- */

void die_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int exit_for(enum posgate_err err);
enum posgate_err pathf(char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
enum posgate_err load_privkey(const char *path, struct crypto_privkey **out);
enum posgate_err load_list_key(const char *path, struct crypto_hmac_key *k);
enum posgate_err load_config(const char *path, struct feed_config **cfg, struct buf *raw);
enum posgate_err add_key_check(const char *where, const struct crypto_hmac_key *hk, struct buf *raw,
                               struct feed_config **cfg, int *added);
enum posgate_err copy_file(const char *from, const char *to);
void remove_dir(const char *dir);

/* ---- the publisher state, its keys and its TUF writer (publish_state.c) -------------------- */

struct pub_list {
    char id[FEED_NAME_ID_MAX + 1];
    int published;
    uint64_t seq;
    uint64_t entries;
    int64_t issued_at;
    struct state_digest state;
    char role[TUF_WRITER_ROLE_MAX + 1]; /* "targets" or the delegated role */
    char snapshot_target[256];          /* current snapshot's target name ("" none) */
    size_t ndeltas;
    char deltas[KEEP_DELTAS + 1][256]; /* listed delta target names, oldest first */
    unsigned auth_threshold;
    int resign;       /* delegated, its role not yet signed by the authority */
    int pending;      /* changed by a run that stopped before its publication finished: the next
                         update publishes the list whole (a new snapshot, no delta) */
    int ident_format; /* IDENT_FORMAT of its last publication (1 when the state predates it,
                         0 before the first) */
};

struct pub_state {
    char dir[PATH_CAP];
    char feed_key[PATH_CAP];
    char list_key[PATH_CAP];
    size_t nroot;
    char root_keys[MAX_ROOT_KEYS][PATH_CAP];
    size_t nonline;
    char online_keys[MAX_ROOT_KEYS][PATH_CAP]; /* rotated-in online keys (publish_keys.c) */
    char config_sha256[65];
    size_t nlists;
    struct pub_list *lists;
};

/* Authority keys given as ID=KEY.key. */
struct auth_key {
    char list[FEED_NAME_ID_MAX + 1];
    struct crypto_privkey *k;
};

struct keyring {
    struct crypto_privkey *keys[2 * MAX_ROOT_KEYS + MAX_AUTH_KEYS + 1];
    size_t n;
    struct auth_key auth[MAX_AUTH_KEYS];
    size_t nauth;
};

void pub_state_cleanup(struct pub_state *s);
struct pub_list *pub_find(struct pub_state *s, const char *id);
struct pub_list *pub_add(struct pub_state *s, const char *id);
enum posgate_err pub_state_load(const char *dir, struct pub_state *s);
enum posgate_err pub_state_save(const struct pub_state *s);
void keyring_cleanup(struct keyring *kr);
enum posgate_err keyring_load(const struct pub_state *s, const struct opt *auth,
                              struct keyring *kr);
size_t keyring_auth_count(const struct keyring *kr, const char *list);
enum posgate_err check_resign(const struct pub_state *s, const struct keyring *kr);
enum posgate_err clear_resign(struct pub_state *s, const struct keyring *kr);
enum posgate_err set_lifetimes(struct tuf_writer *w, int64_t timestamp_s);
enum posgate_err parse_expires(const struct opt *o, int64_t *out);
enum posgate_err open_writer(const struct pub_state *s, struct tuf_writer **w);
enum posgate_err publish_repo(struct tuf_writer *w, const char *out_dir, struct keyring *kr);

/* ---- sort items and the external sorter (publish_sort.c) ----------------------------------- */

struct item {
    uint16_t list;
    uint64_t line;
    struct feed_entry e;
};

/* The external sorter. */
struct sorter {
    char dir[PATH_CAP];
    struct item *chunk;
    size_t n;
    size_t nruns;
    FILE **runs; /* open for reading during the merge */
    struct item *heads;
    size_t *heap; /* indices of runs, ordered by their head item */
    size_t heap_n;
    size_t mem_pos; /* iteration over chunk when there is no run */
};

enum posgate_err item_write(FILE *f, const struct item *it);
enum posgate_err item_read(FILE *f, struct item *it);
enum posgate_err sorter_add(struct sorter *s, uint16_t list, uint64_t line,
                            const struct feed_entry *e);
enum posgate_err sorter_finish(struct sorter *s);
enum posgate_err sorter_next(struct sorter *s, struct item *out);
void sorter_cleanup(struct sorter *s);

/* ---- one list in an update (publish_list.c) ------------------------------------------------ */

struct list_work {
    struct pub_list *pl; /* state of the list (NULL fields until published) */
    const char *id;
    uint64_t rows;  /* rows of this list in the CSV */
    int first;      /* never published */
    int reformat;   /* last keyed in an older IDENT_FORMAT: published even when unchanged */
    int untouched;  /* left as it is: not compared, not published (a delegated list the CSV has
                       no rows of, published by its authority's handover; in authority-sign,
                       every list but the authority's) */
    uint64_t additions, removals;
    uint64_t new_seq;
    struct state_digest new_state;
    char snap_path[PATH_CAP];  /* staged new snapshot */
    char delta_path[PATH_CAP]; /* staged delta ("" when none) */
    char adds_path[PATH_CAP];
    char rems_path[PATH_CAP];
};

enum posgate_err list_pass(struct pub_state *s, struct list_work *lw, uint16_t li,
                           struct sorter *so, struct item *pending, int *have_pending, int64_t now,
                           const char *label);
enum posgate_err write_delta(struct list_work *lw, int64_t now);
int ident_format_old(const struct pub_list *pl);
enum posgate_err custom_json(char *out, size_t cap, const struct list_work *lw, int delta,
                             int64_t now);

/* Where a run lists the targets it stages: the TUF writer's state (update), or a delegated role
 * its authority builds away from that state (authority-sign, publish_role.c). Each function
 * tells its own failure on stderr. */
struct target_sink {
    /* lists name in role, its content at path, its custom JSON (or NULL) */
    enum posgate_err (*add)(void *ctx, const char *role, const char *name, const char *path,
                            const char *custom);
    /* withdraws name from role; NOTFOUND (untold) when role does not list it */
    enum posgate_err (*remove)(void *ctx, const char *role, const char *name);
    void *ctx;
};

void target_sink_writer(struct target_sink *t, struct tuf_writer *w);
/* remove, a target already absent being no failure */
enum posgate_err sink_remove_quiet(const struct target_sink *t, const char *role,
                                   const char *name);

/* ---- the feed's and the delegated lists' configurations (publish_config.c) ----------------- */

#define REASON_BITS_BYTES (FEED_REASONS_MAX / 8) /* a bit per reason, per list */

/* One delegated list's lists/<id>/config.json in this run. */
struct signed_cfg {
    int write;             /* its authority signs a new one in this run */
    char staged[PATH_CAP]; /* its body, in the work directory */
};

enum posgate_err publish_config(struct pub_state *s, struct tuf_writer *w, const struct buf *raw,
                                int *changed);
void reason_used_mark(uint8_t *used, uint16_t list, uint16_t reason);
enum posgate_err signed_cfg_plan(struct pub_state *s, const struct feed_config *cfg,
                                 const struct buf *cfg_raw, const uint8_t *used,
                                 const struct keyring *kr, const char *workdir,
                                 struct signed_cfg *sc);
enum posgate_err signed_cfg_add(struct pub_state *s, const struct feed_config *cfg,
                                const struct target_sink *t, const struct signed_cfg *sc);
enum posgate_err signed_cfg_require(const struct pub_state *s);
enum posgate_err signed_cfg_commit(const struct pub_state *s, const struct feed_config *cfg,
                                   const struct signed_cfg *sc);

/* ---- a delegated list retired by the root, leaving the feed (publish_retire.c) -------------- */

/* REJECTED (said) for a delegated list of the state missing from cfg whose retirement the
 * state's root does not record (authorize --retire), and for a list of cfg the root retired
 * that the state does not delegate (it returns only delegated and authorised anew). */
enum posgate_err retire_check(struct pub_state *s, const struct feed_config *cfg);
/* Withdraws in w the delegation of each delegated list of the state that cfg no longer has;
 * REJECTED (said) for one whose retirement w's root does not record. */
enum posgate_err retire_undelegate(const struct pub_state *s, const struct feed_config *cfg,
                                   struct tuf_writer *w);
/* After their publication: those lists leave the state (record and lists/<id>/). */
enum posgate_err retire_forget(struct pub_state *s, const struct feed_config *cfg);

/* ---- an update's run: what its steps share, and the steps update and authority-sign have in
 * common, in the order they run (publish_run.c; publish_update.c draws the whole update) ----- */

struct run {
    int64_t now;
    struct pub_state s;
    struct feed_config *cfg;
    struct buf cfg_raw;
    struct crypto_hmac_key hk;
    struct keyring kr;
    struct list_work *lw;  /* per list of cfg */
    struct signed_cfg *sc; /* per list of cfg */
    uint8_t *used;         /* REASON_BITS_BYTES per list of cfg */
    char workdir[PATH_CAP];
    char label[PATH_CAP]; /* entries.csv's file name, in messages */
    FILE *in;
    struct entries_csv *csv;
    struct sorter so;
    struct tuf_writer *w;    /* update: the state's writer; NULL in authority-sign */
    struct target_sink sink; /* where stage_lists lists the targets */
    int only_list;           /* -1, or the one list entries.csv may hold rows of */
    const char *outcome;     /* what a refusal did not do: "published" (update), "signed" */
    uint64_t total;          /* rows read */
    size_t changed;          /* lists published */
    int cfg_changed;         /* config/feed.json listed again */
};

void run_init(struct run *r);
void run_cleanup(struct run *r);
/* The state in dir, its feed config with the list key's check value, the list key and the
 * keyring (feed, root and online keys, and each --authority-key of auth, which may be NULL). */
enum posgate_err run_load_state(struct run *r, const char *dir, const struct opt *auth);
/* Per list of the config: its state (added when new), whether it is published whole, its next
 * seq; then an empty work directory (<state>/work). */
enum posgate_err plan_lists(struct run *r);
/* Step 1: every row validated and keyed, into the external sort (with only_list set, a row of
 * another list is refused). */
enum posgate_err read_entries(struct run *r, const char *path);
/* Step 2: per list not untouched, the merge walk against its last snapshot. */
enum posgate_err compare_lists(struct run *r);
/* Step 3: a change past a list's mass_change marks is refused unless allowed. */
enum posgate_err check_mass_change(const struct run *r, int allowed);
/* Whether list i is published in this run. */
int list_changed(const struct run *r, size_t i);
/* Step 5 (its shared part): the staged list configurations, then each changed list's snapshot
 * and delta, listed through r->sink. */
enum posgate_err stage_lists(struct run *r);

/* ---- the commands: argv holds the words after the command's name; each returns the exit code */

int publish_cmd_init(int argc, char **argv);     /* publish_init.c */
int publish_cmd_update(int argc, char **argv);   /* publish_update.c */
int publish_cmd_refresh(int argc, char **argv);  /* publish_refresh.c */
int publish_cmd_delegate(int argc, char **argv); /* publish_delegate.c */
int publish_cmd_bundle(int argc, char **argv);   /* publish_bundle.c */
int publish_cmd_authority_sign(int argc, char **argv); /* publish_authority.c */
int publish_cmd_accept(int argc, char **argv);         /* publish_accept.c */

#endif
