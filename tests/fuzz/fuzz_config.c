/* libFuzzer target for the config loader (issue 3): any bytes are parsed as YAML, the
 * pipeline settings read, and a pipeline built with the program's built-in registry,
 * collecting every problem. The pipeline is never started. It must never crash, hang
 * or leak, whatever the input.
 *
 *   CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false \
 *       -Db_sanitize=address,undefined
 *   ninja -C build-fuzz tests/fuzz/fuzz_config
 *   build-fuzz/tests/fuzz/fuzz_config -max_total_time=180 \
 *       -dict=tests/fuzz/config.dict tests/fuzz/corpus/config tests/configs/bad */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void count(void *arg, enum sl_log_level level, const struct sl_error *e)
{
    (void)level;
    /* Touch the message: a report must always carry a terminated text. */
    *(size_t *)arg += e->msg[0] != '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sl_registry *reg;
    if (!reg) reg = cli_registry(NULL); /* kept for the process: built once */
    setenv("SLUICE_FUZZ_SET", "5", 0);
    struct sl_error err = {0};
    struct sl_config *cfg = sl_config_parse((const char *)data, size, "fuzz.yaml", &err);
    if (!cfg) return 0;
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    sl_pipeline_options_from_config(&o, cfg, &err);
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, NULL);
    size_t n = 0;
    if (p) sl_pipeline_load_all(p, reg, cfg, count, &n);
    sl_pipeline_free(p);
    sl_config_free(cfg);
    return 0;
}
