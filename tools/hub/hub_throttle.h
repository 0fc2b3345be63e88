/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Failed credentials per client address (a peer is a host: the port is left out). A peer that
 * presented HUB_TOKEN_FAILS wrong bearer tokens within HUB_TOKEN_WINDOW_S seconds is answered 429
 * on every token it presents until that window ends, the right one included: guessing a token
 * from one address runs at 10 a minute. The table holds HUB_THROTTLE_PEERS addresses; a new one
 * takes the slot whose window started first.
 */
#ifndef POSGATE_HUB_THROTTLE_H
#define POSGATE_HUB_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#include <microhttpd.h>

#include "posgate_err.h"

#define HUB_PEER_KEY       17 /* address family, then up to 16 address bytes */
#define HUB_TOKEN_FAILS    10
#define HUB_TOKEN_WINDOW_S 60
#define HUB_THROTTLE_PEERS 256

struct hub_throttle;

POSGATE_WUR enum posgate_err hub_throttle_new(struct hub_throttle **out);
void hub_throttle_free(struct hub_throttle *t); /* NULL is a no-op */

/* The client address of conn as a key: 1, or 0 when libmicrohttpd cannot say (key zeroed). */
int hub_peer_key(struct MHD_Connection *conn, uint8_t key[HUB_PEER_KEY]);

/* Whether conn's peer has used up its failed tokens; *retry_s: the seconds until it may try
 * again. t NULL: never. */
bool hub_throttle_blocked(struct hub_throttle *t, struct MHD_Connection *conn, unsigned *retry_s);
/* Counts one wrong token presented by conn's peer. */
void hub_throttle_failed(struct hub_throttle *t, struct MHD_Connection *conn);

#endif
