/* auth.h - who a client is: API keys and JWTs.
 *
 * API keys are kept only as SHA-256 hashes (id, hash, role, expiry, revoked), so the
 * control plane can push hashed keys into the same table; a presented key is hashed and
 * compared with every entry in constant time.
 *
 * JWTs (libjwt): the accepted algorithms are a whitelist derived from the configured key
 * material: HS256/384/512 with JWT_SECRET, RS256 with an RSA public key, ES256 with a
 * P-256 public key (JWT_PUBLIC_KEY_FILE). `none` is never accepted, and an HMAC token is
 * never verified with a public key. The header is checked before libjwt sees the token,
 * and the algorithm libjwt reports is checked again after. Claims are checked here with
 * strict types: exp (required by default), nbf and iat with leeway, iss, aud.
 *
 * Ownership: gw_auth_new() returns a context owned by the caller (gw_auth_free). An
 * identity's strings are owned by it (gw_identity_free). Nothing here logs a credential.
 */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define GW_TOKEN_MAX 8192

typedef enum {
    GW_AUTH_OK = 0,
    GW_AUTH_MALFORMED, /* not a JWT / not an acceptable key format */
    GW_AUTH_ALG,       /* algorithm not accepted */
    GW_AUTH_SIGNATURE, /* signature does not verify */
    GW_AUTH_EXPIRED,
    GW_AUTH_NOT_YET_VALID, /* nbf or iat in the future */
    GW_AUTH_NO_EXP,
    GW_AUTH_ISSUER,
    GW_AUTH_AUDIENCE,
    GW_AUTH_CLAIMS, /* a claim of the wrong type, or a bad channels claim */
    GW_AUTH_UNKNOWN_ROLE,
    GW_AUTH_UNKNOWN_KEY,
    GW_AUTH_KEY_EXPIRED,
    GW_AUTH_KEY_REVOKED,
    GW_AUTH_NOT_CONFIGURED, /* e.g. a JWT while no JWT key is configured */
    GW_AUTH_ROLE_CHANGED,   /* an in-band refresh tried to change the role */
    GW_AUTH_TIMEOUT,
    GW_AUTH_MISSING,   /* no credential where one is required and none can follow (legacy) */
    GW_AUTH_THROTTLED, /* too many failures from this address: not even checked */
    GW_AUTH__COUNT
} gw_auth_result_t;

const char *gw_auth_result_name(gw_auth_result_t r);

typedef struct {
    char id[64];
    unsigned char hash[32];
    char role[65];
    int64_t expires; /* unix seconds, 0 = never */
    bool revoked;
} gw_apikey_t;

typedef struct {
    char *role;      /* NULL: the token named none (the default role applies) */
    int64_t expires; /* unix seconds, 0 = never (a JWT: its exp, at most JWT_MAX_TTL_S on) */
    char **channels; /* the channels claim, or NULL */
    size_t nchannels;
    char key_id[64]; /* API key id, or "" for a JWT */
} gw_identity_t;

typedef struct gw_auth gw_auth_t;

/* Builds the context from the config: GATEWAY_API_KEY (+ its role), JWT settings and key
 * file. Returns NULL with a one-line reason naming the setting in err. */
gw_auth_t *gw_auth_new(const gw_config_t *cfg, char *err, size_t errlen);
void gw_auth_free(gw_auth_t *a);

bool gw_auth_jwt_enabled(const gw_auth_t *a);

/* Adds or replaces a key by id. */
void gw_auth_put_key(gw_auth_t *a, const gw_apikey_t *k);

/* Replaces every key but the node's own GATEWAY_API_KEY (id "env") with keys. */
void gw_auth_set_keys(gw_auth_t *a, const gw_apikey_t *keys, size_t n);

/* Whether the key a session authenticated with is still good (GW_AUTH_OK), or why not. */
gw_auth_result_t gw_auth_key_status(const gw_auth_t *a, const char *id, int64_t now);

/* JWT settings pushed by the control plane. pem: a public key replacing the node's own
 * (empty: keep it). Returns 0, or -1 with a reason when the key is unusable. */
int gw_auth_set_jwt(gw_auth_t *a, const char *issuer, const char *audience, const char *role_claim,
                    long leeway, bool require_exp, const char *pem, char *err, size_t errlen);

/* Changes whenever the JWT key, issuer or audience change: a session let in by a JWT
 * under another generation may not pass any more. */
uint64_t gw_auth_jwt_generation(const gw_auth_t *a);

void gw_sha256(const void *data, size_t len, unsigned char out[32]);

gw_auth_result_t gw_auth_api_key(const gw_auth_t *a, const char *key, size_t len, int64_t now,
                                 gw_identity_t *out);
gw_auth_result_t gw_auth_jwt(const gw_auth_t *a, const char *token, size_t len, int64_t now,
                             gw_identity_t *out);
/* A "token" as clients of both dialects send it (?token=, Authorization: Bearer, the
 * auth frame's token): a JWT when it has a JWT's shape, else an API key; a JWT-shaped
 * value is also tried as an API key when no JWT key is configured or it does not parse.
 * (The legacy gateway took its API key as ?token=.) */
gw_auth_result_t gw_auth_token(const gw_auth_t *a, const char *token, size_t len, int64_t now,
                               gw_identity_t *out);
void gw_identity_free(gw_identity_t *id);

#endif
