/*
 * Standard Webhooks signatures: webhook-signature: v1,<base64 of
 * HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>, the key
 * given as "whsec_<base64>".  Pure C (OpenSSL), no nginx headers.
 */

#ifndef PB_SIGN_H
#define PB_SIGN_H

#include <stddef.h>
#include <stdint.h>


#define PB_SIGN_KEY_MAX  256
#define PB_SIGN_LEN      47     /* "v1," + 44 base64 characters */


/*
 * Decodes a "whsec_<base64>" secret into key (PB_SIGN_KEY_MAX bytes at
 * most); returns the key's length, or -1 when it is not such a secret.
 */
int pb_sign_secret(const char *secret, size_t len, unsigned char *key);

/*
 * Writes the signature "v1,..." (PB_SIGN_LEN bytes, not NUL-terminated)
 * into out; returns 0, or -1 when out of memory.
 */
int pb_sign(const unsigned char *key, size_t key_len, const char *id,
    size_t id_len, uint64_t timestamp, const unsigned char *body,
    size_t body_len, char *out);

/* "msg_" and 24 hex digits, as every delivery id */
#define PB_WEBHOOK_ID_LEN  28

/*
 * The webhook-id of a keyed delivery, written into out (PB_WEBHOOK_ID_LEN
 * bytes, not NUL-terminated): "msg_" and the first 12 bytes, in hex, of
 * SHA-256 over the callback, the key and the event, each preceded by its
 * length (8 bytes, big-endian) so that no two triples read the same.  The
 * same update gets the same id on any node, before or after a restart.
 * Returns 0, or -1 when out of memory.
 */
int pb_webhook_id(const char *callback, size_t callback_len,
    const char *key, size_t key_len, const char *event, size_t event_len,
    char *out);

#endif /* PB_SIGN_H */
