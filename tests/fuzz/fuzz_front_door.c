/*
 * fuzz_front_door: the front door's head scanner (front_door_scan) on
 * whatever a client could send first. The input is the peeked prefix.
 *
 * Besides memory errors, it checks what the socket code relies on: a
 * complete head lies inside the prefix and ends with its line feed, the
 * verdict depends only on the head (scanning exactly the head gives the
 * same answer), and one byte less of it is still incomplete, so a head
 * arriving in pieces is never judged early.
 */
#include "front_door.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_front_door: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    size_t len = 0, again = 0, shorter = 0;
    enum front_door_head kind = front_door_scan(buf, size, &len);

    if (kind == FRONT_DOOR_HEAD_PARTIAL) {
        return 0;
    }
    check(len > 0 && len <= size, "head length outside the input");
    check(buf[len - 1] == '\n', "a head that does not end with a line feed");
    check(front_door_scan(buf, len, &again) == kind && again == len,
          "the verdict changes when only the head is scanned");
    check(front_door_scan(buf, len - 1, &shorter) == FRONT_DOOR_HEAD_PARTIAL,
          "a head judged before its last byte arrived");
    return 0;
}
