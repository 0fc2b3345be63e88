/* SPDX-License-Identifier: Apache-2.0 */
/* Failed credentials per client address (hub_throttle.h). */
#include "hub_throttle.h"

#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include "plat_mem.h"
#include "plat_clock.h"

struct slot {
    uint8_t peer[HUB_PEER_KEY];
    uint64_t since_ns; /* monotonic start of its window; 0: a free slot */
    unsigned fails;
};

struct hub_throttle {
    pthread_mutex_t mu;
    struct slot slots[HUB_THROTTLE_PEERS];
};

#define WINDOW_NS ((uint64_t)HUB_TOKEN_WINDOW_S * 1000000000u)

enum posgate_err
hub_throttle_new(struct hub_throttle **out)
{
    struct hub_throttle *t = plat_calloc(1, sizeof(*t));

    *out = NULL;
    if (t == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    pthread_mutex_init(&t->mu, NULL);
    *out = t;
    return POSGATE_OK;
}

void
hub_throttle_free(struct hub_throttle *t)
{
    if (t == NULL) {
        return;
    }
    pthread_mutex_destroy(&t->mu);
    plat_free(t);
}

int
hub_peer_key(struct MHD_Connection *conn, uint8_t key[HUB_PEER_KEY])
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

    memset(key, 0, HUB_PEER_KEY);
    if (ci == NULL || ci->client_addr == NULL) {
        return 0;
    }
    if (ci->client_addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)ci->client_addr;

        key[0] = 4;
        memcpy(key + 1, &a->sin_addr, sizeof(a->sin_addr));
        return 1;
    }
    if (ci->client_addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)ci->client_addr;

        key[0] = 6;
        memcpy(key + 1, &a->sin6_addr, sizeof(a->sin6_addr));
        return 1;
    }
    return 0;
}

/* The peer's slot with its window still open, or NULL; an ended window is freed. Under mu. */
static struct slot *
find(struct hub_throttle *t, const uint8_t key[HUB_PEER_KEY], uint64_t now)
{
    for (int i = 0; i < HUB_THROTTLE_PEERS; i++) {
        struct slot *s = &t->slots[i];

        if (s->since_ns != 0 && now - s->since_ns >= WINDOW_NS) {
            memset(s, 0, sizeof(*s));
        }
        if (s->since_ns != 0 && memcmp(s->peer, key, HUB_PEER_KEY) == 0) {
            return s;
        }
    }
    return NULL;
}

bool
hub_throttle_blocked(struct hub_throttle *t, struct MHD_Connection *conn, unsigned *retry_s)
{
    uint8_t key[HUB_PEER_KEY];
    uint64_t now = plat_mono_ns();
    const struct slot *s;
    bool blocked = false;

    *retry_s = 0;
    if (t == NULL) {
        return false;
    }
    hub_peer_key(conn, key); /* an address MHD cannot say shares the zero key */
    pthread_mutex_lock(&t->mu);
    s = find(t, key, now);
    if (s != NULL && s->fails >= HUB_TOKEN_FAILS) {
        blocked = true;
        *retry_s = (unsigned)((WINDOW_NS - (now - s->since_ns)) / 1000000000u) + 1;
    }
    pthread_mutex_unlock(&t->mu);
    return blocked;
}

void
hub_throttle_failed(struct hub_throttle *t, struct MHD_Connection *conn)
{
    uint8_t key[HUB_PEER_KEY];
    uint64_t now = plat_mono_ns();
    struct slot *s;

    if (t == NULL) {
        return;
    }
    hub_peer_key(conn, key);
    pthread_mutex_lock(&t->mu);
    s = find(t, key, now);
    if (s == NULL) { /* a free slot, else the one whose window started first */
        for (int i = 0; i < HUB_THROTTLE_PEERS; i++) {
            struct slot *c = &t->slots[i];

            if (s == NULL || c->since_ns < s->since_ns) {
                s = c;
            }
        }
        memcpy(s->peer, key, HUB_PEER_KEY);
        s->since_ns = now;
        s->fails = 0;
    }
    s->fails++;
    pthread_mutex_unlock(&t->mu);
}
