/* sluice: error codes and the caller-owned error record.
 *
 * Every function that can fail returns 0 (or a non-negative value) on success and a
 * negative SL_E* code on failure. The human-readable detail goes into a `struct sl_error`
 * that the caller owns; no handle keeps a "last error". */
#ifndef SLUICE_ERROR_H
#define SLUICE_ERROR_H

#include <stdarg.h>
#include <stdbool.h>

/* SL_ANONYMOUS marks a member union without a name (C11; gcc and clang take it in C99
 * too with this mark, also under -pedantic). */
#if defined(__GNUC__)
#define SL_API          __attribute__((visibility("default")))
#define SL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define SL_ANONYMOUS    __extension__
#else
#define SL_API
#define SL_PRINTF(a, b)
#define SL_ANONYMOUS
#endif

/* One list makes the enum and sl_strerror(); codes are negative. */
#define SL_ERRNO_MAP(XX)                                                                           \
    XX(EINVAL, -1, "invalid argument")                                                             \
    XX(ECONFIG, -2, "invalid configuration")                                                       \
    XX(EIO, -3, "input/output error")                                                              \
    XX(ECLOSED, -4, "already closed")                                                              \
    XX(ENOMEM, -5, "out of memory")                                                                \
    XX(ENOTFOUND, -6, "not found")                                                                 \
    XX(EEXIST, -7, "already exists")                                                               \
    XX(ESTAGE, -8, "stage failed")                                                                 \
    XX(EPARSE, -9, "malformed data")                                                               \
    XX(ETYPE, -10, "wrong type")                                                                   \
    XX(EAGAIN, -11, "temporarily unavailable")                                                     \
    XX(ESTOPPED, -12, "stopped")                                                                   \
    XX(EBUSY, -13, "resource busy")                                                                \
    XX(ELIMIT, -14, "limit reached")

enum sl_errno {
#define SL_ERRNO_ENUM_(name, code, text) SL_##name = (code),
    SL_ERRNO_MAP(SL_ERRNO_ENUM_)
#undef SL_ERRNO_ENUM_
};

/* The detail of a failure. Zero-initialise before use (`= {0}`, or `= SL_ERROR_INIT`);
 * all fields are optional.
 *
 * The struct may grow at its end in a later minor version: `size` says how much of it
 * the caller has. 0 means the fields below, as libsluice 0.1 laid them out; a larger
 * struct is asked for with SL_ERROR_INIT. The library writes no field beyond `size`, and
 * writes nothing into a record whose size is below 0.1's (the sl_error_* functions treat
 * it as NULL). */
struct sl_error {
    unsigned size;  /* 0, or sizeof(struct sl_error) as the caller was compiled */
    int code;       /* an SL_E* code, 0 when nothing failed */
    bool retriable; /* true when trying again later may succeed (I/O, broker, lock) */
    char stage[64]; /* name of the stage the error belongs to, "" when none */
    char file[256]; /* config file the error points into, "" when none */
    int line, col;  /* 1-based position in `file` (or in an expression), 0 when unknown */
    char msg[512];  /* what went wrong and what was expected, one line */
};

/* Initialises a struct sl_error with every field this header knows. */
#define SL_ERROR_INIT                                                                              \
    {                                                                                              \
        sizeof(struct sl_error)                                                                    \
    }

/* Returns the fixed text for an SL_E* code; never NULL ("unknown error" for others). */
SL_API const char *sl_strerror(int code);

/* Fills `err` (borrowed; may be NULL, then nothing happens) with `code` and a formatted
 * message, keeping any stage/file/position already set. Returns `code`, so that callers
 * can write `return sl_error_set(err, SL_EINVAL, "...")`. Any thread. */
SL_API int sl_error_set(struct sl_error *err, int code, const char *fmt, ...) SL_PRINTF(3, 4);

/* As sl_error_set, with a va_list. */
SL_API int sl_error_setv(struct sl_error *err, int code, const char *fmt, va_list ap);

/* As sl_error_set, and records the position `file` (borrowed, copied) line:col. */
SL_API int sl_error_at(struct sl_error *err, int code, const char *file, int line, int col,
                       const char *fmt, ...) SL_PRINTF(6, 7);

/* Writes "file:line:col: stage 'x': msg" (parts present only) into `buf` (borrowed, `size`
 * bytes, always NUL-terminated). Returns `buf`. */
SL_API const char *sl_error_format(const struct sl_error *err, char *buf, unsigned size);

/* Resets `err` (borrowed; NULL allowed) to "no error"; its size stays. */
SL_API void sl_error_clear(struct sl_error *err);

#endif
