/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TUF client's delegation walks (tuf_client.h, tuf_client_internal.h): the lookup of one
 * target through the delegations in preorder depth-first order (TUF specification 1.0, 5.6.7)
 * and the listing of every target one role signs. Each delegated role is fetched and verified
 * once per session by tc_load_targets_role and verified again against every delegation that
 * leads to it.
 */
#define _POSIX_C_SOURCE 200809L
#include "tuf_client_internal.h"

#include <stdio.h>
#include <string.h>

#include "plat_mem.h"

/* ---- delegations ---- */

struct deleg_entry *
tc_find_deleg(struct tuf_client *c, const char *name)
{
    for (size_t i = 0; i < c->ndeleg; i++) {
        if (strcmp(c->deleg[i].name, name) == 0) {
            return &c->deleg[i];
        }
    }
    return NULL;
}

/* The verified metadata of a role, reached from delegator through one delegation (keys of the
 * delegator, keyids and threshold of the delegation). A role verified earlier in this session is
 * verified again against this delegation: authority never carries over from another path. */
static enum posgate_err
get_role(struct tuf_client *c, const char *role, const char *delegator,
         const struct tuf_meta *dmeta, const struct tuf_role_keys *rk, const struct tuf_meta **out)
{
    char by[TUF_NAME_MAX + 64], what[TUF_NAME_MAX + 32];
    struct deleg_entry *e;
    struct tuf_meta *m = NULL;
    enum posgate_err err;

    *out = NULL;
    if (strcmp(role, "targets") == 0) {
        *out = c->targets;
        return POSGATE_OK;
    }
    snprintf(by, sizeof(by), "by the keys %s delegates to it", delegator);
    e = tc_find_deleg(c, role);
    if (e != NULL) {
        snprintf(what, sizeof(what), "%s %lld", role, (long long)e->meta->version);
        err = tc_verify_role(c, e->meta, dmeta->delegations.keys, dmeta->delegations.nkeys, rk,
                             what, by);
        if (err == POSGATE_OK) {
            *out = e->meta;
        }
        return err;
    }
    err = tc_load_targets_role(c, role, dmeta->delegations.keys, dmeta->delegations.nkeys, rk, by,
                               &m);
    if (err != POSGATE_OK) {
        return err;
    }
    if (c->ndeleg == c->capdeleg) {
        size_t ncap = c->capdeleg ? 2 * c->capdeleg : 8;
        struct deleg_entry *nd = plat_realloc(c->deleg, ncap * sizeof(*nd));

        if (nd == NULL) {
            tuf_meta_free(m);
            return POSGATE_ERR_NOMEM;
        }
        c->deleg = nd;
        c->capdeleg = ncap;
    }
    c->deleg[c->ndeleg].name = plat_strdup(role);
    if (c->deleg[c->ndeleg].name == NULL) {
        tuf_meta_free(m);
        return POSGATE_ERR_NOMEM;
    }
    c->deleg[c->ndeleg].meta = m;
    c->ndeleg++;
    *out = m;
    return POSGATE_OK;
}

/* One pending visit of the search: a role and the delegation that leads to it. */
struct visit {
    const char *role;
    const char *delegator;
    const struct tuf_meta *dmeta;   /* the delegator's metadata (keys) */
    const struct tuf_role_keys *rk; /* keyids and threshold of the delegation */
};

static enum posgate_err
fill_info(const struct tuf_target *t, const char *role, struct tuf_target_info *out)
{
    memset(out, 0, sizeof(*out));
    out->name = t->name;
    out->length = t->length;
    out->has_sha256 = t->hashes.has_sha256;
    memcpy(out->sha256, t->hashes.sha256, sizeof(out->sha256));
    out->has_sha512 = t->hashes.has_sha512;
    memcpy(out->sha512, t->hashes.sha512, sizeof(out->sha512));
    out->custom_json = t->custom_json;
    out->role = role;
    return POSGATE_OK;
}

/* Name storage for succinct bin roles pushed on the stack (they have no name in metadata). */
struct name_pool {
    char (*names)[TUF_NAME_MAX + 16];
    size_t n, cap;
};

static const char *
pool_add(struct name_pool *p, const char *s)
{
    if (p->n == p->cap) {
        return NULL;
    }
    snprintf(p->names[p->n], sizeof(p->names[p->n]), "%s", s);
    return p->names[p->n++];
}

enum posgate_err
tuf_client_find_target(struct tuf_client *c, const char *name, struct tuf_target_info *out)
{
    unsigned max_deleg = 0;
    size_t cap, stack_cap, top = 0, nvisited = 0;
    struct visit *stack = NULL;
    const char **visited = NULL;
    struct name_pool pool = {NULL, 0, 0};
    enum posgate_err err = POSGATE_OK;

    if (c == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (name == NULL || out == NULL) {
        return tc_seterr(c, POSGATE_ERR_INVALID, "find_target: NULL argument");
    }
    if (!c->refreshed) {
        return tc_seterr(c, POSGATE_ERR_STATE, "no successful refresh: cannot look up \"%.200s\"",
                         name);
    }
    c->errmsg[0] = 0;
    max_deleg = c->opt.max_delegations ? c->opt.max_delegations : TUF_DEFAULT_MAX_DELEGATIONS;
    cap = (size_t)max_deleg + 1;
    /* Each visited role pushes at most its own children; bound the stack generously. */
    stack_cap = cap * 8 + TUF_MAX_DELEG_ROLES;
    stack = plat_calloc(stack_cap, sizeof(*stack));
    visited = plat_calloc(cap, sizeof(*visited));
    pool.cap = cap;
    pool.names = plat_calloc(cap, sizeof(*pool.names));
    if (stack == NULL || visited == NULL || pool.names == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    stack[top++] = (struct visit){"targets", "root", NULL, NULL};
    while (top > 0) {
        struct visit v = stack[--top];
        const struct tuf_meta *m = NULL;
        const struct tuf_target *t;
        size_t first_child, nchildren;
        const char *stable;
        int seen = 0;

        for (size_t i = 0; i < nvisited; i++) {
            if (strcmp(visited[i], v.role) == 0) {
                seen = 1;
            }
        }
        if (seen) {
            continue;
        }
        if (nvisited >= cap) {
            err =
                tc_seterr(c, POSGATE_ERR_NOTFOUND,
                          "target \"%.200s\" not found within %u delegated roles", name, max_deleg);
            goto out;
        }
        err = get_role(c, v.role, v.delegator, v.dmeta, v.rk, &m);
        if (err != POSGATE_OK) {
            goto out;
        }
        /* A name that lives as long as the cached metadata (the pool does not). */
        stable = strcmp(v.role, "targets") == 0 ? "targets" : tc_find_deleg(c, v.role)->name;
        visited[nvisited++] = stable;
        t = tuf_meta_find_target(m, name);
        if (t != NULL) {
            err = fill_info(t, stable, out);
            goto out;
        }
        if (!m->has_delegations) {
            continue;
        }
        /* Children in metadata order; pushed reversed so the first is visited first. A
         * matching terminating delegation ends the search after its subtree. */
        first_child = top;
        nchildren = 0;
        if (m->delegations.has_succinct) {
            char bin[TUF_NAME_MAX + 16];
            const char *bn = NULL;

            if (tuf_succinct_role_for(&m->delegations.succinct, name, bin, sizeof(bin)) ==
                POSGATE_OK) {
                bn = pool_add(&pool, bin);
            }
            if (bn != NULL) {
                top = 0; /* a succinct bin is terminating */
                first_child = 0;
                stack[top++] = (struct visit){bn, stable, m, &m->delegations.succinct.keys};
                nchildren = 1;
            }
        } else {
            for (size_t i = 0; i < m->delegations.nroles; i++) {
                const struct tuf_deleg_role *r = &m->delegations.roles[i];

                if (!tuf_deleg_role_matches(r, name)) {
                    continue;
                }
                if (top >= stack_cap) {
                    break;
                }
                stack[top++] = (struct visit){r->name, stable, m, &r->keys};
                nchildren++;
                if (r->terminating) {
                    /* Forget every pending sibling of the ancestors: only this role's
                     * subtree is searched after it. */
                    memmove(&stack[0], &stack[first_child], nchildren * sizeof(*stack));
                    top = nchildren;
                    first_child = 0;
                    break;
                }
            }
        }
        for (size_t i = 0; i < nchildren / 2; i++) {
            struct visit tmp = stack[first_child + i];

            stack[first_child + i] = stack[first_child + nchildren - 1 - i];
            stack[first_child + nchildren - 1 - i] = tmp;
        }
    }
    err = tc_seterr(c, POSGATE_ERR_NOTFOUND, "no trusted role lists target \"%.200s\"", name);
out:
    plat_free(stack);
    plat_free(visited);
    plat_free(pool.names);
    return err;
}

/* ---- iterating one role's targets ---- */

/* A role reached in the walk and the delegation edge that led to it. */
struct node {
    const char *role;
    const struct tuf_meta *dmeta;
    const struct tuf_role_keys *rk;
    const struct tuf_deleg_role *edge; /* NULL for "targets" and succinct bins */
    const struct tuf_succinct *sedge;  /* the succinct delegation of a bin */
    size_t parent;
};

/* 1 when role is one of the bins of s (name "<prefix>-<hex of the bin width>"). */
static int
is_succinct_bin(const struct tuf_succinct *s, const char *role)
{
    char probe[TUF_NAME_MAX + 16];
    size_t plen = strlen(s->name_prefix);
    unsigned long long bin = 0;
    int width;

    if (strncmp(role, s->name_prefix, plen) != 0 || role[plen] != '-') {
        return 0;
    }
    /* Width of the suffix: that of the last bin, as tuf_succinct_role_for writes it. */
    if (tuf_succinct_role_for(s, "", probe, sizeof(probe)) != POSGATE_OK) {
        return 0;
    }
    width = (int)(strlen(probe) - plen - 1);
    if ((int)strlen(role + plen + 1) != width) {
        return 0;
    }
    for (const char *p = role + plen + 1; *p != 0; p++) {
        int d = (*p >= '0' && *p <= '9') ? *p - '0' : (*p >= 'a' && *p <= 'f') ? *p - 'a' + 10 : -1;

        if (d < 0) {
            return 0;
        }
        bin = bin * 16 + (unsigned)d;
    }
    return bin < (1ull << s->bit_length);
}

/* 1 when every delegation on the way from "targets" to nodes[i] trusts the role for path. */
static int
chain_allows(const struct node *nodes, size_t i, const char *path)
{
    char bin[TUF_NAME_MAX + 16];

    while (i != 0) {
        const struct node *n = &nodes[i];

        if (n->edge != NULL && !tuf_deleg_role_matches(n->edge, path)) {
            return 0;
        }
        if (n->sedge != NULL &&
            (tuf_succinct_role_for(n->sedge, path, bin, sizeof(bin)) != POSGATE_OK ||
             strcmp(bin, n->role) != 0)) {
            return 0;
        }
        i = n->parent;
    }
    return 1;
}

enum posgate_err
tuf_client_foreach_target(struct tuf_client *c, const char *role,
                          enum posgate_err (*fn)(void *ctx, const struct tuf_target_info *t),
                          void *ctx)
{
    unsigned max_deleg;
    size_t cap, nnodes = 0, top = 0, nvisited = 0;
    struct node *nodes = NULL;
    size_t *stack = NULL;
    const char **visited = NULL;
    enum posgate_err err;

    if (c == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (role == NULL || fn == NULL) {
        return tc_seterr(c, POSGATE_ERR_INVALID, "foreach_target: NULL argument");
    }
    if (!c->refreshed) {
        return tc_seterr(c, POSGATE_ERR_STATE, "no successful refresh: cannot list role \"%.200s\"",
                         role);
    }
    c->errmsg[0] = 0;
    max_deleg = c->opt.max_delegations ? c->opt.max_delegations : TUF_DEFAULT_MAX_DELEGATIONS;
    cap = (size_t)max_deleg + 1;
    nodes = plat_calloc(cap * TUF_MAX_DELEG_ROLES + 1, sizeof(*nodes));
    stack = plat_calloc(cap * TUF_MAX_DELEG_ROLES + 1, sizeof(*stack));
    visited = plat_calloc(cap, sizeof(*visited));
    if (nodes == NULL || stack == NULL || visited == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    nodes[nnodes++] = (struct node){"targets", NULL, NULL, NULL, NULL, 0};
    stack[top++] = 0;
    while (top > 0) {
        size_t idx = stack[--top];
        struct node n = nodes[idx];
        const struct tuf_meta *m = NULL;
        const char *stable;
        size_t first = top, pushed = 0;
        int seen = 0;

        for (size_t i = 0; i < nvisited; i++) {
            seen |= strcmp(visited[i], n.role) == 0;
        }
        if (seen) {
            continue;
        }
        if (nvisited >= cap) {
            err = tc_seterr(c, POSGATE_ERR_NOTFOUND,
                            "role \"%.200s\" not found within %u delegated roles", role, max_deleg);
            goto out;
        }
        err = get_role(c, n.role, idx == 0 ? "root" : nodes[n.parent].role, n.dmeta, n.rk, &m);
        if (err != POSGATE_OK) {
            goto out;
        }
        stable = idx == 0 ? "targets" : tc_find_deleg(c, n.role)->name;
        nodes[idx].role = stable;
        visited[nvisited++] = stable;
        if (strcmp(stable, role) == 0) {
            for (size_t i = 0; i < m->ntargets; i++) {
                struct tuf_target_info info;

                if (!chain_allows(nodes, idx, m->targets[i].name)) {
                    continue;
                }
                err = fill_info(&m->targets[i], stable, &info);
                if (err == POSGATE_OK) {
                    err = fn(ctx, &info);
                }
                if (err != POSGATE_OK) {
                    goto out;
                }
            }
            err = POSGATE_OK;
            goto out;
        }
        if (!m->has_delegations) {
            continue;
        }
        if (m->delegations.has_succinct) {
            if (is_succinct_bin(&m->delegations.succinct, role) &&
                nnodes < cap * TUF_MAX_DELEG_ROLES) {
                /* Only the wanted bin: the others cannot lead to it (bins delegate no
                 * further names of their own prefix in any useful way). */
                nodes[nnodes] = (struct node){
                    role, m, &m->delegations.succinct.keys, NULL, &m->delegations.succinct, idx};
                stack[top++] = nnodes++;
                pushed++;
            }
        } else {
            for (size_t i = 0; i < m->delegations.nroles && nnodes < cap * TUF_MAX_DELEG_ROLES;
                 i++) {
                const struct tuf_deleg_role *r = &m->delegations.roles[i];

                nodes[nnodes] = (struct node){r->name, m, &r->keys, r, NULL, idx};
                stack[top++] = nnodes++;
                pushed++;
            }
        }
        for (size_t i = 0; i < pushed / 2; i++) {
            size_t tmp = stack[first + i];

            stack[first + i] = stack[first + pushed - 1 - i];
            stack[first + pushed - 1 - i] = tmp;
        }
        /* A child that is the wanted role goes first: no need to fetch its siblings (the
         * agent lists one authority's role among hundreds). */
        for (size_t i = first; pushed > 1 && i < top; i++) {
            if (strcmp(nodes[stack[i]].role, role) == 0) {
                size_t tmp = stack[top - 1];

                stack[top - 1] = stack[i];
                stack[i] = tmp;
                break;
            }
        }
    }
    err = tc_seterr(c, POSGATE_ERR_NOTFOUND,
                    "role \"%.200s\" is not reachable from targets through trusted delegations",
                    role);
out:
    plat_free(nodes);
    plat_free(stack);
    plat_free(visited);
    return err;
}
