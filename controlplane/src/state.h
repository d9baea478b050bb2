/* state.h - what the control plane owns: roles, API keys (hashes only), limits and auth
 * settings, under a monotonic version and an epoch. Every mutation validates with the
 * data plane's own rules (pattern syntax, role names, bounds, references between roles,
 * keys and the default role) and names the offending field; a valid one bumps the
 * version and is persisted before it is acknowledged.
 *
 * Persistence: the state is stored as a packed wsgw.control.v1.Snapshot, written to a
 * temporary file, fsync'd and renamed over CONTROL_STATE_PATH, so a crash leaves either
 * the old or the new state, never a torn one.
 *
 * Ownership: cp_state_new()/cp_state_load() return a state owned by the caller
 * (cp_state_free). Strings passed in are copied.
 */
#ifndef CP_STATE_H
#define CP_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wsgw/control/v1/control.pb-c.h"

typedef Wsgw__Control__V1__Role cp_role_msg_t;
typedef Wsgw__Control__V1__Limits cp_limits_msg_t;
typedef Wsgw__Control__V1__AuthConfig cp_auth_msg_t;
typedef Wsgw__Control__V1__ApiKey cp_key_msg_t;
typedef Wsgw__Control__V1__Snapshot cp_snapshot_msg_t;

typedef struct cp_state cp_state_t;

/* A fresh state: the data plane's built-in roles (user, admin, internal), default role
 * user, a new random epoch, version 1. */
cp_state_t *cp_state_new(void);

/* Loads path; a missing file yields cp_state_new(). Returns NULL with a reason in err
 * when the file exists but cannot be read or decoded. */
/* SHA-256 of the snapshot as packed for a push (what nodes report holding); computed
 * once per state (a state is cloned, never changed, once the server holds it). */
void cp_state_digest(cp_state_t *s, unsigned char out[32]);

/* Checks the whole configuration as every node will (gw_snapshot_decode): 0, or -1
 * with the reason naming the field. */
int cp_state_validate(const cp_state_t *s, char *err, size_t errlen);

/* Loads and validates the state file; a missing file is an error (first boot is
 * explicit: cp_state_new() then cp_state_save()). */
cp_state_t *cp_state_load(const char *path, char *err, size_t errlen);

/* Atomically replaces path with the state. Returns 0 or -1 with a reason. */
int cp_state_save(const cp_state_t *s, const char *path, char *err, size_t errlen);

void cp_state_free(cp_state_t *s);

/* A deep copy: mutate the copy, persist it, then swap, so a failed save changes nothing. */
cp_state_t *cp_state_clone(const cp_state_t *s);

/* Read-only view of the whole state. Valid until the next mutation or free. */
const cp_snapshot_msg_t *cp_state_snapshot(const cp_state_t *s);

uint64_t cp_state_version(const cp_state_t *s);
const char *cp_state_epoch(const cp_state_t *s);

/* Mutations: 0 on success (version bumped), -1 with a detail naming the field. */
int cp_state_put_role(cp_state_t *s, const cp_role_msg_t *r, char *err, size_t errlen);
int cp_state_delete_role(cp_state_t *s, const char *name, char *err, size_t errlen);
/* Creates a key; secret_out (>= 44 bytes) receives the one-time secret, id_out (64). */
int cp_state_create_key(cp_state_t *s, const char *role, int64_t expires_at, const char *desc,
                        const char *id, int64_t now, char *secret_out, char *id_out, char *err,
                        size_t errlen);
int cp_state_revoke_key(cp_state_t *s, const char *id, char *err, size_t errlen);
int cp_state_set_limits(cp_state_t *s, const cp_limits_msg_t *l, char *err, size_t errlen);
int cp_state_set_auth(cp_state_t *s, const cp_auth_msg_t *a, char *err, size_t errlen);

/* Unknown role: 0 (not found). */
bool cp_state_has_role(const cp_state_t *s, const char *name);

/* The whole state as a packed Snapshot (malloc'd, caller frees). with_hashes=false
 * leaves key hashes out (for admin views). */
uint8_t *cp_state_pack(const cp_state_t *s, bool with_hashes, size_t *len);

#endif
