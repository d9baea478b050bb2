#include "auth.h"

#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "proto.h"

static const char *const result_names[GW_AUTH__COUNT] = {
    [GW_AUTH_OK] = "ok",
    [GW_AUTH_MALFORMED] = "malformed",
    [GW_AUTH_ALG] = "alg_not_allowed",
    [GW_AUTH_SIGNATURE] = "bad_signature",
    [GW_AUTH_EXPIRED] = "expired",
    [GW_AUTH_NOT_YET_VALID] = "not_yet_valid",
    [GW_AUTH_NO_EXP] = "missing_exp",
    [GW_AUTH_ISSUER] = "bad_issuer",
    [GW_AUTH_AUDIENCE] = "bad_audience",
    [GW_AUTH_CLAIMS] = "bad_claims",
    [GW_AUTH_UNKNOWN_ROLE] = "unknown_role",
    [GW_AUTH_UNKNOWN_KEY] = "unknown_key",
    [GW_AUTH_KEY_EXPIRED] = "key_expired",
    [GW_AUTH_KEY_REVOKED] = "key_revoked",
    [GW_AUTH_NOT_CONFIGURED] = "not_configured",
    [GW_AUTH_ROLE_CHANGED] = "role_changed",
    [GW_AUTH_TIMEOUT] = "timeout",
    [GW_AUTH_MISSING] = "missing",
    [GW_AUTH_THROTTLED] = "throttled",
};
_Static_assert(GW_AUTH_THROTTLED + 1 == GW_AUTH__COUNT, "every result needs a name");

const char *gw_auth_result_name(gw_auth_result_t r)
{
    return r < GW_AUTH__COUNT ? result_names[r] : "?";
}

struct gw_auth {
    uint64_t jwt_generation; /* changes with what decides a JWT's validity */
    long max_ttl_s;          /* JWT_MAX_TTL_S */
    gw_apikey_t *keys;
    size_t nkeys;
    unsigned char *secret; /* HS* key, or NULL */
    size_t secret_len;
    char *pem; /* public key PEM, or NULL */
    size_t pem_len;
    jwt_alg_t pem_alg; /* JWT_ALG_RS256 or JWT_ALG_ES256 */
    bool require_exp;
    long leeway;
    char *issuer, *audience, *role_claim;
};

void gw_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

void gw_auth_put_key(gw_auth_t *a, const gw_apikey_t *k)
{
    for (size_t i = 0; i < a->nkeys; i++)
        if (!strcmp(a->keys[i].id, k->id)) {
            a->keys[i] = *k;
            return;
        }
    a->keys = gw_xrealloc(a->keys, (a->nkeys + 1) * sizeof *a->keys);
    a->keys[a->nkeys++] = *k;
}

/* ES256 is ECDSA on P-256 and nothing else (other 256-bit curves exist: secp256k1,
 * brainpoolP256r1). */
static bool is_p256(const EVP_PKEY *pk)
{
    char group[64];
    return EVP_PKEY_get_group_name(pk, group, sizeof group, NULL) &&
           (!strcmp(group, "prime256v1") || !strcmp(group, "P-256"));
}

/* Which asymmetric algorithm a PEM public key allows: RS256 for RSA >= 2048 bits,
 * ES256 for P-256; JWT_ALG_INVAL otherwise. */
static jwt_alg_t pem_algorithm(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    jwt_alg_t alg = JWT_ALG_INVAL;
    if (pk && EVP_PKEY_base_id(pk) == EVP_PKEY_RSA && EVP_PKEY_get_bits(pk) >= 2048)
        alg = JWT_ALG_RS256;
    else if (pk && EVP_PKEY_base_id(pk) == EVP_PKEY_EC && is_p256(pk))
        alg = JWT_ALG_ES256;
    EVP_PKEY_free(pk);
    return alg;
}

/* The public key decides the one asymmetric algorithm we accept. */
static int load_public_key(gw_auth_t *a, const char *path, char *err, size_t errlen)
{
    gw_buf_t b = GW_BUF_INIT;
    if (gw_buf_read_file(&b, path, 1u << 20) < 0) {
        gw_buf_free(&b);
        snprintf(err, errlen, "invalid JWT_PUBLIC_KEY_FILE: cannot read '%s'", path);
        return -1;
    }
    a->pem = b.data;
    a->pem_len = b.len;
    a->pem_alg = pem_algorithm(a->pem, a->pem_len);
    if (a->pem_alg != JWT_ALG_INVAL) return 0;
    snprintf(err, errlen,
             "invalid JWT_PUBLIC_KEY_FILE: need a PEM RSA (>= 2048 bits) or "
             "P-256 EC public key");
    return -1;
}

gw_auth_t *gw_auth_new(const gw_config_t *cfg, char *err, size_t errlen)
{
    gw_auth_t *a = gw_xcalloc(1, sizeof *a);
    a->require_exp = cfg->jwt_require_exp;
    a->leeway = cfg->jwt_leeway_s;
    a->max_ttl_s = cfg->jwt_max_ttl_s;
    a->issuer = cfg->jwt_issuer[0] ? gw_xstrdup(cfg->jwt_issuer) : NULL;
    a->audience = cfg->jwt_audience[0] ? gw_xstrdup(cfg->jwt_audience) : NULL;
    a->role_claim = gw_xstrdup(cfg->jwt_role_claim);
    if (cfg->jwt_secret[0]) {
        if (strlen(cfg->jwt_secret) < 32) {
            snprintf(err, errlen, "invalid JWT_SECRET: use at least 32 bytes");
            goto Error;
        }
        a->secret_len = strlen(cfg->jwt_secret);
        a->secret = (unsigned char *)gw_xstrdup(cfg->jwt_secret);
    }
    if (cfg->jwt_public_key_file[0] &&
        load_public_key(a, cfg->jwt_public_key_file, err, errlen) < 0)
        goto Error;
    if (cfg->api_key[0]) {
        gw_apikey_t k;
        memset(&k, 0, sizeof k);
        snprintf(k.id, sizeof k.id, "env");
        gw_sha256(cfg->api_key, strlen(cfg->api_key), k.hash);
        snprintf(k.role, sizeof k.role, "%s", cfg->api_key_role);
        gw_auth_put_key(a, &k);
    }
    return a;
Error:
    gw_auth_free(a);
    return NULL;
}

void gw_auth_set_keys(gw_auth_t *a, const gw_apikey_t *keys, size_t n)
{
    /* The node's own key keeps its id (snapshots are refused before they get here when
     * they name it: gw_snapshot_decode). */
    size_t kept = 0;
    for (size_t i = 0; i < a->nkeys; i++)
        if (!strcmp(a->keys[i].id, "env")) a->keys[kept++] = a->keys[i];
    a->nkeys = kept;
    for (size_t i = 0; i < n; i++) gw_auth_put_key(a, &keys[i]);
}

gw_auth_result_t gw_auth_key_status(const gw_auth_t *a, const char *id, int64_t now)
{
    for (size_t i = 0; i < a->nkeys; i++) {
        const gw_apikey_t *k = &a->keys[i];
        if (strcmp(k->id, id)) continue;
        if (k->revoked) return GW_AUTH_KEY_REVOKED;
        if (k->expires && now >= k->expires) return GW_AUTH_KEY_EXPIRED;
        return GW_AUTH_OK;
    }
    return GW_AUTH_UNKNOWN_KEY;
}

static bool same_str(const char *a, const char *b)
{
    return !strcmp(a ? a : "", b ? b : "");
}

uint64_t gw_auth_jwt_generation(const gw_auth_t *a)
{
    return a->jwt_generation;
}

int gw_auth_set_jwt(gw_auth_t *a, const char *issuer, const char *audience, const char *role_claim,
                    long leeway, bool require_exp, const char *pem, char *err, size_t errlen)
{
    /* Sessions let in by a JWT that the new settings might refuse are closed (see
     * gw_session_reauthorize): a new key, issuer or audience changes the generation. */
    if ((pem && pem[0] && !same_str(pem, a->pem)) || !same_str(issuer, a->issuer) ||
        !same_str(audience, a->audience))
        a->jwt_generation++;
    if (pem && pem[0]) {
        jwt_alg_t alg = pem_algorithm(pem, strlen(pem));
        if (alg == JWT_ALG_INVAL) {
            snprintf(err, errlen,
                     "auth.jwt_public_key_pem: need an RSA (>= 2048 bits) or "
                     "P-256 EC public key");
            return -1;
        }
        free(a->pem);
        a->pem = gw_xstrdup(pem);
        a->pem_len = strlen(pem);
        a->pem_alg = alg;
    }
    free(a->issuer);
    free(a->audience);
    free(a->role_claim);
    a->issuer = issuer && issuer[0] ? gw_xstrdup(issuer) : NULL;
    a->audience = audience && audience[0] ? gw_xstrdup(audience) : NULL;
    a->role_claim = gw_xstrdup(role_claim && role_claim[0] ? role_claim : "role");
    a->leeway = leeway;
    a->require_exp = require_exp;
    return 0;
}

void gw_auth_free(gw_auth_t *a)
{
    if (!a) return;
    if (a->secret) OPENSSL_cleanse(a->secret, a->secret_len);
    free(a->secret);
    free(a->pem);
    free(a->issuer);
    free(a->audience);
    free(a->role_claim);
    free(a->keys);
    free(a);
}

bool gw_auth_jwt_enabled(const gw_auth_t *a)
{
    return a->secret || a->pem;
}

void gw_identity_free(gw_identity_t *id)
{
    free(id->role);
    for (size_t i = 0; i < id->nchannels; i++) free(id->channels[i]);
    free(id->channels);
    memset(id, 0, sizeof *id);
}

gw_auth_result_t gw_auth_api_key(const gw_auth_t *a, const char *key, size_t len, int64_t now,
                                 gw_identity_t *out)
{
    unsigned char h[32];
    memset(out, 0, sizeof *out);
    if (len == 0 || len > 512) return GW_AUTH_MALFORMED;
    gw_sha256(key, len, h);
    /* Every entry is compared, so timing does not tell which one (or whether any)
     * matched. */
    size_t found = (size_t)-1;
    for (size_t i = 0; i < a->nkeys; i++) {
        bool eq = CRYPTO_memcmp(a->keys[i].hash, h, sizeof h) == 0;
        found = eq ? i : found;
    }
    if (found == (size_t)-1) return GW_AUTH_UNKNOWN_KEY;
    const gw_apikey_t *k = &a->keys[found];
    if (k->revoked) return GW_AUTH_KEY_REVOKED;
    if (k->expires && now >= k->expires) return GW_AUTH_KEY_EXPIRED;
    out->role = gw_xstrdup(k->role);
    out->expires = k->expires;
    snprintf(out->key_id, sizeof out->key_id, "%s", k->id);
    return GW_AUTH_OK;
}

/*------------------------------------------------------------------------------
 * JWT */

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Decodes unpadded base64url; returns the length or -1. out needs len*3/4+1 bytes. */
static long b64url_decode(const char *s, size_t len, unsigned char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    long n = 0;
    if (len % 4 == 1) return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(s[i]);
        if (v < 0) return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits && (acc & ((1u << bits) - 1))) return -1; /* non-canonical trailing bits */
    return n;
}

static json_t *decode_segment(const char *s, size_t len)
{
    unsigned char *buf = gw_xmalloc(len * 3 / 4 + 4);
    long n = b64url_decode(s, len, buf);
    json_t *v = NULL;
    if (n > 0) v = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    free(buf);
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

static jwt_alg_t header_alg(const gw_auth_t *a, json_t *hdr, gw_auth_result_t *why)
{
    json_t *alg = json_object_get(hdr, "alg");
    *why = GW_AUTH_MALFORMED;
    if (!json_is_string(alg) || json_object_get(hdr, "crit")) return JWT_ALG_INVAL;
    const char *s = json_string_value(alg);
    *why = GW_AUTH_ALG;
    if (a->secret) {
        if (!strcmp(s, "HS256")) return JWT_ALG_HS256;
        if (!strcmp(s, "HS384")) return JWT_ALG_HS384;
        if (!strcmp(s, "HS512")) return JWT_ALG_HS512;
    }
    if (a->pem) {
        if (a->pem_alg == JWT_ALG_RS256 && !strcmp(s, "RS256")) return JWT_ALG_RS256;
        if (a->pem_alg == JWT_ALG_ES256 && !strcmp(s, "ES256")) return JWT_ALG_ES256;
    }
    return JWT_ALG_INVAL; /* includes "none" and every HS* when only a public key is set */
}

/* Reads a NumericDate claim: absent -> *present = false; wrong type -> -1. */
static int numeric_date(json_t *claims, const char *name, bool *present, int64_t *out)
{
    json_t *v = json_object_get(claims, name);
    *present = v != NULL;
    if (!v) return 0;
    if (!json_is_number(v)) return -1;
    double d = json_number_value(v);
    if (d < 0 || d > 1e13) return -1;
    *out = (int64_t)d;
    return 0;
}

static gw_auth_result_t check_claims(const gw_auth_t *a, json_t *c, int64_t now, gw_identity_t *out)
{
    bool has;
    int64_t t = 0;
    if (numeric_date(c, "exp", &has, &t) < 0) return GW_AUTH_CLAIMS;
    if (!has && a->require_exp) return GW_AUTH_NO_EXP;
    if (has && now > t + a->leeway) return GW_AUTH_EXPIRED;
    /* A session lives at most JWT_MAX_TTL_S on one token, whatever (or whether) its exp
     * says: then it refreshes in band or reconnects. */
    out->expires = has && t < now + a->max_ttl_s ? t : now + a->max_ttl_s;
    if (numeric_date(c, "nbf", &has, &t) < 0) return GW_AUTH_CLAIMS;
    if (has && now + a->leeway < t) return GW_AUTH_NOT_YET_VALID;
    if (numeric_date(c, "iat", &has, &t) < 0) return GW_AUTH_CLAIMS;
    if (has && now + a->leeway < t) return GW_AUTH_NOT_YET_VALID;

    if (a->issuer) {
        json_t *iss = json_object_get(c, "iss");
        if (!json_is_string(iss) || strcmp(json_string_value(iss), a->issuer))
            return GW_AUTH_ISSUER;
    }
    if (a->audience) {
        json_t *aud = json_object_get(c, "aud");
        bool ok = json_is_string(aud) && !strcmp(json_string_value(aud), a->audience);
        for (size_t i = 0; json_is_array(aud) && i < json_array_size(aud); i++) {
            json_t *e = json_array_get(aud, i);
            ok |= json_is_string(e) && !strcmp(json_string_value(e), a->audience);
        }
        if (!ok) return GW_AUTH_AUDIENCE;
    }
    json_t *role = json_object_get(c, a->role_claim);
    if (role) {
        if (!json_is_string(role) || json_string_length(role) == 0 || json_string_length(role) > 64)
            return GW_AUTH_CLAIMS;
        out->role = gw_xstrdup(json_string_value(role));
    }
    json_t *chans = json_object_get(c, "channels");
    if (chans) {
        if (!json_is_array(chans) || json_array_size(chans) > 100) return GW_AUTH_CLAIMS;
        out->channels = gw_xcalloc(json_array_size(chans) + 1, sizeof *out->channels);
        for (size_t i = 0; i < json_array_size(chans); i++) {
            json_t *e = json_array_get(chans, i);
            const char *why;
            if (!json_is_string(e) ||
                !gw_channel_valid(json_string_value(e), json_string_length(e), &why) ||
                strlen(json_string_value(e)) != json_string_length(e))
                return GW_AUTH_CLAIMS;
            out->channels[out->nchannels++] = gw_xstrdup(json_string_value(e));
        }
    }
    return GW_AUTH_OK;
}

gw_auth_result_t gw_auth_jwt(const gw_auth_t *a, const char *token, size_t len, int64_t now,
                             gw_identity_t *out)
{
    memset(out, 0, sizeof *out);
    if (!gw_auth_jwt_enabled(a)) return GW_AUTH_NOT_CONFIGURED;
    if (len == 0 || len > GW_TOKEN_MAX || memchr(token, '\0', len)) return GW_AUTH_MALFORMED;
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) || d2 + 1 == token + len)
        return GW_AUTH_MALFORMED; /* also refuses unsigned "a.b." tokens */

    gw_auth_result_t rc;
    json_t *hdr = decode_segment(token, (size_t)(d1 - token));
    json_t *claims = decode_segment(d1 + 1, (size_t)(d2 - d1 - 1));
    char *copy = NULL;
    jwt_t *jwt = NULL;
    if (!hdr || !claims) {
        rc = GW_AUTH_MALFORMED;
        goto Exit;
    }
    jwt_alg_t alg = header_alg(a, hdr, &rc);
    if (alg == JWT_ALG_INVAL) goto Exit;

    bool hmac = alg == JWT_ALG_HS256 || alg == JWT_ALG_HS384 || alg == JWT_ALG_HS512;
    const unsigned char *key = hmac ? a->secret : (const unsigned char *)a->pem;
    size_t klen = hmac ? a->secret_len : a->pem_len;
    copy = gw_xstrndup(token, len);
    if (jwt_decode(&jwt, copy, key, (int)klen) != 0 || !jwt || jwt_get_alg(jwt) != alg) {
        rc = GW_AUTH_SIGNATURE;
        goto Exit;
    }
    rc = check_claims(a, claims, now, out);
Exit:
    if (rc != GW_AUTH_OK) gw_identity_free(out);
    jwt_free(jwt);
    free(copy);
    json_decref(hdr);
    json_decref(claims);
    return rc;
}

/* header.payload.signature, base64url only: anything else cannot be a JWT. */
static bool jwt_shaped(const char *t, size_t len)
{
    size_t dots = 0;
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '.')
            dots++;
        else if (b64url_value(t[i]) < 0)
            return false;
    }
    return dots == 2;
}

gw_auth_result_t gw_auth_token(const gw_auth_t *a, const char *token, size_t len, int64_t now,
                               gw_identity_t *out)
{
    gw_auth_result_t jwt = GW_AUTH_MALFORMED;
    if (jwt_shaped(token, len)) {
        jwt = gw_auth_jwt(a, token, len, now, out);
        if (jwt != GW_AUTH_MALFORMED && jwt != GW_AUTH_NOT_CONFIGURED) return jwt;
        gw_identity_free(out);
    }
    gw_auth_result_t key = gw_auth_api_key(a, token, len, now, out);
    if (key != GW_AUTH_UNKNOWN_KEY) return key;
    /* Neither: name the failure of what it most likely was meant to be. */
    bool as_jwt = jwt_shaped(token, len) || (a->nkeys == 0 && gw_auth_jwt_enabled(a));
    return as_jwt ? jwt : key;
}
