/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Threads: the scheduling weight of a background thread.
 */
#ifndef POSGATE_PLAT_THREAD_H
#define POSGATE_PLAT_THREAD_H

/* Lowers the calling thread's scheduling weight (Linux: nice 10 for this thread only; nothing
 * where that is not possible), for a thread whose work can wait while the threads that answer
 * requests run: on two busy cores, it then takes the time they leave rather than preempt them.
 * Best effort: a refusal leaves the thread as it was. */
void plat_thread_background(void);

#endif
