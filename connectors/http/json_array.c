/* The elements of a validated JSON array (json_array.h): one pass that tracks strings
 * and nesting, and cuts at the commas of the top level. */
#include <stdbool.h>

#include <sluice/error.h>

#include "json_array.h"

static bool space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The end of the element that starts at `i`: the offset of the ',' or ']' that closes it
 * at the top level (or len for text that ends early). */
static size_t element_end(const char *json, size_t len, size_t i)
{
    int depth = 0;
    bool str = false;
    for (; i < len; i++) {
        char c = json[i];
        if (str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                str = false;
        } else if (c == '"') {
            str = true;
        } else if (c == '[' || c == '{') {
            depth++;
        } else if (c == ']' || c == '}') {
            if (depth-- == 0) return i;
        } else if (c == ',' && depth == 0) {
            return i;
        }
    }
    return len;
}

int sl__http_json_array_each(const char *json, size_t len,
                             int (*fn)(void *arg, const char *el, size_t el_len), void *arg)
{
    size_t i = 0;
    while (i < len && space(json[i])) i++;
    if (i == len || json[i] != '[') return SL_EPARSE;
    i++;
    while (i < len) {
        while (i < len && space(json[i])) i++;
        if (i == len || json[i] == ']') return 0;
        size_t end = element_end(json, len, i), last = end;
        while (last > i && space(json[last - 1])) last--;
        int rc = fn(arg, json + i, last - i);
        if (rc) return rc;
        i = end + 1; /* past the ',' (or the ']': then the loop ends) */
        if (end < len && json[end] == ']') return 0;
    }
    return 0;
}
