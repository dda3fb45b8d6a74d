/*
 * pb_template: splitting templates into literals and variables.
 */

#include <string.h>

#include "pb_template.h"
#include "unit.h"


#define MAX_PARTS  16


static pb_tpl_part_t  parts[MAX_PARTS];
static const char    *parsed;


static int
parse(const char *src)
{
    const char  *err;

    parsed = src;
    err = NULL;

    return pb_tpl_parse(src, strlen(src), parts, MAX_PARTS, &err);
}


static int
fails_with(const char *src, size_t max, const char *want)
{
    const char  *err;

    err = NULL;

    if (pb_tpl_parse(src, strlen(src), parts, max, &err) != -1) {
        return 0;
    }

    return err != NULL && strcmp(err, want) == 0;
}


/* Part i is a literal or variable of these bytes, at offset off in src. */
static int
part_is(size_t i, int is_var, size_t off, const char *s)
{
    return parts[i].is_var == is_var
           && parts[i].s == parsed + off
           && unit_bytes_eq(parts[i].s, parts[i].len, s, strlen(s));
}


#define LITERAL(i, off, s)  part_is(i, 0, off, s)
#define VAR(i, off, s)      part_is(i, 1, off, s)


static void
test_empty(void)
{
    CHECK(parse("") == 0);
}


static void
test_literal_only(void)
{
    CHECK(parse("/path?x=1") == 1);
    CHECK(LITERAL(0, 0, "/path?x=1"));
}


static void
test_literal_then_var(void)
{
    CHECK(parse("a$b") == 2);
    CHECK(LITERAL(0, 0, "a"));
    CHECK(VAR(1, 2, "b"));
}


static void
test_braced_then_literal(void)
{
    CHECK(parse("${b}c") == 2);
    CHECK(VAR(0, 2, "b"));
    CHECK(LITERAL(1, 4, "c"));

    /* braces let name characters follow */
    CHECK(parse("${name}suffix_1") == 2);
    CHECK(VAR(0, 2, "name"));
    CHECK(LITERAL(1, 7, "suffix_1"));
}


static void
test_lone_dollar(void)
{
    CHECK(parse("$") == 1);
    CHECK(LITERAL(0, 0, "$"));

    CHECK(parse("a$") == 1);
    CHECK(LITERAL(0, 0, "a$"));

    CHECK(parse("a$ b$-c$}") == 1);
    CHECK(LITERAL(0, 0, "a$ b$-c$}"));
}


static void
test_double_dollar(void)
{
    CHECK(parse("$$x") == 2);
    CHECK(LITERAL(0, 0, "$"));
    CHECK(VAR(1, 2, "x"));

    CHECK(parse("$${a}") == 2);
    CHECK(LITERAL(0, 0, "$"));
    CHECK(VAR(1, 3, "a"));
}


static void
test_mixed(void)
{
    CHECK(parse("x${a_1}y$z") == 4);
    CHECK(LITERAL(0, 0, "x"));
    CHECK(VAR(1, 3, "a_1"));
    CHECK(LITERAL(2, 7, "y"));
    CHECK(VAR(3, 9, "z"));

    CHECK(parse("$a$b") == 2);
    CHECK(VAR(0, 1, "a"));
    CHECK(VAR(1, 3, "b"));

    CHECK(parse("/cb?id=$request_id&v=$Arg_9Z.") == 5);
    CHECK(LITERAL(0, 0, "/cb?id="));
    CHECK(VAR(1, 8, "request_id"));
    CHECK(LITERAL(2, 18, "&v="));
    CHECK(VAR(3, 22, "Arg_9Z"));
    CHECK(LITERAL(4, 28, "."));

    CHECK(parse("{$x}") == 3);
    CHECK(LITERAL(0, 0, "{"));
    CHECK(VAR(1, 2, "x"));
    CHECK(LITERAL(2, 3, "}"));
}


static void
test_not_nul_terminated(void)
{
    const char  *err;

    parsed = "ab$cd";
    CHECK(pb_tpl_parse(parsed, 4, parts, MAX_PARTS, &err) == 2);
    CHECK(LITERAL(0, 0, "ab"));
    CHECK(VAR(1, 3, "c"));

    CHECK(pb_tpl_parse("${a}", 3, parts, MAX_PARTS, &err) == -1);
}


static void
test_errors(void)
{
    CHECK(fails_with("${", MAX_PARTS, "unclosed \"${\""));
    CHECK(fails_with("x${abc", MAX_PARTS, "unclosed \"${\""));
    CHECK(fails_with("${}", MAX_PARTS, "empty \"${}\""));
    CHECK(fails_with("a${}b", MAX_PARTS, "empty \"${}\""));
    CHECK(fails_with("${a-b}", MAX_PARTS,
                     "invalid character in \"${name}\""));
    CHECK(fails_with("${ a}", MAX_PARTS,
                     "invalid character in \"${name}\""));
}


static void
test_max_parts(void)
{
    const char  *err;

    CHECK(fails_with("a$b", 1, "too many parts in template"));
    CHECK(fails_with("$a$b$c", 2, "too many parts in template"));
    CHECK(fails_with("$a$b$c!", 3, "too many parts in template"));
    CHECK(fails_with("x", 0, "too many parts in template"));

    CHECK(pb_tpl_parse("a$b", 3, parts, 2, &err) == 2);
    CHECK(pb_tpl_parse("", 0, parts, 0, &err) == 0);
}


const unit_test_t  template_tests[] = {
    UNIT_TEST(test_empty),
    UNIT_TEST(test_literal_only),
    UNIT_TEST(test_literal_then_var),
    UNIT_TEST(test_braced_then_literal),
    UNIT_TEST(test_lone_dollar),
    UNIT_TEST(test_double_dollar),
    UNIT_TEST(test_mixed),
    UNIT_TEST(test_not_nul_terminated),
    UNIT_TEST(test_errors),
    UNIT_TEST(test_max_parts),
};

const size_t  template_ntests =
    sizeof(template_tests) / sizeof(template_tests[0]);
