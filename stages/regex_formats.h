/* Built-in patterns of parse_regex's `format` option: common log formats with typed
 * named groups, so that a config need not write the regex. */
#ifndef SLUICE_STAGES_REGEX_FORMATS_H
#define SLUICE_STAGES_REGEX_FORMATS_H

#include <stdbool.h>

#include <sluice/sluice.h>

/* The option's values, in the order of sl__regex_formats. */
#define SL__REGEX_FORMAT_CHOICES                                                                   \
    "apache_common|apache_combined|nginx_combined|syslog_rfc3164|syslog_rfc5424|logfmt|clf_error"

/* One format: its PCRE2 pattern (with (?<name:type>) groups), or NULL when the format is
 * read without a regex, as the stage `instead` names reads it (logfmt: parse_logfmt's
 * key=value splitter, stages/kv.c). */
struct sl__regex_format {
    const char *name;    /* the value of `format` */
    const char *pattern; /* NULL: not a regex format */
    const char *instead; /* with pattern NULL: the stage to use */
    bool pri_parts;      /* syslog: int group pri is followed by facility and severity */
};

/* Indexed by the option's value (SL__REGEX_FORMAT_CHOICES). */
extern const struct sl__regex_format sl__regex_formats[];

/* The patterns a parse_regex config asks for: its `patterns` (already in `*patterns`), or
 * the one of its `format` (`format`: the option's value), which `*patterns` then holds.
 * `*node` receives the config node that compile errors point at. Returns 0,
 * SL__REGEX_FORMAT_KV for a format read without a regex (logfmt: `*patterns` is then
 * empty), or an error: both or neither given. */
#define SL__REGEX_FORMAT_KV 1
int sl__regex_format_pick(const struct sl_config *cfg, int format, struct sl_list *patterns,
                          const struct sl_config **node, struct sl_error *err);

#endif
