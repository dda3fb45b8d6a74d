/*
 * Unit tests of pb_sign: the Standard Webhooks specification's published
 * example, secrets that are not "whsec_<base64>", a fresh timestamp
 * changing the signature; derived webhook ids (stable, distinct).
 */

#include <string.h>

#include "pb_sign.h"
#include "unit.h"


static void
test_spec_vector(void)
{
    int             n;
    char            sig[PB_SIGN_LEN];
    unsigned char   key[PB_SIGN_KEY_MAX];

    n = pb_sign_secret(S("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), key);
    CHECK(n == 24);

    CHECK(pb_sign(key, (size_t) n, S("msg_p5jXN8AQM9LWM0D4loKWxJek"),
                  1614265330, (const unsigned char *) "{\"test\": 2432232314}",
                  20, sig) == 0);
    CHECK(unit_bytes_eq(sig, PB_SIGN_LEN,
                        S("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")));
}


static void
test_timestamp_matters(void)
{
    int             n;
    char            a[PB_SIGN_LEN], b[PB_SIGN_LEN];
    unsigned char   key[PB_SIGN_KEY_MAX];

    n = pb_sign_secret(S("whsec_c2VjcmV0"), key);
    CHECK(n == 6 && memcmp(key, "secret", 6) == 0);

    CHECK(pb_sign(key, (size_t) n, S("msg_1"), 1, NULL, 0, a) == 0);
    CHECK(pb_sign(key, (size_t) n, S("msg_1"), 2, NULL, 0, b) == 0);
    CHECK(memcmp(a, b, PB_SIGN_LEN) != 0);
}


static void
test_bad_secrets(void)
{
    unsigned char  key[PB_SIGN_KEY_MAX];

    CHECK(pb_sign_secret(S("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), key) == -1);
    CHECK(pb_sign_secret(S("whsec_"), key) == -1);
    CHECK(pb_sign_secret(S("whsec_not base64!"), key) == -1);
    CHECK(pb_sign_secret(S("whsec_c2Vj=cmV0"), key) == -1);
    CHECK(pb_sign_secret(S("whsec_c2VjcmV0cw=="), key) == 7);
}


static void
test_webhook_id(void)
{
    size_t  i;
    char    a[PB_WEBHOOK_ID_LEN], b[PB_WEBHOOK_ID_LEN];

    CHECK(pb_webhook_id(S("members"), S("T-1"), S("APPROVED"), a) == 0);
    CHECK(memcmp(a, "msg_", 4) == 0);

    for (i = 4; i < PB_WEBHOOK_ID_LEN; i++) {
        CHECK((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f'));
    }

    /* the same update: the same id */
    CHECK(pb_webhook_id(S("members"), S("T-1"), S("APPROVED"), b) == 0);
    CHECK(memcmp(a, b, PB_WEBHOOK_ID_LEN) == 0);

    /* another event, key or callback: another id */
    CHECK(pb_webhook_id(S("members"), S("T-1"), S("REFUNDED"), b) == 0);
    CHECK(memcmp(a, b, PB_WEBHOOK_ID_LEN) != 0);
    CHECK(pb_webhook_id(S("members"), S("T-2"), S("APPROVED"), b) == 0);
    CHECK(memcmp(a, b, PB_WEBHOOK_ID_LEN) != 0);
    CHECK(pb_webhook_id(S("tracker"), S("T-1"), S("APPROVED"), b) == 0);
    CHECK(memcmp(a, b, PB_WEBHOOK_ID_LEN) != 0);

    /* the parts' bounds count: "ab" + "c" is not "a" + "bc" */
    CHECK(pb_webhook_id(S("x"), S("ab"), S("c"), a) == 0);
    CHECK(pb_webhook_id(S("x"), S("a"), S("bc"), b) == 0);
    CHECK(memcmp(a, b, PB_WEBHOOK_ID_LEN) != 0);

    /* a fixed vector: ids must not change between versions */
    CHECK(pb_webhook_id(S("members"), S("T-1"), S("APPROVED"), a) == 0);
    CHECK(unit_bytes_eq(a, PB_WEBHOOK_ID_LEN,
                        S("msg_228abb07582aeadf9c651d4a")));
}


const unit_test_t  sign_tests[] = {
    UNIT_TEST(test_spec_vector),
    UNIT_TEST(test_timestamp_matters),
    UNIT_TEST(test_bad_secrets),
    UNIT_TEST(test_webhook_id),
};

const size_t  sign_ntests = sizeof(sign_tests) / sizeof(sign_tests[0]);
