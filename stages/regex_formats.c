/* Built-in patterns of parse_regex's `format` option (see regex_formats.h). Fields that
 * are absent from a line (an optional part) make no field; "-" becomes null through the
 * stage's `null_values`. */
#include "regex_formats.h"

#include <stddef.h>

/* A double-quoted string's contents, \" and \\ escapes included. */
#define QUOTED "(?:[^\"\\\\]|\\\\.)*"

/* "GET /path HTTP/1.1", or "-" for a request nginx could not read. */
#define REQUEST "\"(?:(?<method>[A-Z]+) (?<path>[^ \"]*)(?: (?<protocol>[^ \"]*))?|-)\""

/* Common Log Format: host ident user [time] "request" status bytes. */
#define COMMON                                                                                     \
    "^(?<host>\\S+) (?<ident>\\S+) (?<user>\\S+) \\[(?<time>[^\\]]+)\\] " REQUEST                  \
    " (?<status:int>\\d{3}) (?<bytes:int>\\d+|-)"

#define REFERRER_AGENT " \"(?<referrer>" QUOTED ")\" \"(?<agent>" QUOTED ")\""

/* <PRI>Mmm dd hh:mm:ss host app[pid]: message; <PRI> and [pid] optional. */
#define RFC3164                                                                                    \
    "^(?:<(?<pri:int>\\d{1,3})>)?(?<timestamp>[A-Z][a-z]{2} [ \\d]\\d \\d{2}:\\d{2}:\\d{2}) "      \
    "(?<host>\\S+) (?<app>[^\\s\\[:]+)(?:\\[(?<pid:int>\\d+)\\])?: ?(?<message>.*)$"

/* <PRI>VERSION TIMESTAMP HOST APP PROCID MSGID SD [MSG]; "-" is the nil value. */
#define RFC5424                                                                                    \
    "^<(?<pri:int>\\d{1,3})>(?<version:int>\\d{1,2}) (?<timestamp>\\S+) (?<host>\\S+) "            \
    "(?<app>\\S+) (?<procid>\\S+) (?<msgid>\\S+) "                                                 \
    "(?<structured_data>-|(?:\\[(?:[^\\]\"\\\\]|\\\\.|\"" QUOTED "\")*\\])+)(?: (?<message>.*))?$"

/* Apache error log: [time] [level] [client ip] message (2.2), or [time] [module:level]
 * [pid N:tid M] [client ip:port] message (2.4). */
#define CLF_ERROR                                                                                  \
    "^\\[(?<time>[^\\]]+)\\] \\[(?:(?<module>[^:\\]]+):)?(?<level>[^\\]]+)\\]"                     \
    "(?: \\[pid (?<pid:int>\\d+)(?::tid (?<tid:int>\\d+))?\\])?"                                   \
    "(?: \\[client (?<client>[^\\]]+?)(?::(?<port:int>\\d+))?\\])? (?<message>.*)$"

const struct sl__regex_format sl__regex_formats[] = {
    {"apache_common", COMMON "$", NULL},
    {"apache_combined", COMMON REFERRER_AGENT "$", NULL},
    {"nginx_combined", COMMON REFERRER_AGENT "(?: \"(?<forwarded_for>" QUOTED ")\")?\\s*$", NULL},
    {"syslog_rfc3164", RFC3164, NULL, true},
    {"syslog_rfc5424", RFC5424, NULL, true},
    {"logfmt", NULL, "parse_logfmt"},
    {"clf_error", CLF_ERROR, NULL},
};

int sl__regex_format_pick(const struct sl_config *cfg, int format, struct sl_list *patterns,
                          const struct sl_config **node, struct sl_error *err)
{
    const struct sl_config *fmt = cfg ? sl_config_get(cfg, "format") : NULL;
    *node = cfg ? sl_config_get(cfg, "patterns") : NULL;
    if (fmt && *node)
        return sl_config_error(fmt, err, SL_ECONFIG,
                               "format and patterns cannot both be given: use one of them");
    if (!fmt) {
        if (patterns->n == 0)
            return sl_config_error(*node ? *node : cfg, err, SL_ECONFIG,
                                   "parse_regex needs at least one pattern, or a format");
        return 0;
    }
    const struct sl__regex_format *f = &sl__regex_formats[format];
    if (!f->pattern) { /* logfmt: the key=value splitter of parse_logfmt, no regex */
        patterns->n = 0;
        *node = fmt;
        return SL__REGEX_FORMAT_KV;
    }
    patterns->n = 1;
    patterns->items = &f->pattern;
    *node = fmt;
    return 0;
}
