/* The loghub samples: the `parse` stage of examples/loghub/{apache,hdfs,openssh}.yaml
 * runs over each 2,000-line log, and every field of every line must equal the dataset's
 * own split of that line (*_structured.csv, read here with a small RFC 4180 reader). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>

#include "stage_helpers.h"

static struct sl_pipeline *p;

static void setup(void)
{
    p = t_pipeline();
}

static void teardown(void)
{
    sl_pipeline_free(p);
}

TestSuite(loghub, .init = setup, .fini = teardown, .timeout = 60);

/* ---- a CSV reader for the ground truth ----------------------------------------------------- */

struct csv {
    char ***rows;  /* rows[i][j]: cell j of row i (owned strings) */
    size_t *ncols; /* cells of each row */
    size_t n;      /* rows, header included */
};

/* Reads one cell at *pos (quoted cells may hold "", commas and line breaks). */
static char *csv_cell(const char *s, size_t len, size_t *pos, bool *row_end)
{
    size_t i = *pos, o = 0, cap = 0;
    while (i + cap < len && s[i + cap] != '\n') cap++; /* a quoted cell may go on: grown below */
    char *cell = malloc(cap + 1);
    if (i < len && s[i] == '"') {
        for (i++; i < len; i++) {
            if (o + 1 >= cap) cell = realloc(cell, (cap = 2 * cap + 16) + 1);
            if (s[i] == '"' && i + 1 < len && s[i + 1] == '"') {
                cell[o++] = '"';
                i++;
            } else if (s[i] == '"') {
                i++;
                break;
            } else {
                cell[o++] = s[i];
            }
        }
    } else {
        while (i < len && s[i] != ',' && s[i] != '\n' && s[i] != '\r') cell[o++] = s[i++];
    }
    cell[o] = '\0';
    *row_end = i >= len || s[i] != ',';
    if (i < len && s[i] == ',') i++;
    if (*row_end && i < len && s[i] == '\r') i++;
    if (*row_end && i < len && s[i] == '\n') i++;
    *pos = i;
    return cell;
}

static struct csv csv_read(const char *path)
{
    size_t len, pos = 0;
    char *s = t_read_file(path, &len);
    struct csv c = {0};
    while (pos < len) {
        c.rows = realloc(c.rows, (c.n + 1) * sizeof *c.rows);
        c.ncols = realloc(c.ncols, (c.n + 1) * sizeof *c.ncols);
        char **row = NULL;
        size_t k = 0;
        bool end = false;
        while (!end) {
            row = realloc(row, (k + 1) * sizeof *row);
            row[k++] = csv_cell(s, len, &pos, &end);
        }
        c.rows[c.n] = row;
        c.ncols[c.n++] = k;
    }
    free(s);
    return c;
}

static void csv_free(struct csv *c)
{
    for (size_t i = 0; i < c->n; i++) {
        for (size_t j = 0; j < c->ncols[i]; j++) free(c->rows[i][j]);
        free(c->rows[i]);
    }
    free(c->rows);
    free(c->ncols);
}

/* ---- the comparison ------------------------------------------------------------------------- */

/* Runs the example's parse stage over the dataset's log and compares each event's fields
 * with its CSV row: the columns named in `cols` (in field order), field names being the
 * column names in lower case; `int_cols` are typed int by the example. */
static void check_dataset(const char *example, const char *name, const char *const *cols,
                          const char *int_col)
{
    char path[1024], csv_path[1024], ex[1024];
    snprintf(ex, sizeof ex, "%s/examples/loghub/%s", getenv("SLUICE_SOURCE_ROOT"), example);
    struct sl_error err = {0};
    struct sl_config *root = sl_config_load(ex, &err);
    cr_assert_not_null(root, "%s", err.msg);
    const struct sl_config *node = sl_config_get(root, "transforms.parse");
    cr_assert_not_null(node);

    char rel[256];
    snprintf(rel, sizeof rel, "loghub/%s/%s_2k.log", name, name);
    t_testdata(path, sizeof path, rel);
    snprintf(rel, sizeof rel, "loghub/%s/%s_2k.log_structured.csv", name, name);
    t_testdata(csv_path, sizeof csv_path, rel);

    static const char *const none[] = {NULL};
    struct sl_stage *src = t_add_lines(p, none);
    ((struct t_text *)sl_stage_state(src))->file = path;
    struct sl_stage *parse = sl_pipeline_add(p, "parse", &sl_stage_parse_regex, node, &err);
    cr_assert_not_null(parse, "%s", err.msg);
    sl_config_free(root);
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    struct sl_stage *dead = t_stage(p, "dead", &t_capture, NULL);
    t_connect_port(p, src, NULL, parse);
    t_connect_port(p, parse, NULL, out);
    t_connect_port(p, parse, "dead_letter", dead);
    t_run_ok(p);

    struct t_capture *c = sl_stage_state(out), *d = sl_stage_state(dead);
    struct csv csv = csv_read(csv_path);
    cr_assert_eq(csv.n, 2001, "header and 2,000 rows");
    cr_assert_eq(d->n, 0, "rejected: %s", d->n ? d->fields[0] : "");
    cr_assert_eq(c->n, 2000);
    size_t mismatches = 0;
    for (size_t i = 0; i < c->n; i++) {
        char want[8192] = "";
        size_t w = 0;
        for (size_t k = 0; cols[k]; k++) {
            size_t col = 0;
            while (col < csv.ncols[0] && strcmp(csv.rows[0][col], cols[k])) col++;
            cr_assert_lt(col, csv.ncols[i + 1], "column %s missing in row %zu", cols[k], i);
            char lower[32];
            size_t l = 0;
            for (; cols[k][l] && l < sizeof lower - 1; l++) lower[l] = (char)(cols[k][l] | 0x20);
            lower[l] = '\0';
            bool is_int = int_col && strcmp(cols[k], int_col) == 0;
            w += (size_t)snprintf(want + w, sizeof want - w, "%s%s=%s:%s", k ? " " : "", lower,
                                  is_int ? "I" : "S", csv.rows[i + 1][col]);
        }
        if (strcmp(c->fields[i], want) != 0 && mismatches++ < 5)
            cr_log_error("line %zu:\n  got  %s\n  want %s", i + 1, c->fields[i], want);
    }
    cr_assert_eq(mismatches, 0, "%zu of 2000 lines differ from the ground truth", mismatches);
    csv_free(&csv);
}

Test(loghub, apache_every_field_matches_the_ground_truth)
{
    static const char *const cols[] = {"Time", "Level", "Content", NULL};
    check_dataset("apache.yaml", "Apache", cols, NULL);
}

Test(loghub, hdfs_every_field_matches_the_ground_truth)
{
    static const char *const cols[] = {"Date",      "Time",    "Pid", "Level",
                                       "Component", "Content", NULL};
    check_dataset("hdfs.yaml", "HDFS", cols, "Pid");
}

Test(loghub, openssh_every_field_matches_the_ground_truth)
{
    static const char *const cols[] = {"Date", "Day", "Time", "Component", "Pid", "Content", NULL};
    check_dataset("openssh.yaml", "OpenSSH", cols, "Pid");
}
