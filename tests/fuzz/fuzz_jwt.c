/* Fuzz target: JWT verification on arbitrary bytes, with both an HMAC secret and no
 * public key configured. Property: nothing but a correctly signed token is accepted,
 * and every result is one of the named reasons. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gw_auth_t *auth;
    if (!auth) {
        static char empty[] = "", role[] = "role", internal[] = "internal",
                    secret[] = "fuzz-secret-fuzz-secret-fuzz-secret!!";
        gw_config_t cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.api_key = cfg.jwt_public_key_file = cfg.jwt_issuer = empty;
        cfg.jwt_audience = empty;
        cfg.api_key_role = internal;
        cfg.jwt_role_claim = role;
        cfg.jwt_secret = secret;
        cfg.jwt_require_exp = true;
        cfg.jwt_leeway_s = 30;
        char err[128];
        auth = gw_auth_new(&cfg, err, sizeof err);
        if (!auth) abort();
    }
    gw_identity_t id;
    gw_auth_result_t r = gw_auth_jwt(auth, (const char *)data, size, 1800000000, &id);
    if (r >= GW_AUTH__COUNT) abort();
    if (r == GW_AUTH_OK && size < 20) abort(); /* no valid JWT is that short */
    gw_identity_free(&id);
    r = gw_auth_api_key(auth, (const char *)data, size, 1800000000, &id);
    if (r == GW_AUTH_OK) abort(); /* no key is configured */
    gw_identity_free(&id);
    return 0;
}
