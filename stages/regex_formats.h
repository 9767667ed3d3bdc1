/* Built-in patterns of parse_regex's `format` option: common log formats with typed
 * named groups, so that a config need not write the regex. */
#ifndef SLUICE_STAGES_REGEX_FORMATS_H
#define SLUICE_STAGES_REGEX_FORMATS_H

/* The option's values, in the order of sl__regex_formats. */
#define SL__REGEX_FORMAT_CHOICES                                                                   \
    "apache_common|apache_combined|nginx_combined|syslog_rfc3164|syslog_rfc5424|logfmt|clf_error"

/* One format: its PCRE2 pattern (with (?<name:type>) groups), or NULL when the format is
 * read by another stage, which `instead` names. */
struct sl__regex_format {
    const char *name;    /* the value of `format` */
    const char *pattern; /* NULL: not a regex format */
    const char *instead; /* with pattern NULL: the stage to use */
};

/* Indexed by the option's value (SL__REGEX_FORMAT_CHOICES). */
extern const struct sl__regex_format sl__regex_formats[];

#endif
