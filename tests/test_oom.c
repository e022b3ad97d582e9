/* placeholder, filled below */
#include <criterion/criterion.h>
