/* Interim JSON path lookup, replaced by the zero-copy reader (branch json). */
#include <string.h>

#include <sluice/json.h>

static size_t skip_ws(const char *s, size_t i, size_t len)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* Index just past the value starting at s[i], or len on malformed text. */
static size_t skip_value(const char *s, size_t i, size_t len)
{
    int depth = 0;
    do {
        if (i >= len) return len;
        char c = s[i];
        if (c == '"') {
            for (i++; i < len && s[i] != '"'; i++)
                if (s[i] == '\\') i++;
            i++;
        } else if (c == '{' || c == '[') {
            depth++, i++;
        } else if (c == '}' || c == ']') {
            depth--, i++;
        } else if (depth == 0) {
            while (i < len && !strchr(",}] \t\r\n", s[i])) i++;
        } else {
            i++;
        }
    } while (depth > 0);
    return i;
}

static void make_value(const char *s, size_t a, size_t b, struct sl_value *out)
{
    memset(out, 0, sizeof *out);
    char c = s[a];
    if (c == '"') {
        out->type = SL_STRING;
        out->s = s + a + 1;
        out->len = (uint32_t)(b - a - 2);
        if (memchr(out->s, '\\', out->len)) out->flags = SL_VALUE_ESCAPED;
    } else if (c == '{' || c == '[') {
        out->type = SL_JSON;
        out->s = s + a;
        out->len = (uint32_t)(b - a);
    } else if (c == 't' || c == 'f') {
        out->type = SL_BOOL;
        out->b = c == 't';
    } else if (c == 'n') {
        out->type = SL_NULL;
    } else {
        out->s = s + a;
        out->len = (uint32_t)(b - a);
        out->type =
            memchr(out->s, '.', out->len) || memchr(out->s, 'e', out->len) ? SL_FLOAT : SL_INT;
        out->flags = SL_VALUE_TEXT;
    }
}

int sl_json_get(const char *json, size_t len, const char *path, size_t path_len,
                struct sl_value *out)
{
    size_t a = skip_ws(json, 0, len), b = skip_value(json, a, len);
    size_t p = 0;
    while (p < path_len) {
        if (path[p] == '.') p++;
        if (a >= len) return SL_EPARSE;
        if (path[p] == '[') {
            size_t idx = 0, q = p + 1;
            while (q < path_len && path[q] >= '0' && path[q] <= '9')
                idx = idx * 10 + (size_t)(path[q++] - '0');
            if (q >= path_len || path[q] != ']' || json[a] != '[') return SL_ENOTFOUND;
            p = q + 1;
            size_t i = skip_ws(json, a + 1, len);
            for (size_t k = 0;; k++) {
                if (i >= len || json[i] == ']') return SL_ENOTFOUND;
                size_t e = skip_value(json, i, len);
                if (k == idx) {
                    a = i;
                    b = e;
                    break;
                }
                i = skip_ws(json, e, len);
                if (i < len && json[i] == ',') i = skip_ws(json, i + 1, len);
            }
            continue;
        }
        size_t q = p;
        while (q < path_len && path[q] != '.' && path[q] != '[') q++;
        if (json[a] != '{') return SL_ENOTFOUND;
        size_t i = skip_ws(json, a + 1, len);
        bool found = false;
        while (i < len && json[i] == '"') {
            size_t ke = skip_value(json, i, len);
            bool match = ke - i - 2 == q - p && memcmp(json + i + 1, path + p, q - p) == 0;
            i = skip_ws(json, ke, len);
            if (i < len && json[i] == ':') i = skip_ws(json, i + 1, len);
            size_t ve = skip_value(json, i, len);
            if (match) {
                a = i;
                b = ve;
                found = true;
                break;
            }
            i = skip_ws(json, ve, len);
            if (i < len && json[i] == ',') i = skip_ws(json, i + 1, len);
        }
        if (!found) return SL_ENOTFOUND;
        p = q;
    }
    if (a >= len || b > len || b <= a) return SL_EPARSE;
    make_value(json, a, b, out);
    return 0;
}
