/* Fuzz target: JWT verification on arbitrary bytes, with an HMAC secret and no public
 * key configured. Property: nothing but a correctly signed token is accepted: on every
 * acceptance the oracle recomputes the HMAC of header.payload itself (the algorithm the
 * header names, which must be HS256/384/512) and compares it with the signature bytes;
 * and every result is one of the named reasons. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

static const char secret_text[] = "fuzz-secret-fuzz-secret-fuzz-secret!!";

static int b64url(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Decodes base64url (no padding) into out; returns the length, or -1. */
static long decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
    unsigned acc = 0, bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url((unsigned char)s[i]);
        if (v < 0) return -1;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap) return -1;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)o;
}

/* The oracle: an accepted token's signature is the HMAC its header's alg names. */
static void check_signature(const char *tok, size_t len)
{
    const char *d1 = memchr(tok, '.', len),
               *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d2) abort();
    unsigned char hdr[4096], sig[128], mac[EVP_MAX_MD_SIZE];
    long hl = decode(tok, (size_t)(d1 - tok), hdr, sizeof hdr);
    long sl = decode(d2 + 1, len - (size_t)(d2 + 1 - tok), sig, sizeof sig);
    if (hl < 0 || sl < 0) abort();
    json_t *h = json_loadb((const char *)hdr, (size_t)hl, 0, NULL);
    const char *alg = json_string_value(json_object_get(h, "alg"));
    const EVP_MD *md = !alg                    ? NULL
                       : !strcmp(alg, "HS256") ? EVP_sha256()
                       : !strcmp(alg, "HS384") ? EVP_sha384()
                       : !strcmp(alg, "HS512") ? EVP_sha512()
                                               : NULL;
    if (!md) abort(); /* accepted with an algorithm that is not an HMAC of ours */
    unsigned ml = 0;
    HMAC(md, secret_text, (int)strlen(secret_text), (const unsigned char *)tok, (size_t)(d2 - tok),
         mac, &ml);
    if ((long)ml != sl || memcmp(mac, sig, ml)) abort();
    json_decref(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gw_auth_t *auth;
    if (!auth) {
        static char empty[] = "", role[] = "role", internal[] = "internal",
                    secret[sizeof secret_text] = "";
        memcpy(secret, secret_text, sizeof secret_text);
        gw_config_t cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.api_key = cfg.jwt_public_key_file = cfg.jwt_issuer = empty;
        cfg.jwt_audience = empty;
        cfg.api_key_role = internal;
        cfg.jwt_role_claim = role;
        cfg.jwt_secret = secret;
        cfg.jwt_require_exp = true;
        cfg.jwt_leeway_s = 30;
        cfg.jwt_max_ttl_s = 86400;
        char err[128];
        auth = gw_auth_new(&cfg, err, sizeof err);
        if (!auth) abort();
    }
    gw_identity_t id;
    gw_auth_result_t r = gw_auth_jwt(auth, (const char *)data, size, 1800000000, &id);
    if (r >= GW_AUTH__COUNT) abort();
    if (r == GW_AUTH_OK) check_signature((const char *)data, size);
    gw_identity_free(&id);
    r = gw_auth_api_key(auth, (const char *)data, size, 1800000000, &id);
    if (r == GW_AUTH_OK) abort(); /* no key is configured */
    gw_identity_free(&id);
    return 0;
}
