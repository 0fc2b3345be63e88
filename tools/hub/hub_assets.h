/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dashboard's files (tools/hub/dashboard/: HTML, CSS, JavaScript, an icon), compiled into
 * posgate-hub so that it serves them itself, with no file to install and nothing fetched from
 * another host: the dashboard works on a closed network. hub_assets.cmake writes the table
 * (hub_assets.c, in the build tree) from the files at build time.
 */
#ifndef POSGATE_HUB_ASSETS_H
#define POSGATE_HUB_ASSETS_H

#include <stddef.h>

struct hub_asset {
    const char *name; /* the file's name: served at /dashboard/NAME */
    const char *type; /* its Content-Type */
    const unsigned char *data;
    size_t len;
};

extern const struct hub_asset hub_assets[];
extern const size_t hub_n_assets;

#endif
