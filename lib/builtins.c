/* The built-in stage types of libsluice (and so of the `sluice` program): the only file
 * that names concrete stages. Each is a plain sl_stage_type, registered with
 * sl_registry_add() exactly as a user's own stage would be; there is no back door.
 *
 * To add a built-in: declare it in include/sluice/builtins.h, then add
 * `&sl_stage_X,` to the table below, in the group of its kind (sources, transforms and
 * filters, sinks). `sluice list` shows the table in this order, and tests/test_cli.c
 * checks that every option of every entry has a doc line. */
#include <sluice/builtins.h>
#include <sluice/registry.h>

static const struct sl_stage_type *const builtins[] = {
    /* sources */
    &sl_stage_file_source,
    &sl_stage_stdin,
    &sl_stage_generate,
    &sl_stage_sqlite_source,
    &sl_stage_kafka_source,
    &sl_stage_socket,
    &sl_stage_syslog,
    &sl_stage_http_client,
    &sl_stage_http_server,
    /* transforms and filters */
    &sl_stage_parse_json,
    &sl_stage_parse_regex,
    &sl_stage_parse_logfmt,
    &sl_stage_parse_kv,
    &sl_stage_parse_csv,
    &sl_stage_parse_timestamp,
    &sl_stage_sample,
    &sl_stage_throttle,
    &sl_stage_dedupe,
    &sl_stage_multiline,
    &sl_stage_filter,
    &sl_stage_route,
    &sl_stage_remap,
    &sl_stage_aggregate,
    &sl_stage_sqlite_lookup,
    &sl_stage_parse_syslog,
    /* sinks */
    &sl_stage_file_sink,
    &sl_stage_stdout,
    &sl_stage_blackhole,
    &sl_stage_sqlite_sink,
    &sl_stage_kafka_sink,
    &sl_stage_http_sink,
};

#define NBUILTINS (sizeof builtins / sizeof *builtins)

size_t sl_builtin_count(void)
{
    return NBUILTINS;
}

const struct sl_stage_type *sl_builtin_at(size_t i)
{
    return i < NBUILTINS ? builtins[i] : NULL;
}

int sl_registry_add_builtins(struct sl_registry *reg, struct sl_error *err)
{
    for (size_t i = 0; i < NBUILTINS; i++) {
        int rc = sl_registry_add(reg, builtins[i], err);
        if (rc) return rc;
    }
    return 0;
}
