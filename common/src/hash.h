/* hash.h - the hash of every table keyed by text a peer chooses (channels, addresses,
 * counter names, node ids).
 *
 * SipHash-1-3 with a key drawn from the kernel when the process starts: a peer that
 * cannot know the key cannot choose names that all land in one bucket, so lookups stay
 * O(1) whatever it sends (an unkeyed hash such as FNV-1a lets it make every lookup a
 * scan of the whole table). Values differ from one process to the next: never store
 * or send them. */
#ifndef GW_HASH_H
#define GW_HASH_H

#include <stddef.h>
#include <stdint.h>

uint32_t gw_hash(const char *s, size_t n);

#endif
