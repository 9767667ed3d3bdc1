/* Error codes and the caller-owned error record. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <sluice/error.h>
#include <sluice/version.h>

#include "base/internal.h"

const char *sl_strerror(int code)
{
    switch (code) {
#define SL_ERRNO_TEXT_(name, value, text)                                                          \
    case value: return text;
        SL_ERRNO_MAP(SL_ERRNO_TEXT_)
#undef SL_ERRNO_TEXT_
    case 0: return "success";
    default: return "unknown error";
    }
}

/* The bytes of 0.1's layout: a record of size 0 has them, a smaller one is refused. */
#define ERROR_SIZE_0 (offsetof(struct sl_error, msg) + sizeof((struct sl_error *)0)->msg)

bool sl__error_writable(const struct sl_error *err)
{
    return err && (err->size == 0 || err->size >= ERROR_SIZE_0);
}

void sl__error_copy(struct sl_error *dst, const struct sl_error *src)
{
    if (!sl__error_writable(dst) || !src) return;
    /* Both hold 0.1's fields; a later field is copied only when both sides have it. */
    unsigned size = dst->size;
    memcpy((char *)dst + offsetof(struct sl_error, code),
           (const char *)src + offsetof(struct sl_error, code),
           ERROR_SIZE_0 - offsetof(struct sl_error, code));
    dst->size = size;
}

int sl_error_setv(struct sl_error *err, int code, const char *fmt, va_list ap)
{
    if (!sl__error_writable(err)) return code;
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return code;
}

int sl_error_set(struct sl_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_error_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int sl_error_at(struct sl_error *err, int code, const char *file, int line, int col,
                const char *fmt, ...)
{
    if (!sl__error_writable(err)) return code;
    snprintf(err->file, sizeof err->file, "%s", file ? file : "");
    err->line = line;
    err->col = col;
    va_list ap;
    va_start(ap, fmt);
    sl_error_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

const char *sl_error_format(const struct sl_error *err, char *buf, unsigned size)
{
    if (!buf || size == 0) return buf;
    buf[0] = '\0';
    if (!err) return buf;
    size_t n = 0;
    if (err->file[0] && err->line > 0)
        n += snprintf(buf + n, size - n, "%s:%d:%d: ", err->file, err->line, err->col);
    else if (err->file[0])
        n += snprintf(buf + n, size - n, "%s: ", err->file);
    if (n < size && err->stage[0]) n += snprintf(buf + n, size - n, "stage '%s': ", err->stage);
    if (n < size)
        snprintf(buf + n, size - n, "%s", err->msg[0] ? err->msg : sl_strerror(err->code));
    return buf;
}

void sl_error_clear(struct sl_error *err)
{
    if (!sl__error_writable(err)) return;
    unsigned size = err->size;
    memset(err, 0, ERROR_SIZE_0);
    err->size = size;
}

const char *sl_version(void)
{
    return SL_VERSION_STRING;
}
