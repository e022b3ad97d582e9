/* tests/test_start.h -- how a test starts rtgc: with the options it pins
 * and none from the environment (a developer's RTGC or RTDEBUG must not
 * change what a test checks), on an attached thread. */
#ifndef TEST_START_H
#define TEST_START_H

#include <criterion/criterion.h>
#include <stdlib.h>

#include "rtgc.h"

static inline void test_clean_env(void) {
    unsetenv("RTGC");
    unsetenv("RTDEBUG");
    unsetenv("RTMEMLIMIT");
    unsetenv("RTHEAPMIN");
}

static inline void test_start(rt_options o) {
    test_clean_env();
    cr_assert_eq(rt_init(&o), RT_OK);
    cr_assert_eq(rt_thread_attach(), RT_OK);
}

#endif
