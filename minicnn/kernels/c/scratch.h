/* Scratch memory for the kernels' threads, kept from call to call.

   Each thread has SCRATCH_SLOTS buffers that only grow: scratch(k, bytes) gives slot k with at
   least that many bytes, uninitialized, or NULL when memory ran out. Allocating and freeing the
   same megabytes on every call cost page faults, and with two threads the unmapping interrupts
   the other core too; a LeNet-5 step at batch 1 spent most of its time there. A thread keeps
   what the largest layer so far has needed, until the process ends. */
#pragma once

#include <stdlib.h>

#define SCRATCH_SLOTS 4

static _Thread_local void *scratch_buffers[SCRATCH_SLOTS];
static _Thread_local size_t scratch_sizes[SCRATCH_SLOTS];

static void *scratch(int slot, size_t bytes) {
    if (scratch_sizes[slot] < bytes) {
        free(scratch_buffers[slot]);
        scratch_buffers[slot] = malloc(bytes);
        scratch_sizes[slot] = scratch_buffers[slot] ? bytes : 0;
    }
    return scratch_buffers[slot];
}
