/*
 * Unit tests of pb_sign: the Standard Webhooks specification's published
 * example, secrets that are not "whsec_<base64>", a fresh timestamp
 * changing the signature.
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


const unit_test_t  sign_tests[] = {
    UNIT_TEST(test_spec_vector),
    UNIT_TEST(test_timestamp_matters),
    UNIT_TEST(test_bad_secrets),
};

const size_t  sign_ntests = sizeof(sign_tests) / sizeof(sign_tests[0]);
