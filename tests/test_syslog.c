/* The syslog source: placeholder until its tests are written. */
#include <criterion/criterion.h>
