/* SPDX-License-Identifier: Apache-2.0 */
/*
 * posgate-bench: the entry of the C drivers that tools/bench/bench runs; dispatches to one
 * subcommand per measurement (bench.h). Every subcommand prints "name=value" lines and exits
 * non-zero when its measurement could not be trusted (a failed check, a refused request).
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
};

static const struct command commands[] = {
    {"prep", bench_cmd_prep, "query set, key files, Redis load and naive SQLite db"},
    {"check", bench_cmd_check, "in-process posgate_check latency and RSS"},
    {"floor", bench_cmd_floor, "HMAC + open-addressing table latency"},
    {"naive", bench_cmd_naive, "TEXT PRIMARY KEY SQLite lookup latency"},
    {"cold", bench_cmd_cold, "open + first answer in a fresh process"},
    {"cold-child", bench_cmd_cold_child, "(the process cold measures)"},
    {"fsync", bench_cmd_fsync, "durable SQLite commit of one row"},
    {"group", bench_cmd_group, "durable SQLite commits of 32 producers' rows in groups"},
    {"deny32", bench_cmd_deny32, "durable DENY checks from 32 threads through posgate.h"},
    {"audit32", bench_cmd_audit32, "durable DENY events from 32 threads, the audit queue alone"},
    {"bulk", bench_cmd_bulk, "sorted bulk insert into a WITHOUT ROWID table"},
    {"client", bench_cmd_client, "HTTP or RESP request latency and throughput"},
    {"httpd", bench_cmd_httpd, "the libmicrohttpd floor server"},
    {"spawn", bench_cmd_spawn, "wall time and peak RSS of a command"},
    {"fleet", bench_cmd_fleet, "simulated kiosks' signed audit batches (collector-bench)"},
    {"upload", bench_cmd_upload, "kiosks' uploads to posgate-hub: events/s, ack latency"},
    {"pgcopy", bench_cmd_pgcopy, "PostgreSQL COPY of the hub's event rows (the floor)"},
    {"hubparse", bench_cmd_hubparse, "the hub's parse of one signed batch, CPU per event"},
};

int
main(int argc, char **argv)
{
    if (argc >= 2) {
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
            if (strcmp(argv[1], commands[i].name) == 0) {
                return commands[i].run(argc, argv);
            }
        }
    }
    fprintf(stderr, "usage: posgate-bench COMMAND [--option value ...]\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        fprintf(stderr, "  %-11s %s\n", commands[i].name, commands[i].what);
    }
    return 2;
}
