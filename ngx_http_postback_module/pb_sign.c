
/*
 * Copyright (C) The ngx_http_postback_module authors
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "pb_escape.h"
#include "pb_sign.h"


static int
pb_base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    return (c == '+') ? 62 : (c == '/') ? 63 : -1;
}


int
pb_sign_secret(const char *secret, size_t len, unsigned char *key)
{
    int       v;
    size_t    i, n;
    uint32_t  bits;
    unsigned  nbits;

    if (len <= 6 || memcmp(secret, "whsec_", 6) != 0) {
        return -1;
    }

    n = 0;
    bits = 0;
    nbits = 0;

    for (i = 6; i < len; i++) {
        if (secret[i] == '=') {
            /* padding ends it */
            for ( /* void */ ; i < len; i++) {
                if (secret[i] != '=') {
                    return -1;
                }
            }

            break;
        }

        v = pb_base64_value((unsigned char) secret[i]);
        if (v < 0) {
            return -1;
        }

        bits = (bits << 6) | (uint32_t) v;
        nbits += 6;

        if (nbits >= 8) {
            nbits -= 8;

            if (n == PB_SIGN_KEY_MAX) {
                return -1;
            }

            key[n++] = (unsigned char) (bits >> nbits);
        }
    }

    return n ? (int) n : -1;
}


int
pb_sign(const unsigned char *key, size_t key_len, const char *id,
    size_t id_len, uint64_t timestamp, const unsigned char *body,
    size_t body_len, char *out)
{
    int             n;
    char            stamp[24];
    size_t          len;
    unsigned char  *msg, md[EVP_MAX_MD_SIZE];
    unsigned int    md_len;

    n = snprintf(stamp, sizeof(stamp), "%llu", (unsigned long long) timestamp);

    /* the signed content: id "." timestamp "." body */
    len = id_len + 1 + (size_t) n + 1 + body_len;

    msg = malloc(len ? len : 1);
    if (msg == NULL) {
        return -1;
    }

    memcpy(msg, id, id_len);
    msg[id_len] = '.';
    memcpy(msg + id_len + 1, stamp, (size_t) n);
    msg[id_len + 1 + n] = '.';

    if (body_len) {
        memcpy(msg + id_len + 1 + n + 1, body, body_len);
    }

    md_len = 0;

    if (HMAC(EVP_sha256(), key, (int) key_len, msg, len, md, &md_len)
        == NULL)
    {
        free(msg);
        return -1;
    }

    free(msg);

    memcpy(out, "v1,", 3);
    pb_base64((unsigned char *) out + 3, md, md_len);

    return 0;
}


static int
pb_digest_part(EVP_MD_CTX *md, const char *p, size_t len)
{
    int            i;
    unsigned char  prefix[8];

    for (i = 0; i < 8; i++) {
        prefix[i] = (unsigned char) ((uint64_t) len >> (56 - 8 * i));
    }

    return EVP_DigestUpdate(md, prefix, sizeof(prefix))
           && EVP_DigestUpdate(md, p, len);
}


int
pb_webhook_id(const char *callback, size_t callback_len, const char *key,
    size_t key_len, const char *event, size_t event_len, char *out)
{
    int             ok;
    size_t          i;
    EVP_MD_CTX     *md;
    unsigned char   digest[EVP_MAX_MD_SIZE];

    static const char  hex[] = "0123456789abcdef";

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        return -1;
    }

    ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL)
         && pb_digest_part(md, callback, callback_len)
         && pb_digest_part(md, key, key_len)
         && pb_digest_part(md, event, event_len)
         && EVP_DigestFinal_ex(md, digest, NULL);

    EVP_MD_CTX_free(md);

    if (!ok) {
        return -1;
    }

    memcpy(out, "msg_", 4);

    for (i = 0; i < (PB_WEBHOOK_ID_LEN - 4) / 2; i++) {
        out[4 + 2 * i] = hex[digest[i] >> 4];
        out[5 + 2 * i] = hex[digest[i] & 0xf];
    }

    return 0;
}
